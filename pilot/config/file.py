"""The file config source: a directory of YAML/JSON watched for changes (`--config-dir`).

Every `*.yaml`, `*.yml` and `*.json` file under the directories (recursively, hidden files and
editor droppings skipped) is parsed into documents. A valid document replaces the last version
of its object; an invalid one is reported (once per file content) and skipped, and the object it
would have replaced keeps serving its last good version. A file that cannot be read or parsed
at all keeps all of its last good objects. When the same object is defined in two files, the
first file in path order wins (within one file, the first document) and every other definition
is reported, naming the file and document that won.

A file is read only once it has not been written for `settle` seconds (a writer that writes half
a file, pauses, then writes the rest is not read in between unless its pause is longer), and
only if it is a regular file: a FIFO, device or symlink loop is reported, never opened for a
blocking read. A file that cannot be read keeps its last good objects, and so do the files of a
configured directory that has been deleted: istiod keeps serving them until the directory is
back, then rescans it. Every problem is reported (logged, `on_problems`) once per file content,
and listed in `problems` (/debug/push_status, /debug/configz) while it lasts.

Change detection uses watchfiles (inotify); if a directory disappears, the source polls for it
to come back and rescans.

Like an API server, the source owns `metadata.resourceVersion` and `metadata.generation` (values
in the documents are replaced): every change of an object gets the next resourceVersion (one
counter for the whole source, so versions increase monotonically) and a change of its spec the
next generation (1 for a new object); an object whose parsed content is unchanged keeps both.
They name an object's version in the push ledger (`istioctl x trace`) and in rejections.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import watchfiles

from pilot.config.file_scan import (
    SETTLE_SECONDS,
    NotSettled,
    is_config_file,
    read_config_file,
    scan,
)
from pilot.config.store import ConfigStore
from pkg.config.model import Config, ConfigKey, Meta
from pkg.config.schema import parse_object
from pkg.config.yamldocs import load_documents

log = logging.getLogger(__name__)

MAX_SETTLE_WAIT = 5.0  # ...but a file written continuously is read after this long anyway
MISSING_DIR_POLL = 0.2  # how often a deleted config directory is looked for


@dataclass(frozen=True, slots=True)
class Problem:
    """One rejected document or unreadable file, as shown by /debug/configz and analyze."""

    path: str
    index: int  # document index in the file; -1 for the whole file
    kind: str
    namespace: str
    name: str
    message: str
    line: int = 0  # 1-based line of the document (or of the error) when known

    def __str__(self) -> str:
        where = f"{self.path}" if self.index < 0 else f"{self.path}[{self.index}]"
        if self.line:
            where += f" (line {self.line})"
        obj = f"{self.kind}/{self.namespace}/{self.name}: " if self.kind else ""
        return f"{where}: {obj}{self.message}"


@dataclass
class _FileState:
    digest: str = ""
    configs: dict[ConfigKey, Config[Any]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # key → (document index, line) of the document that defined it
    where: dict[ConfigKey, tuple[int, int]] = field(default_factory=dict)


def _object_identity(obj: Any, default_namespace: str) -> tuple[str, str, str]:
    if not isinstance(obj, dict):
        return "", "", ""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    kind = obj.get("kind")
    name = meta.get("name")
    namespace = meta.get("namespace") or default_namespace
    return (
        kind if isinstance(kind, str) else "",
        namespace if isinstance(namespace, str) else "",
        name if isinstance(name, str) else "",
    )


def parse_file(path: Path, data: bytes, previous: _FileState, default_namespace: str) -> _FileState:
    """Parse one file's bytes; invalid documents fall back to `previous`'s objects.

    When the file's last document is invalid, the file may have been cut short (a writer that
    died half way): whatever followed is unknown, so every object the file had is kept."""
    digest = hashlib.sha256(data).hexdigest()
    state = _FileState(digest=digest)
    source = str(path)
    unidentified = False
    invalid: list[int] = []  # indexes of documents that failed to load or validate
    docs = load_documents(data, source)
    for doc in docs:
        if doc.error is not None:
            # A syntax error hides which object the document was (a truncated or half-written
            # file): keep every object this file had until it parses again.
            state.problems.append(Problem(source, doc.index, "", "", "", doc.error, doc.line))
            invalid.append(doc.index)
            unidentified = True
            continue
        result = parse_object(doc.obj, default_namespace=default_namespace)
        if result.ignored:
            continue
        if result.config is not None:
            key = result.config.key
            first = state.where.get(key)
            if first is not None:
                message = f"duplicate definition; the one in {source}[{first[0]}] is used"
                state.problems.append(
                    Problem(source, doc.index, key.kind, key.namespace, key.name, message, doc.line)
                )
                continue
            state.configs[key] = result.config
            state.where[key] = (doc.index, doc.line)
            continue
        kind, namespace, name = _object_identity(doc.obj, default_namespace)
        messages = "; ".join(f"{e.path}: {e.reason}" for e in result.errors) or "invalid"
        invalid.append(doc.index)
        state.problems.append(Problem(source, doc.index, kind, namespace, name, messages, doc.line))
        # Keep serving the last good version of this object, if this file had one.
        for key, config in previous.configs.items():
            if key.kind == kind and key.namespace == namespace and key.name == name:
                state.configs.setdefault(key, config)
                state.where.setdefault(key, previous.where.get(key, (doc.index, doc.line)))
    if unidentified or (docs and invalid and invalid[-1] == docs[-1].index):
        for key, config in previous.configs.items():
            if key not in state.configs:
                state.configs[key] = config
                state.where[key] = previous.where.get(key, (-1, 0))
    return state


def _stamped_raw(raw: Mapping[str, Any], meta: Meta) -> Mapping[str, Any]:
    """The document as shown by /debug/configz, with the versions the source stamped."""
    metadata = raw.get("metadata")
    if not isinstance(metadata, Mapping):
        return raw
    stamped = {**metadata, "resourceVersion": meta.resource_version, "generation": meta.generation}
    return {**raw, "metadata": stamped}


class FileConfigSource:
    """Loads `dirs` into `store` and keeps it in sync with the files."""

    def __init__(
        self,
        dirs: Sequence[Path],
        store: ConfigStore,
        *,
        default_namespace: str = "default",
        on_problems: Callable[[list[Problem]], None] | None = None,
        settle: float = SETTLE_SECONDS,
    ) -> None:
        self.dirs = [Path(d) for d in dirs]
        self.store = store
        self.default_namespace = default_namespace
        self.settle = settle
        self._files: dict[Path, _FileState] = {}
        self._first_seen: dict[ConfigKey, float] = {}
        # key → (the object as parsed, as stamped): the stamp is reused while it is unchanged.
        self._stamped: dict[ConfigKey, tuple[Config[Any], Config[Any]]] = {}
        self._revision = 0
        self._reported: set[tuple[str, str]] = set()
        self._missing: list[Problem] = []
        self._duplicates: list[Problem] = []
        self._on_problems = on_problems
        self.loads = 0

    @property
    def problems(self) -> list[Problem]:
        """Every current problem: missing directories, unreadable files, rejected documents
        and duplicate definitions."""
        out: list[Problem] = list(self._missing)
        for path in sorted(self._files):
            out.extend(self._files[path].problems)
        return out + self._duplicates

    def _root_of(self, path: Path) -> Path | None:
        for root in self.dirs:
            if path.is_relative_to(root):
                return root
        return None

    def _kept(self, path: Path, missing: set[Path]) -> bool:
        """A file of a deleted config directory: its last good objects keep serving."""
        return self._root_of(path) in missing

    async def load(self) -> None:
        """Full rescan: read every file (off the event loop) and update the store."""
        paths = await asyncio.to_thread(scan, self.dirs)
        await self._reload(paths, full=True)

    async def _reload(self, paths: Iterable[Path], full: bool) -> None:
        paths = list(paths)
        missing = {d for d in self.dirs if not d.is_dir()}
        states = await asyncio.to_thread(self._read_and_parse, paths, missing)
        # Files written a moment ago are read once they settle (bounded in time).
        deadline = time.monotonic() + MAX_SETTLE_WAIT
        while True:
            waiting = {p: r for p, r in states.items() if isinstance(r, NotSettled)}
            if not waiting:
                break
            settle = self.settle if time.monotonic() < deadline else 0.0
            await asyncio.sleep(max(0.005, max(r.remaining for r in waiting.values())))
            states.update(
                await asyncio.to_thread(self._read_and_parse, list(waiting), missing, settle)
            )
        if full:
            for gone in set(self._files) - set(paths):
                if not self._kept(gone, missing):
                    del self._files[gone]
        for path, state in states.items():
            if state is None:
                self._files.pop(path, None)
            elif isinstance(state, _FileState):
                self._files[path] = state
        self._missing = [
            Problem(
                str(d),
                -1,
                "",
                "",
                "",
                "config directory is missing; serving the last good config of its "
                f"{sum(1 for f in self._files if self._root_of(f) == d)} files until it is back",
            )
            for d in self.dirs
            if d in missing
        ]
        self.loads += 1
        self._publish()

    def _read_and_parse(
        self, paths: list[Path], missing: set[Path], settle: float | None = None
    ) -> dict[Path, _FileState | NotSettled | None]:
        settle = self.settle if settle is None else settle
        out: dict[Path, _FileState | NotSettled | None] = {}
        for path in paths:
            previous = self._files.get(path, _FileState())
            if not os.path.lexists(path):
                # Deleted; but a deleted directory's files keep serving until it is back.
                out[path] = previous if self._kept(path, missing) and previous.digest else None
                continue
            try:
                data = read_config_file(path, settle)
            except NotSettled as e:
                out[path] = e
                continue
            except OSError as e:
                message = e.strerror or str(e)
                # No digest: once readable again, the file is parsed even if unchanged.
                out[path] = dataclasses.replace(
                    previous,
                    digest="",
                    problems=[Problem(str(path), -1, "", "", "", f"unreadable: {message}")],
                )
                continue
            if previous.digest == hashlib.sha256(data).hexdigest():
                out[path] = previous
                continue
            out[path] = parse_file(path, data, previous, self.default_namespace)
        return out

    def _publish(self) -> None:
        merged: dict[ConfigKey, Config[Any]] = {}
        owner: dict[ConfigKey, str] = {}
        duplicates: list[Problem] = []
        for path in sorted(self._files):
            state = self._files[path]
            for key, config in state.configs.items():
                index, line = state.where.get(key, (-1, 0))
                if key in merged:
                    duplicates.append(
                        Problem(
                            str(path),
                            index,
                            key.kind,
                            key.namespace,
                            key.name,
                            f"duplicate definition; the one in {owner[key]} is used",
                            line,
                        )
                    )
                    continue
                merged[key] = self._stamp(config)
                owner[key] = f"{path}[{index}]" if index >= 0 else str(path)
        for gone in self._stamped.keys() - merged.keys():
            del self._stamped[gone]  # deleted: a re-created object starts at generation 1
        self._duplicates = duplicates
        current: set[tuple[str, str]] = set()
        new_problems = []
        for problem in self.problems:
            fingerprint = (str(problem), self._files.get(Path(problem.path), _FileState()).digest)
            current.add(fingerprint)
            if fingerprint not in self._reported:
                new_problems.append(problem)
                log.warning("config rejected: %s", problem)
        # Forget problems that are gone: if one comes back, it is reported again.
        self._reported = current
        self.store.replace_all(merged.values())
        if new_problems and self._on_problems is not None:
            self._on_problems(new_problems)

    def _stamp(self, config: Config[Any]) -> Config[Any]:
        """The object with its resourceVersion and generation (see the module docstring), and,
        when the document has no creationTimestamp, the time it was first seen (kept across
        edits), so Istio's oldest-first ordering holds in standalone mode."""
        previous = self._stamped.get(config.key)
        if previous is not None:
            parsed, stamped = previous
            if parsed is config or (parsed.meta == config.meta and parsed.spec == config.spec):
                return stamped
        self._revision += 1
        generation = 1
        if previous is not None:
            old = previous[1].meta.generation
            generation = old if previous[0].spec == config.spec else old + 1
        created = config.meta.creation_timestamp or self._first_seen.setdefault(
            config.key, time.time()
        )
        meta = dataclasses.replace(
            config.meta,
            creation_timestamp=created,
            resource_version=str(self._revision),
            generation=generation,
        )
        stamped = dataclasses.replace(config, meta=meta, raw=_stamped_raw(config.raw, meta))
        self._stamped[config.key] = (config, stamped)
        return stamped

    async def watch(self) -> None:
        """Follow file changes until cancelled."""
        while True:
            existing = [d for d in self.dirs if d.is_dir()]
            if not existing:
                await asyncio.sleep(MISSING_DIR_POLL)
                continue
            try:
                await self._watch(existing)
            except (FileNotFoundError, RuntimeError) as e:
                log.warning("config watch interrupted (%s); rescanning", e)
            if any(not d.is_dir() for d in self.dirs):
                # Poll until every directory is back (the watch resumes with a full rescan).
                await self.load()
                while not all(d.is_dir() for d in self.dirs):
                    await asyncio.sleep(MISSING_DIR_POLL)
                await self.load()

    async def _watch(self, existing: list[Path]) -> None:
        """One watch session over `existing`; returns when a configured directory is gone.
        The first (timeout) tick rescans everything: it catches changes made before the
        watcher was in place, e.g. the files of a re-created directory."""
        started = False
        async for changes in watchfiles.awatch(
            *existing,
            debounce=50,
            step=20,
            rust_timeout=500,
            yield_on_timeout=True,
            recursive=True,
            watch_filter=lambda _change, path: is_config_file(Path(path)) or Path(path).is_dir(),
            ignore_permission_denied=True,
        ):
            changed = sorted({Path(p) for _, p in changes})
            if not started or any(
                p.is_dir() or (not p.exists() and p.suffix == "") for p in changed
            ):
                started = True
                await self.load()
            elif changed:
                await self._reload([p for p in changed if is_config_file(p)], full=False)
            if any(not d.is_dir() for d in self.dirs):
                return
