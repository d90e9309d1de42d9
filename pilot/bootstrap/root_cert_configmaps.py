"""The mesh root published as ConfigMap `istio-ca-root-cert` in every namespace (Kubernetes mode).

Istio's namespace controller (pilot/pkg/serviceregistry/kube/controller/namespacecontroller.go):
every namespace but kube-public, kube-node-lease and local-path-storage (and one being deleted)
gets a ConfigMap `istio-ca-root-cert` labelled `istio.io/config: "true"` whose `root-cert.pem`
is the mesh trust bundle. Created when a namespace appears, put back when someone deletes it,
its `root-cert.pem` restored when someone edits it (other keys are left alone), updated when the
trust bundle changes. Only the leader writes (`leading()`); a replica that becomes leader
reconciles every namespace.

Inputs, all on the event loop: Namespace objects from the config store, the ConfigMaps named
`istio-ca-root-cert` from a watch (`observe`), and `trust_bundle_changed()`. Each marks
namespaces dirty; `run()` writes what differs, off the event loop, one namespace at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pilot.config.store import ConfigEvent, ConfigStore
from pkg.config.model import ConfigKey, Kind
from pkg.kube.client import CONFLICT, KubeClient, status_of

log = logging.getLogger(__name__)

CONFIGMAP = "istio-ca-root-cert"  # Istio's CACertNamespaceConfigMap
DATA_KEY = "root-cert.pem"  # constants.CACertNamespaceConfigMapDataName
LABELS = {"istio.io/config": "true"}
IGNORED_NAMESPACES = frozenset({"kube-public", "kube-node-lease", "local-path-storage"})
RETRY_DELAY = 0.5  # seconds before a failed write is tried again
NOT_FOUND, FORBIDDEN = 404, 403


class RootCertPublisher:
    def __init__(
        self,
        kube: KubeClient,
        store: ConfigStore,
        trust_bundle: Callable[[], bytes],
        leading: Callable[[], bool],
    ) -> None:
        self.kube = kube
        self.store = store
        self._trust_bundle = trust_bundle
        self._leading = leading
        self._configmaps: dict[str, dict[str, Any]] = {}  # namespace → the last copy seen
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self.writes = 0
        store.add_handler(self._config_events)

    # ---- inputs (event loop) ---------------------------------------------------------------

    def _config_events(self, events: list[ConfigEvent]) -> None:
        namespaces = [e.key.name for e in events if e.key.kind is Kind.NAMESPACE and e.new]
        self.mark(namespaces)

    def observe_list(self, items: Iterable[Mapping[str, Any]]) -> None:
        """The ConfigMap watch (re)listed: the current ConfigMaps named istio-ca-root-cert."""
        before = set(self._configmaps)
        self._configmaps = {_namespace(o): dict(o) for o in items}
        self.mark(before | set(self._configmaps) | set(self.namespaces()))

    def observe(self, event: str, obj: Mapping[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) of a ConfigMap named istio-ca-root-cert."""
        namespace = _namespace(obj)
        if event == "DELETED":
            self._configmaps.pop(namespace, None)
        else:
            self._configmaps[namespace] = dict(obj)
        self.mark([namespace])

    def trust_bundle_changed(self) -> None:
        self.mark(self.namespaces())

    def leadership_changed(self, leading: bool) -> None:
        if leading:
            self.mark(self.namespaces())

    def mark(self, namespaces: Iterable[str]) -> None:
        self._dirty.update(namespaces)
        if self._dirty:
            self._wake.set()

    def namespaces(self) -> list[str]:
        """The namespaces that should have the ConfigMap."""
        return [c.name for c in self.store.list(Kind.NAMESPACE) if self._wanted(c.name)]

    def _wanted(self, namespace: str) -> bool:
        if namespace in IGNORED_NAMESPACES:
            return False
        config = self.store.get(_namespace_key(namespace))
        if config is None:
            return False
        status = config.raw.get("status") if isinstance(config.raw, Mapping) else None
        return not (isinstance(status, Mapping) and status.get("phase") == "Terminating")

    # ---- the writer --------------------------------------------------------------------------

    def pending(self) -> list[str]:
        """Namespaces whose ConfigMap differs from what it should be (leader or not)."""
        bundle = self._trust_bundle().decode()
        return sorted(ns for ns in self.namespaces() if self._differs(ns, bundle))

    def _differs(self, namespace: str, bundle: str) -> bool:
        current = self._configmaps.get(namespace)
        return current is None or (current.get("data") or {}).get(DATA_KEY) != bundle

    async def run(self) -> None:
        """Write what differs, while leading; until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._leading():
                self._dirty.clear()
                continue
            dirty, self._dirty = sorted(self._dirty), set()
            bundle = self._trust_bundle().decode()
            failed = []
            for namespace in dirty:
                if not self._wanted(namespace) or not self._differs(namespace, bundle):
                    continue
                current = self._configmaps.get(namespace)
                try:
                    written = await asyncio.to_thread(self._write, namespace, current, bundle)
                except Exception as e:
                    log.warning("ConfigMap %s/%s not written (retrying): %s",
                                namespace, CONFIGMAP, e)  # fmt: skip
                    failed.append(namespace)
                    continue
                if written is not None:
                    self._configmaps[namespace] = written
            if failed:
                await asyncio.sleep(RETRY_DELAY)
                self.mark(failed)

    def _write(
        self, namespace: str, current: Mapping[str, Any] | None, bundle: str, retry: bool = True
    ) -> dict[str, Any] | None:
        """Create or update the ConfigMap (in a worker thread); the written object, or None
        when there is nothing to do (namespace gone, no permission). A copy that changed
        meanwhile is read again and written once more."""
        core = self.kube.core()
        try:
            if current is None:
                body = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": CONFIGMAP, "namespace": namespace, "labels": LABELS},
                    "data": {DATA_KEY: bundle},
                }
                resp = core.create_namespaced_config_map(namespace, body, _preload_content=False)
                log.info("created ConfigMap %s/%s", namespace, CONFIGMAP)
            else:
                data = {**(current.get("data") or {}), DATA_KEY: bundle}
                resp = core.replace_namespaced_config_map(
                    CONFIGMAP, namespace, {**current, "data": data}, _preload_content=False
                )
                log.info("updated ConfigMap %s/%s", namespace, CONFIGMAP)
        except Exception as e:
            status = status_of(e)
            if status == FORBIDDEN or (status == NOT_FOUND and current is None):
                log.info("not writing ConfigMap %s/%s: %s", namespace, CONFIGMAP, status)
                return None
            if retry and status in (CONFLICT, NOT_FOUND):  # changed or deleted meanwhile
                return self._write(namespace, self._read(namespace), bundle, retry=False)
            raise
        self.writes += 1
        written: dict[str, Any] = json.loads(resp.data)
        return written

    def _read(self, namespace: str) -> dict[str, Any] | None:
        try:
            resp = self.kube.core().read_namespaced_config_map(
                CONFIGMAP, namespace, _preload_content=False
            )
        except Exception as e:
            if status_of(e) == NOT_FOUND:
                return None
            raise
        obj: dict[str, Any] = json.loads(resp.data)
        return obj


def _namespace(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace", ""))


def _namespace_key(name: str) -> ConfigKey:
    return ConfigKey(Kind.NAMESPACE, name, "")
