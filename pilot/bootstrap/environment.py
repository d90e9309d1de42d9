"""Environment: the config store, the registries and the mesh config, joined for pushes.

It is the `PushInputsSource` of the DiscoveryServer and turns store events into push requests:
registry kinds (ServiceEntry, WorkloadEntry, Service, EndpointSlice) rebuild the registry
snapshot and push either the changed services (full) or only their endpoints (EDS); every
other kind pushes its own ConfigKey with reason `config`.

Objects are read through `LastGood` (pilot/config/last_good.py): a version a proxy rejected is
replaced by its last accepted one; `reject` records such a rejection and pushes the change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pilot.config.last_good import LastGood, Rejection
from pilot.config.store import ConfigEvent, ConfigStore
from pilot.model.endpoint import EndpointIndex
from pilot.model.jwks import JwksSnapshot
from pilot.model.push_context import PushInputs
from pilot.model.push_request import PushRequest, TriggerReason
from pilot.serviceregistry.aggregate import REGISTRY_KINDS, RegistrySnapshot, build_registry, diff
from pkg.config.mesh import MeshConfig
from pkg.config.model import Config, ConfigKey, Kind

log = logging.getLogger(__name__)


class Environment:
    def __init__(self, store: ConfigStore, mesh: MeshConfig, domain_suffix: str) -> None:
        self.store = store
        self.mesh = mesh
        self.domain_suffix = domain_suffix
        # The store's objects with proxy-rejected versions replaced by their last good ones.
        self.last_good = LastGood(store)
        self.registry = RegistrySnapshot()
        self._endpoints: EndpointIndex | None = None
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
            self.last_good.by_kind(), self.domain_suffix, self.mesh.trust_domain
        )
        self._endpoints = None
        return old

    # ---- PushInputsSource ------------------------------------------------------------------

    def push_inputs(self) -> PushInputs:
        return PushInputs(
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
            if full or workload_keys:
                requests.append(
                    PushRequest.of(full | eds | workload_keys, TriggerReason.SERVICE, start=now)
                )
            elif eds:
                requests.append(PushRequest.of(eds, TriggerReason.ENDPOINT, start=now))
        if config_keys:
            requests.append(PushRequest.of(config_keys, TriggerReason.CONFIG, start=now))
        if self._on_push is not None:
            for request in requests:
                self._on_push(request)


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
