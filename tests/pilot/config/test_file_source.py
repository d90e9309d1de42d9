"""The file config source: loading, last-good-version on bad input, duplicates, watching."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pilot.config.file import FileConfigSource
from pilot.config.store import ConfigEvent, ConfigStore, EventType
from pkg.config.model import ConfigKey, Kind
from tests.helpers.aio import eventually

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: default
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: {subset}}}
"""

BAD_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: default
spec:
  hosts: [reviews]
  http:
  - match:
    - sourcelabels: {{app: x}}
    route:
    - destination: {{host: reviews}}
"""


def write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def subset_of(store: ConfigStore, name: str) -> str | None:
    config = store.get(ConfigKey(Kind.VIRTUAL_SERVICE, name, "default"))
    if config is None:
        return None
    subset: str = config.spec.http[0].route[0].destination.subset
    return subset


async def test_load_and_reload(tmp_path: Path) -> None:
    write(tmp_path / "vs.yaml", VS.format(name="reviews", subset="v1"))
    store = ConfigStore()
    source = FileConfigSource([tmp_path], store)
    await source.load()
    assert subset_of(store, "reviews") == "v1"
    write(tmp_path / "vs.yaml", VS.format(name="reviews", subset="v2"))
    await source.load()
    assert subset_of(store, "reviews") == "v2"
    (tmp_path / "vs.yaml").unlink()
    await source.load()
    assert subset_of(store, "reviews") is None


async def test_invalid_document_keeps_last_good_version_and_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "vs.yaml"
    write(
        path, VS.format(name="reviews", subset="v1") + "---\n" + VS.format(name="other", subset="a")
    )
    store = ConfigStore()
    reported = []
    source = FileConfigSource([tmp_path], store, on_problems=reported.extend)
    await source.load()
    write(path, BAD_VS.format(name="reviews") + "---\n" + VS.format(name="other", subset="b"))
    await source.load()
    # The bad object keeps its last good version; the good one in the same file updates.
    assert subset_of(store, "reviews") == "v1"
    assert subset_of(store, "other") == "b"
    assert len(reported) == 1
    problem = reported[0]
    assert problem.path == str(path) and problem.index == 0
    assert (problem.kind, problem.namespace, problem.name) == (
        "VirtualService",
        "default",
        "reviews",
    )
    assert "spec.http[0].match[0].sourcelabels" in problem.message
    # Reported once, not on every rescan of the same content.
    await source.load()
    assert len(reported) == 1
    assert [str(p) for p in source.problems] == [str(problem)]


async def test_unparseable_file_keeps_all_its_objects(tmp_path: Path) -> None:
    path = tmp_path / "vs.yaml"
    write(path, VS.format(name="reviews", subset="v1"))
    store = ConfigStore()
    source = FileConfigSource([tmp_path], store)
    await source.load()
    write(path, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: [unclosed\n")
    await source.load()
    assert subset_of(store, "reviews") == "v1"
    assert source.problems and source.problems[0].path == str(path)


async def test_duplicate_definitions_first_file_wins(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", VS.format(name="reviews", subset="from-a"))
    write(tmp_path / "b.yaml", VS.format(name="reviews", subset="from-b"))
    store = ConfigStore()
    source = FileConfigSource([tmp_path], store)
    await source.load()
    assert subset_of(store, "reviews") == "from-a"


async def test_ignored_files_and_kinds(tmp_path: Path) -> None:
    write(tmp_path / ".hidden.yaml", VS.format(name="hidden", subset="x"))
    write(tmp_path / "notes.txt", VS.format(name="text", subset="x"))
    write(tmp_path / "sa.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n")
    store = ConfigStore()
    source = FileConfigSource([tmp_path], store)
    await source.load()
    assert len(store) == 0
    assert source.problems == []


async def test_watch_picks_up_new_changed_and_deleted_files(tmp_path: Path) -> None:
    store = ConfigStore()
    events: list[ConfigEvent] = []
    store.add_handler(events.extend)
    source = FileConfigSource([tmp_path], store)
    await source.load()
    task = asyncio.ensure_future(source.watch())
    try:
        path = tmp_path / "vs.yaml"
        # The watcher may start a moment after the task: re-write until the change is seen.
        await eventually(
            lambda: subset_of(store, "reviews") == "v1",
            message="added file",
            poke=lambda: write(path, VS.format(name="reviews", subset="v1")),
        )
        write(path, VS.format(name="reviews", subset="v2"))
        await eventually(lambda: subset_of(store, "reviews") == "v2", message="changed file")
        path.unlink()
        await eventually(lambda: subset_of(store, "reviews") is None, message="deleted file")
        kinds = [e.type for e in events]
        assert kinds == [EventType.ADD, EventType.UPDATE, EventType.DELETE]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
