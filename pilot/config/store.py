"""The in-memory config store: the current objects by kind, and change events.

Owned by the event loop. Writers (the file source, `istioctl apply`, tests) call `replace_all`
or `upsert`/`delete`; the store computes which objects were added, updated or deleted and calls
its handlers once per change. Objects equal to what is stored produce no event, so a rescan
that finds nothing new is silent.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

from pkg.config.model import Config, ConfigKey, Kind

log = logging.getLogger(__name__)


class EventType(Enum):
    ADD = "add"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class ConfigEvent:
    type: EventType
    key: ConfigKey
    old: Config[Any] | None
    new: Config[Any] | None


Handler = Callable[[list[ConfigEvent]], None]


def same_content(a: Config[Any], b: Config[Any]) -> bool:
    """The same version of an object: equal metadata and spec (`raw` is only for display)."""
    return a.meta == b.meta and a.spec == b.spec


class ConfigStore:
    def __init__(self) -> None:
        self._objects: dict[ConfigKey, Config[Any]] = {}
        self._handlers: list[Handler] = []
        self._by_kind: Mapping[Kind, tuple[Config[Any], ...]] | None = None
        self.revision = 0

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def get(self, key: ConfigKey) -> Config[Any] | None:
        return self._objects.get(key)

    def list(self, kind: Kind, namespace: str | None = None) -> builtins.list[Config[Any]]:
        return [
            c for c in self.by_kind().get(kind, ()) if namespace is None or c.namespace == namespace
        ]

    def __len__(self) -> int:
        return len(self._objects)

    def by_kind(self) -> Mapping[Kind, tuple[Config[Any], ...]]:
        """All objects grouped by kind (cached until the next change)."""
        if self._by_kind is None:
            grouped: dict[Kind, builtins.list[Config[Any]]] = {}
            for key in sorted(self._objects):
                grouped.setdefault(key.kind, []).append(self._objects[key])
            self._by_kind = MappingProxyType({k: tuple(v) for k, v in grouped.items()})
        return self._by_kind

    def replace_all(self, configs: Iterable[Config[Any]]) -> builtins.list[ConfigEvent]:
        """Make the store hold exactly `configs`; returns (and dispatches) the changes."""
        incoming: dict[ConfigKey, Config[Any]] = {}
        for config in configs:
            incoming[config.key] = config
        events: builtins.list[ConfigEvent] = []
        for key, old in self._objects.items():
            if key not in incoming:
                events.append(ConfigEvent(EventType.DELETE, key, old, None))
        for key, new in incoming.items():
            old_config = self._objects.get(key)
            if old_config is None:
                events.append(ConfigEvent(EventType.ADD, key, None, new))
            elif not same_content(old_config, new):
                events.append(ConfigEvent(EventType.UPDATE, key, old_config, new))
        return self._apply(events)

    def upsert(self, config: Config[Any]) -> builtins.list[ConfigEvent]:
        old = self._objects.get(config.key)
        if old is not None and same_content(old, config):
            return []
        kind = EventType.ADD if old is None else EventType.UPDATE
        return self._apply([ConfigEvent(kind, config.key, old, config)])

    def apply_changes(
        self, upserts: Iterable[Config[Any]], deletes: Iterable[ConfigKey] = ()
    ) -> builtins.list[ConfigEvent]:
        """Several upserts and deletes as one change: handlers see one list of events (a
        relist of thousands of pods rebuilds the registry once, not once per pod)."""
        events: builtins.list[ConfigEvent] = []
        seen: set[ConfigKey] = set()
        for key in deletes:
            old = self._objects.get(key)
            if old is not None and key not in seen:
                seen.add(key)
                events.append(ConfigEvent(EventType.DELETE, key, old, None))
        for config in upserts:
            old = None if config.key in seen else self._objects.get(config.key)
            if old is not None and same_content(old, config):
                continue
            kind = EventType.ADD if old is None else EventType.UPDATE
            events.append(ConfigEvent(kind, config.key, old, config))
        return self._apply(events)

    def delete(self, key: ConfigKey) -> builtins.list[ConfigEvent]:
        old = self._objects.get(key)
        if old is None:
            return []
        return self._apply([ConfigEvent(EventType.DELETE, key, old, None)])

    def _apply(self, events: builtins.list[ConfigEvent]) -> builtins.list[ConfigEvent]:
        if not events:
            return events
        for event in events:
            if event.new is None:
                self._objects.pop(event.key, None)
            else:
                self._objects[event.key] = event.new
        self._by_kind = None
        self.revision += 1
        for handler in self._handlers:
            try:
                handler(events)
            except Exception:
                log.exception("config handler failed")
        return events
