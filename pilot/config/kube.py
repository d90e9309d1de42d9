"""The Kubernetes config source: every Istio kind list+watched from an API server (`--kubeconfig`).

One `KindWatcher` thread per kind (and per namespace when scoped to a list of namespaces;
cluster-wide otherwise) watches the kind's preferred version (v1 where served) and hands what
it sees to the event loop, which owns all state: objects are parsed and validated exactly like
files (`pkg.config.schema.parse_object`), then reach the `ConfigStore` as upserts and deletes.
A list (the first one, or a relist after 410 Gone) is diffed against what this source holds for
that kind, so a relist produces exactly the ADDED/MODIFIED/DELETED changes that were missed.

An invalid object is reported (logged, `on_problems`, listed in `problems`) once per
resourceVersion, and the store keeps its last good version until it is valid again or deleted.
The API server's `metadata.resourceVersion` and `generation` are kept as they are: they name an
object's version in the push ledger and in rejections.

`synced` is set once every kind's initial list has been applied; istiod serves nothing before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from pilot.config.file import Problem
from pilot.config.kube_watch import (
    BACKOFF_MAX,
    WATCH_TIMEOUT,
    Changed,
    KindWatcher,
    Listed,
    Message,
    Target,
)
from pilot.config.store import ConfigStore
from pkg.config.model import Config, ConfigKey, Kind
from pkg.config.schema import SCHEMAS, KindSchema, parse_object
from pkg.kube.client import DELETED, KubeClient

log = logging.getLogger(__name__)

SOURCE = "kubernetes"  # the `path` of a Problem found in an API server object
STOP_TIMEOUT = 2.0


# The Kubernetes kinds istiod reads besides Istio's own (registry, credentials, namespaces).
KUBERNETES_KINDS = frozenset(
    {Kind.SERVICE, Kind.ENDPOINT_SLICE, Kind.SECRET, Kind.NAMESPACE, Kind.POD, Kind.NODE}
)

# As Istio's credentials controller: Helm release records and service-account tokens are
# Secrets istiod never serves, and they are most of a cluster's Secrets. istiod's own keys
# (istio-ca-secret, istiod-token-key: security/kube_secrets.py) are never config either: kept
# out of the store, they cannot reach /debug/configz or a gateway.
SECRET_FIELD_SELECTOR = (
    "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token,"
    "type!=istio.io/ca-root,type!=pyistio.io/token-signing-key"
)


def watched_schemas() -> tuple[KindSchema, ...]:
    """Every Istio kind, and the Kubernetes kinds of KUBERNETES_KINDS."""
    return tuple(s for s in SCHEMAS if s.istio or s.kind in KUBERNETES_KINDS)


def _field_selector(schema: KindSchema) -> str:
    return SECRET_FIELD_SELECTOR if schema.kind is Kind.SECRET else ""


def _identity(schema: KindSchema, obj: dict[str, Any], default_ns: str) -> ConfigKey:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    namespace = meta.get("namespace") or default_ns if schema.namespaced else ""
    return ConfigKey(schema.kind, str(meta.get("name", "")), str(namespace))


class KubeConfigSource:
    """Keeps `store` in sync with the Istio objects of an API server."""

    def __init__(
        self,
        kube: KubeClient,
        store: ConfigStore,
        *,
        namespaces: Sequence[str] = (),
        on_problems: Callable[[list[Problem]], None] | None = None,
        watch_timeout: int = WATCH_TIMEOUT,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        self.kube = kube
        self.store = store
        self.namespaces = tuple(namespaces)
        self._on_problems = on_problems
        scopes = self.namespaces or ("",)
        self.targets = tuple(
            Target(s, ns if s.namespaced else "", _field_selector(s))
            for s in watched_schemas()
            for ns in (scopes if s.namespaced else ("",))
        )
        self._watch_timeout = watch_timeout
        self._backoff_max = backoff_max
        self.watchers: list[KindWatcher] = []
        # target → key → the last good version of every object of that target
        self._objects: dict[Target, dict[ConfigKey, Config[Any]]] = {t: {} for t in self.targets}
        self._problems: dict[ConfigKey, Problem] = {}
        self._reported: set[tuple[ConfigKey, str]] = set()
        self._listed: set[Target] = set()
        self.resource_versions: dict[Target, str] = {}
        self.synced = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # (upserts, deletes) collected while a list is applied, else None.
        self._batch: tuple[list[Config[Any]], list[ConfigKey]] | None = None

    @property
    def problems(self) -> list[Problem]:
        return [self._problems[k] for k in sorted(self._problems)]

    def start(self) -> None:
        """Start one watch thread per target (call from the event loop)."""
        self._loop = asyncio.get_running_loop()
        # Every watch holds a connection: let the client's pool keep them all.
        pool = getattr(getattr(self.kube.api_client, "rest_client", None), "pool_manager", None)
        if pool is not None:
            pool.connection_pool_kw["maxsize"] = len(self.targets) + 4
            pool.clear()
        for target in self.targets:
            watcher = KindWatcher(
                self.kube,
                target,
                self._deliver,
                watch_timeout=self._watch_timeout,
                backoff_max=self._backoff_max,
            )
            self.watchers.append(watcher)
            watcher.start()

    async def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop every watch thread; False if some did not end within `timeout`."""
        for watcher in self.watchers:
            watcher.stop()

        def join() -> bool:
            return all(w.join(timeout) for w in self.watchers)

        ended = await asyncio.to_thread(join)
        if not ended:
            log.warning("some Kubernetes watch threads did not stop within %.1fs", timeout)
        self._loop = None
        return ended

    def _deliver(self, message: Message) -> None:
        """Called from a watch thread: hand the message to the event loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self.apply, message)

    # ---- on the event loop -----------------------------------------------------------------

    def apply(self, message: Message) -> None:
        target = message.target
        self.resource_versions[target] = message.resource_version
        new_problems: list[Problem] = []
        if isinstance(message, Listed):
            self._relist(target, message.items, new_problems)
            if target not in self._listed:
                self._listed.add(target)
                if len(self._listed) == len(self.targets):
                    log.info("Kubernetes config synced: %d objects", len(self.store))
                    self.synced.set()
        elif isinstance(message, Changed):
            key = _identity(target.schema, message.obj, target.namespace or "default")
            if message.type == DELETED:
                self._delete(target, key)
            else:
                self._upsert(target, key, message.obj, new_problems)
        if new_problems and self._on_problems is not None:
            self._on_problems(new_problems)

    def _relist(
        self, target: Target, items: tuple[dict[str, Any], ...], new_problems: list[Problem]
    ) -> None:
        default_ns = target.namespace or "default"
        listed = {_identity(target.schema, obj, default_ns): obj for obj in items}
        # One store change for the whole list: its handlers (the registry) run once.
        self._batch = ([], [])
        try:
            for key in sorted(self._objects[target].keys() - listed.keys()):
                self._delete(target, key)
            for key in sorted(self._problems.keys() - listed.keys()):
                if self._in(target, key):
                    self._delete(target, key)
            for key in sorted(listed):
                self._upsert(target, key, listed[key], new_problems)
        finally:
            upserts, deletes = self._batch
            self._batch = None
            self.store.apply_changes(upserts, deletes)

    def _in(self, target: Target, key: ConfigKey) -> bool:
        return key.kind == target.schema.kind and (
            not target.namespace or key.namespace == target.namespace
        )

    def _delete(self, target: Target, key: ConfigKey) -> None:
        self._problems.pop(key, None)
        if self._objects[target].pop(key, None) is not None:
            if self._batch is not None:
                self._batch[1].append(key)
            else:
                self.store.delete(key)

    def _upsert(
        self, target: Target, key: ConfigKey, obj: dict[str, Any], new_problems: list[Problem]
    ) -> None:
        result = parse_object(obj, default_namespace=target.namespace or "default", observed=True)
        if result.config is not None:
            self._problems.pop(key, None)
            config = result.config
            if config.key != key:  # cannot happen with a well-behaved server
                log.warning("object %s listed as %s", config.key, key)
            self._objects[target][config.key] = config
            if self._batch is not None:
                self._batch[0].append(config)
            else:
                self.store.upsert(config)
            return
        if result.ignored:
            return
        rv = ""
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            rv = str(meta.get("resourceVersion", ""))
        message = "; ".join(f"{e.path}: {e.reason}" for e in result.errors) or "invalid"
        if key in self._objects[target]:
            kept = self._objects[target][key].meta.resource_version
            message += f" (serving its last good version, resourceVersion {kept})"
        problem = Problem(SOURCE, -1, key.kind.value, key.namespace, key.name, message)
        self._problems[key] = problem
        if (key, rv) not in self._reported:
            self._reported.add((key, rv))
            log.warning("config rejected: %s", problem)
            new_problems.append(problem)
