"""The file config source: a directory of YAML/JSON watched for changes (`--config-dir`).

Every `*.yaml`, `*.yml` and `*.json` file under the directories (recursively, hidden files and
editor droppings skipped) is parsed into documents. A valid document replaces the last version
of its object; an invalid one is reported (once per file content) and skipped, and the object it
would have replaced keeps serving its last good version. A file that cannot be read or parsed
at all keeps all of its last good objects. When the same object is defined in two files, the
first file in path order wins and the other definition is reported.

Change detection uses watchfiles (inotify); if a directory disappears, the source waits for it
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

from pilot.config.store import ConfigStore
from pkg.config.model import Config, ConfigKey, Meta
from pkg.config.schema import parse_object
from pkg.config.yamldocs import load_documents

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Problem:
    """One rejected document or unreadable file, as shown by /debug/configz and analyze."""

    path: str
    index: int  # document index in the file; -1 for the whole file
    kind: str
    namespace: str
    name: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}" if self.index < 0 else f"{self.path}[{self.index}]"
        obj = f"{self.kind}/{self.namespace}/{self.name}: " if self.kind else ""
        return f"{where}: {obj}{self.message}"


@dataclass
class _FileState:
    digest: str = ""
    configs: dict[ConfigKey, Config[Any]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def is_config_file(path: Path) -> bool:
    name = path.name
    if name.startswith(".") or name.endswith("~") or name.startswith("#"):
        return False
    return name.endswith(SUFFIXES)


def scan(dirs: Sequence[Path]) -> list[Path]:
    """All config files under `dirs`, sorted; symlinked directories are not followed."""
    found: list[Path] = []
    for root in dirs:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in filenames:
                path = Path(dirpath) / filename
                if is_config_file(path):
                    found.append(path)
    return sorted(found)


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
    """Parse one file's bytes; invalid documents fall back to `previous`'s objects."""
    digest = hashlib.sha256(data).hexdigest()
    state = _FileState(digest=digest)
    source = str(path)
    unidentified = False
    for doc in load_documents(data, source):
        if doc.error is not None:
            # A syntax error hides which object the document was (a truncated or half-written
            # file): keep every object this file had until it parses again.
            state.problems.append(Problem(source, doc.index, "", "", "", doc.error))
            unidentified = True
            continue
        result = parse_object(doc.obj, default_namespace=default_namespace)
        if result.ignored:
            continue
        if result.config is not None:
            state.configs[result.config.key] = result.config
            continue
        kind, namespace, name = _object_identity(doc.obj, default_namespace)
        messages = "; ".join(f"{e.path}: {e.reason}" for e in result.errors) or "invalid"
        state.problems.append(Problem(source, doc.index, kind, namespace, name, messages))
        # Keep serving the last good version of this object, if this file had one.
        for key, config in previous.configs.items():
            if key.kind == kind and key.namespace == namespace and key.name == name:
                state.configs[key] = config
    if unidentified:
        for key, config in previous.configs.items():
            state.configs.setdefault(key, config)
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
    ) -> None:
        self.dirs = [Path(d) for d in dirs]
        self.store = store
        self.default_namespace = default_namespace
        self._files: dict[Path, _FileState] = {}
        self._first_seen: dict[ConfigKey, float] = {}
        # key → (the object as parsed, as stamped): the stamp is reused while it is unchanged.
        self._stamped: dict[ConfigKey, tuple[Config[Any], Config[Any]]] = {}
        self._revision = 0
        self._reported: set[tuple[str, str]] = set()
        self._on_problems = on_problems
        self.loads = 0

    @property
    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for path in sorted(self._files):
            out.extend(self._files[path].problems)
        return out

    async def load(self) -> None:
        """Full rescan: read every file (off the event loop) and update the store."""
        paths = await asyncio.to_thread(scan, self.dirs)
        await self._reload(paths, full=True)

    async def _reload(self, paths: Iterable[Path], full: bool) -> None:
        paths = list(paths)
        states = await asyncio.to_thread(self._read_and_parse, paths)
        if full:
            for gone in set(self._files) - set(paths):
                del self._files[gone]
        for path, state in states.items():
            if state is None:
                self._files.pop(path, None)
            else:
                self._files[path] = state
        self.loads += 1
        self._publish()

    def _read_and_parse(self, paths: list[Path]) -> dict[Path, _FileState | None]:
        out: dict[Path, _FileState | None] = {}
        for path in paths:
            previous = self._files.get(path, _FileState())
            try:
                if not path.exists():
                    out[path] = None
                    continue
                size = path.stat().st_size
                if size > MAX_FILE_BYTES:
                    raise OSError(f"file is larger than {MAX_FILE_BYTES} bytes ({size})")
                data = path.read_bytes()
            except OSError as e:
                message = e.strerror or str(e)
                out[path] = dataclasses.replace(
                    previous,
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
        owner: dict[ConfigKey, Path] = {}
        duplicates: list[Problem] = []
        for path in sorted(self._files):
            for key, config in self._files[path].configs.items():
                if key in merged:
                    duplicates.append(
                        Problem(
                            str(path),
                            -1,
                            key.kind,
                            key.namespace,
                            key.name,
                            f"duplicate definition; the one in {owner[key]} is used",
                        )
                    )
                    continue
                merged[key] = self._stamp(config)
                owner[key] = path
        for gone in self._stamped.keys() - merged.keys():
            del self._stamped[gone]  # deleted: a re-created object starts at generation 1
        problems = self.problems + duplicates
        new_problems = []
        for problem in problems:
            fingerprint = (str(problem), self._files.get(Path(problem.path), _FileState()).digest)
            if fingerprint not in self._reported:
                self._reported.add(fingerprint)
                new_problems.append(problem)
                log.warning("config rejected: %s", problem)
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
                await asyncio.sleep(0.5)
                continue
            if len(existing) != len(self.dirs):
                # A directory is missing: poll until it is back, then rescan everything.
                await self.load()
            try:
                async for changes in watchfiles.awatch(
                    *existing,
                    debounce=50,
                    step=20,
                    recursive=True,
                    watch_filter=lambda _change, path: (
                        is_config_file(Path(path)) or Path(path).is_dir()
                    ),
                    ignore_permission_denied=True,
                ):
                    changed = sorted({Path(p) for _, p in changes})
                    if any(p.is_dir() or (not p.exists() and p.suffix == "") for p in changed):
                        await self.load()
                    else:
                        await self._reload([p for p in changed if is_config_file(p)], full=False)
                    if any(not d.is_dir() for d in self.dirs):
                        break
            except (FileNotFoundError, RuntimeError) as e:
                log.warning("config watch interrupted (%s); rescanning", e)
            await self.load()
