"""Last-known-good configuration: objects a proxy rejected are served at their last accepted
version (or not at all) until they change again.

Envoy NACKs a response it cannot apply and keeps its previous config. A NACK attributed to one
object version (pilot/xds/rejections.py) is recorded here with `reject`; from then on the
effective view (`by_kind`, what PushContexts are built from) holds, in place of that version,
the object's last accepted version — the newest earlier version that was not itself rejected —
or nothing when it never had one (e.g. it was rejected from its very first version, or istiod
restarted since: history is kept in memory only). Every proxy, including proxies that connect
later, is then served that, so one bad object never breaks a proxy that restarts.

A new version from the source (file edit, `istioctl apply`, API) clears the rejection: it is
tried afresh, and if it is rejected too it is reverted the same way. Deleting the object forgets
it. If a substituted version is rejected in turn, the next older one is served.

"Accepted" here means "served and not rejected" (the version that was live before the rejected
one). Up to `MAX_HISTORY` such versions are kept per object that has changed.

The rejection marker shown by /debug/configz (and read by `istioctl analyze`) is, merged into
the object's `status`:

    "status": {"rejected": {"message": ENVOY_MESSAGE, "proxy": "NAME.NAMESPACE",
                            "typeUrl": TYPE_URL, "version": OBJECT_VERSION, "at": RFC3339,
                            "serving": LAST_ACCEPTED_VERSION or ""}}

OBJECT_VERSION is `metadata.resourceVersion` (the file source stamps one, as an API server
does), or, when a source sets none, `sha256:` and 12 hex digits of a digest of the object.
`serving` is the version now served in its place ("" = the object is not served at all).

The file source (pilot/config/file.py) does the same for documents that fail validation: it
keeps the last valid version of the object. This module covers what only a proxy can find wrong.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pilot.config.store import ConfigEvent, ConfigStore, EventType, same_content
from pkg.config.model import Config, ConfigKey, Kind
from pkg.xds import typeurls

log = logging.getLogger(__name__)

MAX_HISTORY = 3


def object_version(config: Config[Any]) -> str:
    """The object's resourceVersion, or a digest of its content when the source sets none."""
    if config.meta.resource_version:
        return config.meta.resource_version
    if config.raw:
        data = json.dumps(config.raw, sort_keys=True, default=str)
    else:
        data = repr((config.meta, config.spec))
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()[:12]


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass(frozen=True, slots=True)
class Rejection:
    """One proxy's NACK, attributed to one version of one object."""

    key: ConfigKey
    version: str  # object_version() of the rejected version
    message: str  # Envoy's error_detail.message
    proxy: str  # NAME.NAMESPACE
    type_url: str
    at: float  # time.time()

    def marker(self, serving: str) -> dict[str, Any]:
        return {
            "message": self.message,
            "proxy": self.proxy,
            "typeUrl": self.type_url,
            "version": self.version,
            "at": rfc3339(self.at),
            "serving": serving,
        }


