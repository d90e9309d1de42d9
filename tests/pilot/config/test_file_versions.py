"""The file source stamps resourceVersion and generation as an API server would: every change
gets the next (monotonically increasing) resourceVersion, a spec change the next generation, an
unchanged object keeps both, and a re-created object starts again at generation 1."""

from __future__ import annotations

import os
from pathlib import Path

from pilot.config.file import FileConfigSource
from pilot.config.store import ConfigStore
from pkg.config.model import ConfigKey, Kind

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
  labels: {{team: {team}}}
  resourceVersion: "999"
  generation: 42
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: {subset}}}
"""

OTHER = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
"""

KEY = ConfigKey(Kind.VIRTUAL_SERVICE, "reviews", "default")


def write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def versions(store: ConfigStore) -> tuple[int, int]:
    config = store.get(KEY)
    assert config is not None
    return int(config.meta.resource_version), config.meta.generation


async def test_versions_follow_changes(tmp_path: Path) -> None:
    write(tmp_path / "vs.yaml", VS.format(team="a", subset="v1"))
    write(tmp_path / "dr.yaml", OTHER)
    store = ConfigStore()
    events: list[object] = []
    store.add_handler(events.extend)
    source = FileConfigSource([tmp_path], store)
    await source.load()
    rv1, gen1 = versions(store)
    assert gen1 == 1 and rv1 >= 1  # the document's own 999/42 are replaced
    config = store.get(KEY)
    assert config is not None
    assert config.raw["metadata"]["resourceVersion"] == str(rv1)  # shown by /debug/configz

    # A rescan that finds nothing new changes nothing (no event, same stamp).
    events.clear()
    await source.load()
    assert versions(store) == (rv1, 1) and not events

    # Spec change: next resourceVersion and generation.
    write(tmp_path / "vs.yaml", VS.format(team="a", subset="v2"))
    await source.load()
    rv2, gen2 = versions(store)
    assert rv2 > rv1 and gen2 == 2

    # Metadata-only change: next resourceVersion, same generation.
    write(tmp_path / "vs.yaml", VS.format(team="b", subset="v2"))
    await source.load()
    rv3, gen3 = versions(store)
    assert rv3 > rv2 and gen3 == 2

    # Another object's change does not touch this one.
    write(tmp_path / "dr.yaml", OTHER.replace("host: reviews", "host: reviews.default"))
    await source.load()
    assert versions(store) == (rv3, 2)

    # Deleted and re-created: generation starts again, resourceVersion keeps increasing.
    (tmp_path / "vs.yaml").unlink()
    await source.load()
    assert store.get(KEY) is None
    write(tmp_path / "vs.yaml", VS.format(team="b", subset="v2"))
    await source.load()
    rv4, gen4 = versions(store)
    assert rv4 > rv3 and gen4 == 1
