"""SidecarScope: what a sidecar may reach, from its Sidecar resource (or the mesh default).

Each egress listener imports hosts written `namespace/dnsName` (`*` any namespace, `.` the
sidecar's own, a `~` prefix excludes); the services and VirtualServices it imports are those
visible to the sidecar's namespace and matching those hosts. Destinations named by imported
VirtualServices are imported too. Without a Sidecar resource, one egress listener imports `*/*`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pilot.model.service import Protocol, Registry, Service, ServicePort
from pilot.model.service_index import ServiceIndex
from pilot.model.virtual_service_index import (
    MESH_GATEWAY,
    BoundVirtualService,
    VirtualServiceIndex,
)
from pkg.config.host import intersects, matches, resolve_short_name
from pkg.config.model import Config

WILDCARD_NS = "*"
CURRENT_NS = "."


@dataclass(frozen=True, slots=True)
class HostImports:
    """Imported hosts of one namespace key ("*" or a namespace)."""

    exact: frozenset[str]
    patterns: tuple[str, ...]
    excluded: tuple[str, ...] = ()

    def excludes(self, hostname: str) -> bool:
        return any(matches(pattern, hostname) for pattern in self.excluded)

    def matches_service(self, hostname: str) -> bool:
        if hostname in self.exact:
            return True
        return any(matches(pattern, hostname) for pattern in self.patterns)

    def matches_vs(self, vs_host: str) -> bool:
        if vs_host in self.exact:
            return True
        return any(intersects(pattern, vs_host) for pattern in self.patterns)


def parse_hosts(hosts: Iterable[str], namespace: str) -> dict[str, HostImports]:
    exact: dict[str, set[str]] = {}
    patterns: dict[str, list[str]] = {}
    excluded: dict[str, list[str]] = {}
    for entry in hosts:
        if entry.count("/") != 1:
            continue  # rejected by validation; ignore defensively
        ns, name = entry.split("/")
        is_excluded = ns.startswith("~")
        if is_excluded:
            ns = ns[1:] or WILDCARD_NS
        if ns == CURRENT_NS:
            ns = namespace
        if is_excluded:
            excluded.setdefault(ns, []).append(name)
            continue
        patterns.setdefault(ns, []).append(name)
        if not name.startswith("*"):
            exact.setdefault(ns, set()).add(name)
    keys = set(patterns) | set(excluded)
    return {
        ns: HostImports(
            frozenset(exact.get(ns, ())), tuple(patterns.get(ns, ())), tuple(excluded.get(ns, ()))
        )
        for ns in keys
    }


@dataclass(frozen=True, slots=True)
class EgressListener:
    port: int  # 0: the catch-all listener (no port)
    protocol: Protocol
    port_name: str
    bind: str
    capture_mode: str
    hosts: Mapping[str, HostImports]
    services: tuple[Service, ...]
    virtual_services: tuple[BoundVirtualService, ...]

    @property
    def is_catch_all(self) -> bool:
        return self.port == 0


@dataclass(frozen=True, slots=True)
class SidecarScope:
    namespace: str
    config: Config[Any] | None
    egress: tuple[EgressListener, ...]
    services: tuple[Service, ...]
    services_by_host: Mapping[str, Service] = field(default_factory=dict)
    outbound_mode: str = "ALLOW_ANY"

    @property
    def name(self) -> str:
        return self.config.name if self.config is not None else "default"

    @property
    def ingress(self) -> tuple[Any, ...]:
        return tuple(self.config.spec.ingress) if self.config is not None else ()

    def service(self, hostname: str) -> Service | None:
        return self.services_by_host.get(hostname)

    def egress_for_port(self, port: int, bind: str = "") -> EgressListener | None:
        for listener in self.egress:
            if listener.is_catch_all:
                return listener
            if listener.port == port and (not bind or listener.bind == bind):
                return listener
        return None


def _select_services(
    candidates: Sequence[Service],
    imports: Mapping[str, HostImports],
    namespace: str,
    port: int,
) -> tuple[Service, ...]:
    wildcard = imports.get(WILDCARD_NS)
    picked: list[Service] = []
    for svc in candidates:
        own = imports.get(svc.namespace)
        if (own is not None and own.excludes(svc.hostname)) or (
            wildcard is not None and wildcard.excludes(svc.hostname)
        ):
            continue
        matched = (own is not None and own.matches_service(svc.hostname)) or (
            wildcard is not None and wildcard.matches_service(svc.hostname)
        )
        if not matched:
            continue
        if port:
            only = svc.port_by_number(port)
            if only is None:
                continue
            if len(svc.ports) > 1:
                svc = _with_ports(svc, (only,))
        picked.append(svc)
    # One service per hostname: the sidecar's own namespace first, then Kubernetes over
    # ServiceEntry, else the first seen.
    chosen: dict[str, Service] = {}
    for svc in picked:
        current = chosen.get(svc.hostname)
        if (
            current is None
            or svc.namespace == namespace
            or (
                current.registry is not Registry.KUBERNETES
                and svc.registry is Registry.KUBERNETES
                and current.namespace != namespace
            )
        ):
            chosen[svc.hostname] = svc
    return tuple(s for s in picked if chosen[s.hostname] is s)


def _with_ports(svc: Service, ports: tuple[ServicePort, ...]) -> Service:
    from dataclasses import replace

    return replace(svc, ports=ports)


def _select_virtual_services(
    vs_index: VirtualServiceIndex, namespace: str, imports: Mapping[str, HostImports]
) -> tuple[BoundVirtualService, ...]:
    out = []
    wildcard = imports.get(WILDCARD_NS)
    for vs in vs_index.for_gateway(namespace, MESH_GATEWAY):
        scopes = [s for s in (imports.get(vs.namespace), wildcard) if s is not None]
        if any(scope.matches_vs(h) for scope in scopes for h in vs.hosts):
            out.append(vs)
    return tuple(out)


def build_sidecar_scope(
    namespace: str,
    config: Config[Any] | None,
    services: ServiceIndex,
    virtual_services: VirtualServiceIndex,
    mesh_outbound_mode: str,
    domain_suffix: str,
) -> SidecarScope:
    spec = config.spec if config is not None else None
    egress_specs: list[Any] = list(spec.egress) if spec is not None else []
    visible = services.visible_to(namespace)
    listeners: list[EgressListener] = []
    if not egress_specs:
        listeners.append(
            _egress(namespace, None, ("*/*",), visible, virtual_services, "", "DEFAULT")
        )
    for egress in egress_specs:
        listeners.append(
            _egress(
                namespace,
                egress.port,
                tuple(egress.hosts),
                visible,
                virtual_services,
                egress.bind,
                str(egress.capture_mode or "DEFAULT"),
            )
        )
    # All imported services, then the destinations of imported VirtualServices.
    by_host: dict[str, Service] = {}
    ordered: list[Service] = []
    for listener in listeners:
        for svc in listener.services:
            if svc.hostname not in by_host:
                by_host[svc.hostname] = svc
                ordered.append(svc)
    for listener in listeners:
        for vs in listener.virtual_services:
            for host in _destination_hosts(vs, domain_suffix):
                if host in by_host:
                    continue
                found = services.for_host(host, namespace)
                if found is not None:
                    by_host[host] = found
                    ordered.append(found)
    mode = mesh_outbound_mode
    if spec is not None and spec.outbound_traffic_policy is not None:
        mode = str(spec.outbound_traffic_policy.mode or mesh_outbound_mode)
    return SidecarScope(
        namespace=namespace,
        config=config,
        egress=tuple(listeners),
        services=tuple(ordered),
        services_by_host=MappingProxyType(by_host),
        outbound_mode=mode,
    )


def _egress(
    namespace: str,
    port_spec: Any,
    hosts: tuple[str, ...],
    visible: Sequence[Service],
    virtual_services: VirtualServiceIndex,
    bind: str,
    capture_mode: str,
) -> EgressListener:
    imports = parse_hosts(hosts, namespace)
    number = int(port_spec.number) if port_spec is not None else 0
    protocol = Protocol.parse(port_spec.protocol) if port_spec is not None else Protocol.TCP
    match_port = number if number and protocol is not Protocol.HTTP_PROXY else 0
    return EgressListener(
        port=number,
        protocol=protocol,
        port_name=port_spec.name if port_spec is not None else "",
        bind=bind,
        capture_mode=capture_mode,
        hosts=MappingProxyType(imports),
        services=_select_services(visible, imports, namespace, match_port),
        virtual_services=_select_virtual_services(virtual_services, namespace, imports),
    )


def _destination_hosts(vs: BoundVirtualService, domain_suffix: str) -> list[str]:
    out: list[str] = []
    spec = vs.spec
    for route_list in (spec.http, spec.tcp, spec.tls):
        for route in route_list:
            for dest in route.route:
                if dest.destination is not None and dest.destination.host:
                    out.append(
                        resolve_short_name(dest.destination.host, vs.namespace, domain_suffix)
                    )
    for route in spec.http:
        mirrors = list(route.mirrors)
        if route.mirror is not None:
            out.append(resolve_short_name(route.mirror.host, vs.namespace, domain_suffix))
        for mirror in mirrors:
            if mirror.destination is not None:
                out.append(resolve_short_name(mirror.destination.host, vs.namespace, domain_suffix))
    return out
