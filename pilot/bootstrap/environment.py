"""Environment: the config store, the registries and the mesh config, joined for pushes.

It is the `PushInputsSource` of the DiscoveryServer and turns store events into push requests:
registry kinds (ServiceEntry, WorkloadEntry, Service, EndpointSlice, Pod, Node) rebuild the
registry snapshot and push either the changed services (full) or only their endpoints (EDS);
every other kind pushes its own ConfigKey with reason `config`. A Pod whose proxy-relevant
identity changed (labels, service account, IPs, readiness) and that is the workload of a
connected proxy also pushes its own ConfigKey (reason `proxy`), which only that proxy takes
(Istio's ProxyUpdate); any other Pod or Node change pushes nothing but changed endpoints.

Objects are read through `LastGood` (pilot/config/last_good.py): a version a proxy rejected is
replaced by its last accepted one; `reject` records such a rejection and pushes the change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from pilot.config.last_good import LastGood, Rejection
from pilot.config.store import ConfigEvent, ConfigStore
from pilot.model.endpoint import EndpointIndex
from pilot.model.jwks import JwksSnapshot
from pilot.model.proxy import Proxy
from pilot.model.push_context import PushInputs
from pilot.model.push_request import PushRequest, TriggerReason
from pilot.serviceregistry.aggregate import REGISTRY_KINDS, RegistrySnapshot, build_registry, diff
from pilot.serviceregistry.pods import PodWorkloads, is_indexed
from pkg.config.mesh import MeshConfig
from pkg.config.model import Config, ConfigKey, Kind

log = logging.getLogger(__name__)


class Environment:
    def __init__(
        self,
        store: ConfigStore,
        mesh: MeshConfig,
        domain_suffix: str,
        *,
        require_pods: bool = False,
        send_unhealthy_endpoints: bool = False,
    ) -> None:
        self.store = store
        # Kubernetes mode: pods are watched, so endpoints wait for their pods.
        self.require_pods = require_pods
        self.send_unhealthy_endpoints = send_unhealthy_endpoints
        # The proxies connected now (set by bootstrap): a Pod change re-pushes one of them
        # when the Pod is its workload.
        self.connected_proxies: Callable[[], Iterable[Proxy]] = tuple
        self.mesh = mesh
        self.domain_suffix = domain_suffix
        # The store's objects with proxy-rejected versions replaced by their last good ones.
        self.last_good = LastGood(store)
        self.registry = RegistrySnapshot()
        self._endpoints: EndpointIndex | None = None
        self._pod_workloads: PodWorkloads | None = None
        self._on_push: Callable[[PushRequest], None] | None = None
        # The JWKS the RequestAuthentications need, as last fetched (set by bootstrap).
        self.jwks: Callable[[], JwksSnapshot] = JwksSnapshot
        self.rebuild_registry()
        store.add_handler(self._on_events)

    def set_push_handler(self, handler: Callable[[PushRequest], None]) -> None:
        self._on_push = handler

    def rebuild_registry(self) -> RegistrySnapshot:
        old = self.registry
        self.registry = build_registry(
            self.last_good.by_kind(),
            self.domain_suffix,
            self.mesh.trust_domain,
            require_pods=self.require_pods,
            send_unhealthy=self.send_unhealthy_endpoints,
        )
        self._endpoints = None
        self._pod_workloads = None
        return old

    # ---- PushInputsSource ------------------------------------------------------------------

    def push_inputs(self) -> PushInputs:
        if self._pod_workloads is None:
            self._pod_workloads = self.registry.pods.workloads()
        pods_by_ip, pods_by_name = self._pod_workloads
        return PushInputs(
            pods_by_ip=pods_by_ip,
            pods_by_name=pods_by_name,
            configs=self.last_good.by_kind(),
            services=self.registry.services,
            endpoints=self.endpoint_index(),
            mesh=self.mesh,
            domain_suffix=self.domain_suffix,
            jwks=self.jwks(),
        )

    def endpoint_index(self) -> EndpointIndex:
        if self._endpoints is None:
            self._endpoints = self.registry.endpoint_index()
        return self._endpoints

    # ---- change intake -----------------------------------------------------------------

    def reject(self, config: Config[Any], rejection: Rejection) -> bool:
        """A proxy rejected this version of an object: serve its last good version instead
        (pushed like a change). False when nothing changes (already reverted, or stale)."""
        events = self.last_good.reject(config, rejection)
        self._changed(events)
        return bool(events)

    def _on_events(self, events: list[ConfigEvent]) -> None:
        self._changed(self.last_good.observe(events))

    def _changed(self, events: list[ConfigEvent]) -> None:
        if not events:
            return
        now = time.monotonic()
        config_keys: set[ConfigKey] = set()
        registry_changed = False
        for event in events:
            if event.key.kind in REGISTRY_KINDS:
                registry_changed = True
            else:
                config_keys.add(event.key)
            log.info("config %s %s", event.type.value, event.key)
        requests: list[PushRequest] = []
        if registry_changed:
            old = self.rebuild_registry()
            full, eds = diff(old, self.registry)
            # A WorkloadEntry also describes the proxy running at its address: a change of its
            # labels or service account changes that proxy's scope, so it needs a full push.
            workload_keys = {e.key for e in events if _workload_identity_changed(e)}
            pod_keys = self._proxy_pods([e for e in events if _pod_identity_changed(e)])
            if full or workload_keys:
                requests.append(
                    PushRequest.of(
                        full | eds | workload_keys | pod_keys, TriggerReason.SERVICE, start=now
                    )
                )
            else:
                if eds:
                    requests.append(PushRequest.of(eds, TriggerReason.ENDPOINT, start=now))
                if pod_keys:
                    requests.append(PushRequest.of(pod_keys, TriggerReason.PROXY, start=now))
        if config_keys:
            requests.append(PushRequest.of(config_keys, TriggerReason.CONFIG, start=now))
        if self._on_push is not None:
            for request in requests:
                self._on_push(request)

    def _proxy_pods(self, events: list[ConfigEvent]) -> set[ConfigKey]:
        """The pods of `events` that are (or were) the workload of a connected proxy: by the
        node id's NAME.NS, or by IP (before or after the change) in the pod's namespace."""
        if not events:
            return set()
        names: set[tuple[str, str]] = set()
        ips: set[tuple[str, str]] = set()
        for proxy in self.connected_proxies():
            names.add((proxy.namespace, proxy.name))
            ips.update((proxy.namespace, ip) for ip in proxy.ip_addresses)
        out: set[ConfigKey] = set()
        for event in events:
            key = event.key
            pod_ips = {
                ip for c in (event.old, event.new) if c is not None for ip in c.spec.status.ips
            }
            if (key.namespace, f"{key.name}.{key.namespace}") in names or any(
                (key.namespace, ip) in ips for ip in pod_ips
            ):
                out.add(key)
        return out


def _pod_identity(config: Config[Any] | None) -> tuple[Any, ...] | None:
    """What a proxy takes from its pod (Istio re-pushes a proxy when these change)."""
    if config is None:
        return None
    return (
        tuple(sorted(config.meta.labels.items())),
        config.spec.spec.service_account_name,
        config.spec.spec.node_name,
        config.spec.status.ips,
        is_indexed(config),  # found by IP only while ready
    )


def _pod_identity_changed(event: ConfigEvent) -> bool:
    if event.key.kind is not Kind.POD:
        return False
    return _pod_identity(event.old) != _pod_identity(event.new)


def _workload_identity_changed(event: ConfigEvent) -> bool:
    if event.key.kind is not Kind.WORKLOAD_ENTRY:
        return False
    if event.old is None or event.new is None:
        return True
    old, new = event.old, event.new
    return (
        dict(old.spec.labels) != dict(new.spec.labels)
        or dict(old.meta.labels) != dict(new.meta.labels)
        or old.spec.service_account != new.spec.service_account
    )
