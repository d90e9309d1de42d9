"""PushContext: the immutable snapshot of the world every generator reads.

Built from `PushInputs` (configs by kind, services, endpoints, mesh config) by `build`; an
endpoint-only change makes a new context with `with_endpoints`, sharing everything else. Derived
views that depend only on the snapshot (Sidecar scopes, proxy views, service targets) are
memoized per context: equal inputs give equal answers, so proxies that look alike share work.
Nothing in a PushContext is ever mutated after `build`, except that memo.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from pilot.model.authorization import AuthorizationPolicyIndex
from pilot.model.destination_rule_index import DestinationRuleIndex, MergedDestinationRule
from pilot.model.endpoint import EndpointIndex, IstioEndpoint
from pilot.model.gateway import ServiceTarget
from pilot.model.jwks import JwksSnapshot
from pilot.model.peer_authentication import PeerAuthenticationIndex
from pilot.model.request_authentication import RequestAuthenticationIndex
from pilot.model.service import Service
from pilot.model.service_index import ServiceIndex
from pilot.model.sidecar_scope import SidecarScope, build_sidecar_scope
from pilot.model.virtual_service_index import VirtualServiceIndex
from pkg.config.labels import selector_matches
from pkg.config.mesh import MeshConfig
from pkg.config.model import Config, Kind

T = TypeVar("T")

_EMPTY: Mapping[Kind, tuple[Config[Any], ...]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """A workload known by address (a WorkloadEntry or a Pod), used to recognise a connecting
    proxy."""

    name: str
    namespace: str
    address: str
    labels: Mapping[str, str]
    service_account: str
    locality: str = ""  # region/zone/subzone of the WorkloadEntry (a Pod's: of its Node)
    kind: str = "WorkloadEntry"  # or "Pod"


@dataclass(frozen=True, slots=True)
class PushInputs:
    configs: Mapping[Kind, tuple[Config[Any], ...]] = field(default_factory=lambda: _EMPTY)
    services: tuple[Service, ...] = ()
    endpoints: EndpointIndex = field(default_factory=EndpointIndex)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    domain_suffix: str = "cluster.local"
    jwks: JwksSnapshot = field(default_factory=JwksSnapshot)
    # Pods (Kubernetes registry) as workloads: by (namespace, IP) — ready pods — and by
    # (namespace, name).
    pods_by_ip: Mapping[tuple[str, str], WorkloadInfo] = field(default_factory=dict)
    pods_by_name: Mapping[tuple[str, str], WorkloadInfo] = field(default_factory=dict)


def _order(c: Config[Any]) -> tuple[float, str, str]:
    return (c.meta.creation_timestamp, c.namespace, c.name)


def _sidecar_order(c: Config[Any]) -> tuple[int, float, str]:
    return (0 if c.spec.workload_selector is not None else 1, c.meta.creation_timestamp, c.name)


_counter = 0


def next_version() -> str:
    """Istio's push version format: RFC3339 time and a counter."""
    global _counter
    _counter += 1
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + f"/{_counter}"