class LastGood:
    """The store's objects with rejected versions replaced by their last accepted ones.

    Feed it every store event (`observe`, before anything reads the view) and every attributed
    rejection (`reject`); both return the changes of the effective view, as store events, for
    the caller to push.
    """

    def __init__(self, store: ConfigStore) -> None:
        self._store = store
        self._history: dict[ConfigKey, tuple[Config[Any], ...]] = {}  # newest first
        self._rejected: dict[ConfigKey, Rejection] = {}
        self._revision = 0
        self._view: tuple[tuple[int, int], Mapping[Kind, tuple[Config[Any], ...]]] | None = None

    # ---- queries ---------------------------------------------------------------------------

    def rejection(self, key: ConfigKey) -> Rejection | None:
        return self._rejected.get(key)

    def rejections(self) -> list[Rejection]:
        return [self._rejected[k] for k in sorted(self._rejected)]

    def get(self, key: ConfigKey) -> Config[Any] | None:
        """The version served for `key` (None: not served)."""
        if key in self._rejected:
            history = self._history.get(key, ())
            return history[0] if history else None
        return self._store.get(key)

    def status(self, key: ConfigKey) -> dict[str, Any] | None:
        """The configz `status` entry for a rejected object; None when it is not rejected."""
        rejection = self._rejected.get(key)
        if rejection is None:
            return None
        served = self.get(key)
        return {"rejected": rejection.marker(object_version(served) if served else "")}

    def by_kind(self) -> Mapping[Kind, tuple[Config[Any], ...]]:
        """The effective objects by kind: the store's own mapping when nothing is rejected."""
        base = self._store.by_kind()
        if not self._rejected:
            return base
        stamp = (self._store.revision, self._revision)
        if self._view is not None and self._view[0] == stamp:
            return self._view[1]
        kinds = {key.kind for key in self._rejected}
        view = dict(base)
        for kind in kinds:
            served = (self.get(c.key) if c.key in self._rejected else c for c in base.get(kind, ()))
            view[kind] = tuple(c for c in served if c is not None)
        frozen = MappingProxyType(view)
        self._view = (stamp, frozen)
        return frozen

    # ---- changes ---------------------------------------------------------------------------

    def observe(self, events: Iterable[ConfigEvent]) -> list[ConfigEvent]:
        """Record the store's changes (a new version clears a rejection); returns them as
        changes of the effective view."""
        out: list[ConfigEvent] = []
        for event in events:
            key = event.key
            was_served = self.get(key) if key in self._rejected else event.old
            if event.new is None:
                self._history.pop(key, None)
                if self._rejected.pop(key, None) is not None:
                    self._revision += 1
                out.append(ConfigEvent(EventType.DELETE, key, was_served, None))
                continue
            if key in self._rejected:
                del self._rejected[key]
                self._revision += 1
                log.info("config %s changed: its new version is tried afresh", key)
            elif event.old is not None:
                # The version being replaced was served and not rejected: it is accepted.
                history = (event.old, *self._history.get(key, ()))
                self._history[key] = history[:MAX_HISTORY]
            kind = EventType.ADD if was_served is None else EventType.UPDATE
            if kind is event.type and was_served is event.old:
                out.append(event)
            else:
                out.append(ConfigEvent(kind, key, was_served, event.new))
        return out

    def reject(self, config: Config[Any], rejection: Rejection) -> list[ConfigEvent]:
        """A proxy rejected `config` (the version it was served). Returns the change of the
        effective view: empty when nothing changes (already rejected, or a stale version)."""
        key = config.key
        current = self._store.get(key)
        if current is None:
            return []
        history = self._history.get(key, ())
        if same_content(current, config):
            if key in self._rejected:
                return []
            self._rejected[key] = rejection
            self._revision += 1
            return self._changed(key, current, rejection, "rejected")
        # A substituted (last accepted) version was rejected in turn: drop it from the history.
        index = next((i for i, c in enumerate(history) if same_content(c, config)), None)
        if index is None:
            log.info("rejection of %s %s ignored: no longer current", key, rejection.version)
            return []
        self._history[key] = history[:index] + history[index + 1 :]
        if index != 0 or key not in self._rejected:
            return []
        self._revision += 1
        return self._changed(key, config, rejection, "its last accepted version was rejected")

    def _changed(
        self, key: ConfigKey, old: Config[Any], rejection: Rejection, what: str
    ) -> list[ConfigEvent]:
        served = self.get(key)
        if served is None:
            serving = "it is not served (no accepted version)"
            event = ConfigEvent(EventType.DELETE, key, old, None)
        else:
            serving = f"serving its last accepted version {object_version(served)}"
            event = ConfigEvent(EventType.UPDATE, key, old, served)
        log.warning(
            "config %s %s %s by proxy %s (%s): %s; %s",
            key,
            rejection.version,
            what,
            rejection.proxy,
            typeurls.short_name(rejection.type_url),
            rejection.message,
            serving,
        )
        return [event]


def with_status(raw: Mapping[str, Any], status: Mapping[str, Any] | None) -> dict[str, Any]:
    """The object as written, with `status` merged into its own status (configz)."""
    out = dict(raw)
    if status:
        existing = out.get("status")
        out["status"] = {**(existing if isinstance(existing, dict) else {}), **status}
    return out