@dataclass(frozen=True, slots=True, eq=False)
class PushContext:
    version: str
    mesh: MeshConfig
    domain_suffix: str
    configs: Mapping[Kind, tuple[Config[Any], ...]]
    services: ServiceIndex
    virtual_services: VirtualServiceIndex
    destination_rules: DestinationRuleIndex
    gateways: tuple[Config[Any], ...]
    sidecars: Mapping[str, tuple[Config[Any], ...]]
    endpoints: EndpointIndex
    workloads: Mapping[tuple[str, str], WorkloadInfo]  # (namespace, address) → workload
    pods_by_name: Mapping[tuple[str, str], WorkloadInfo] = field(default_factory=dict)
    peer_authentication: PeerAuthenticationIndex = field(default_factory=PeerAuthenticationIndex)
    request_authentication: RequestAuthenticationIndex = field(
        default_factory=RequestAuthenticationIndex
    )
    jwks: JwksSnapshot = field(default_factory=JwksSnapshot)
    authorization: AuthorizationPolicyIndex = field(default_factory=AuthorizationPolicyIndex)
    errors: tuple[str, ...] = ()
    created: float = 0.0
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    # ---- construction -------------------------------------------------------------------

    @classmethod
    def build(cls, inputs: PushInputs, version: str | None = None) -> PushContext:
        mesh = inputs.mesh
        configs = {k: tuple(sorted(v, key=_order)) for k, v in inputs.configs.items()}
        services = ServiceIndex.build(inputs.services, mesh.default_service_export_to)
        vs_index = VirtualServiceIndex.build(
            configs.get(Kind.VIRTUAL_SERVICE, ()),
            mesh.default_virtual_service_export_to,
            inputs.domain_suffix,
        )
        dr_index = DestinationRuleIndex.build(
            configs.get(Kind.DESTINATION_RULE, ()),
            mesh.default_destination_rule_export_to,
            mesh.root_namespace,
            inputs.domain_suffix,
        )
        sidecars: dict[str, list[Config[Any]]] = {}
        for sc in sorted(configs.get(Kind.SIDECAR, ()), key=_sidecar_order):
            sidecars.setdefault(sc.namespace, []).append(sc)
        workloads: dict[tuple[str, str], WorkloadInfo] = {}
        for we in configs.get(Kind.WORKLOAD_ENTRY, ()):
            spec = we.spec
            labels = {**dict(we.meta.labels), **dict(spec.labels)}
            workloads.setdefault(
                (we.namespace, spec.address),
                WorkloadInfo(
                    we.name, we.namespace, spec.address, labels, spec.service_account, spec.locality
                ),
            )
        for key, pod in inputs.pods_by_ip.items():
            workloads.setdefault(key, pod)
        return cls(
            version=version or next_version(),
            mesh=mesh,
            domain_suffix=inputs.domain_suffix,
            configs=MappingProxyType(configs),
            services=services,
            virtual_services=vs_index,
            destination_rules=dr_index,
            gateways=configs.get(Kind.GATEWAY, ()),
            sidecars=MappingProxyType({k: tuple(v) for k, v in sidecars.items()}),
            endpoints=inputs.endpoints,
            workloads=MappingProxyType(workloads),
            pods_by_name=inputs.pods_by_name,
            peer_authentication=PeerAuthenticationIndex.build(
                configs.get(Kind.PEER_AUTHENTICATION, ()), mesh.root_namespace
            ),
            request_authentication=RequestAuthenticationIndex.build(
                configs.get(Kind.REQUEST_AUTHENTICATION, ()), mesh.root_namespace
            ),
            jwks=inputs.jwks,
            authorization=AuthorizationPolicyIndex.build(
                configs.get(Kind.AUTHORIZATION_POLICY, ()), mesh.root_namespace
            ),
            errors=dr_index.problems + vs_index.problems,
            created=time.monotonic(),
        )

    def with_endpoints(self, endpoints: EndpointIndex, version: str | None = None) -> PushContext:
        """The same snapshot with new endpoints (the endpoint-only fast path)."""
        return dataclasses.replace(
            self,
            version=version or next_version(),
            endpoints=endpoints,
            created=time.monotonic(),
            _memo={},
        )

    def without_memo(self) -> PushContext:
        """The same snapshot with nothing memoized (the cache verification mode rebuilds
        everything from it and compares)."""
        return dataclasses.replace(self, _memo={})

    # ---- memoized derived views --------------------------------------------------------------

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        try:
            value: T = self._memo[key]
        except KeyError:
            value = compute()
            self._memo[key] = value
        return value

    def list(self, kind: Kind) -> tuple[Config[Any], ...]:
        return self.configs.get(kind, ())

    def sidecar_config(self, namespace: str, labels: Mapping[str, str]) -> Config[Any] | None:
        """The Sidecar resource that applies to a workload (selector matches first, then the
        namespace default, then the root namespace default)."""
        for sc in self.sidecars.get(namespace, ()):
            selector = sc.spec.workload_selector
            if selector is None or selector_matches(selector.labels, labels):
                return sc
        for sc in self.sidecars.get(self.mesh.root_namespace, ()):
            if sc.spec.workload_selector is None:
                return sc
        return None

    def sidecar_scope(self, namespace: str, labels: Mapping[str, str]) -> SidecarScope:
        config = self.sidecar_config(namespace, labels)
        key = ("scope", namespace, config.key if config is not None else None)
        return self.memo(
            key,
            lambda: build_sidecar_scope(
                namespace,
                config,
                self.services,
                self.virtual_services,
                self.mesh.outbound_traffic_policy.value,
                self.domain_suffix,
            ),
        )

    def gateway_scope(self, namespace: str) -> SidecarScope:
        """Routers always see everything visible to their namespace (no Sidecar resource)."""
        return self.memo(
            ("gateway-scope", namespace),
            lambda: build_sidecar_scope(
                namespace,
                None,
                self.services,
                self.virtual_services,
                self.mesh.outbound_traffic_policy.value,
                self.domain_suffix,
            ),
        )

    def workload(self, namespace: str, ips: Sequence[str], name: str = "") -> WorkloadInfo | None:
        """A proxy's workload: by IP among the WorkloadEntries and ready Pods of its namespace,
        else the Pod named by the node id's `NAME.NS` (`name`)."""
        for ip in ips:
            found = self.workloads.get((namespace, ip))
            if found is not None:
                return found
        pod_name, dot, pod_ns = name.rpartition(".")
        if dot and pod_ns == namespace:
            return self.pods_by_name.get((namespace, pod_name))
        return None

    def service_targets(self, ips: Sequence[str]) -> tuple[ServiceTarget, ...]:
        """Service ports whose endpoints are at one of these addresses (Istio's
        GetProxyServiceTargets, which finds a proxy's services by its IP)."""
        index = self.memo("targets-by-ip", self._targets_by_ip)
        seen: set[tuple[str, str, int]] = set()
        out: list[ServiceTarget] = []
        for ip in ips:
            for target in index.get(ip, ()):
                key = (target.hostname, target.namespace, target.port)
                if key not in seen:
                    seen.add(key)
                    out.append(target)
        return tuple(out)

    def _targets_by_ip(self) -> Mapping[str, tuple[ServiceTarget, ...]]:
        out: dict[str, list[ServiceTarget]] = {}
        for svc in self.services.services:
            for ep in self.endpoints.get(svc.hostname, svc.namespace):
                port = svc.port_by_name(ep.service_port_name) if ep.service_port_name else None
                if port is None and ep.service_port:
                    port = svc.port_by_number(ep.service_port)
                if port is None:
                    continue
                out.setdefault(ep.address, []).append(
                    ServiceTarget(
                        svc.hostname,
                        svc.namespace,
                        port.port,
                        port.name,
                        port.protocol,
                        ep.port or port.target_port or port.port,
                    )
                )
        return {ip: tuple(v) for ip, v in out.items()}

    def destination_rule(
        self, proxy_namespace: str, service: Service, labels: Mapping[str, str] | None = None
    ) -> MergedDestinationRule | None:
        return self.destination_rules.lookup(
            proxy_namespace, service.hostname, service.namespace, labels
        )

    def service_endpoints(self, service: Service) -> tuple[IstioEndpoint, ...]:
        return self.endpoints.get(service.hostname, service.namespace)
