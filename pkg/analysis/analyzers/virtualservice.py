"""VirtualService analyzers (Istio's pkg/config/analysis/analyzers/virtualservice).

- `virtualservice.GatewayAnalyzer`: each gateway named in `spec.gateways` exists (IST0101
  "gateway") and serves one of the VirtualService's hosts (IST0132).
- `virtualservice.DestinationHostAnalyzer`: each route and mirror destination is a known
  service (IST0101 "host" / "mirror host"), on a port it has (IST0101 "host:port"), with a
  port given when it has several (IST0112).
- `virtualservice.DestinationRuleAnalyzer`: each destination subset is defined by a
  DestinationRule for that host (IST0101 "host+subset in destinationrule").
- `virtualservice.ConflictingMeshGatewayHostsAnalyzer`: no two VirtualServices bound to the
  mesh gateway define the same host in the same export scope (IST0109).

Deviations from Istio, all to avoid false findings: gateway references are resolved as pilot
resolves them (`ns/name`, `./name`, legacy `name.ns.svc.cluster.local`); IST0132 is not added
when the gateway is missing; DestinationRule hosts may be wildcards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pkg.analysis import messages as m
from pkg.analysis.analyzers.base import MESH_GATEWAY, Analyzer, message
from pkg.analysis.inputs import ALL, LOCAL, AnalysisInput, ServiceInfo, fqdn
from pkg.analysis.messages import Message
from pkg.analysis.resource import Resource
from pkg.config import host as hosts
from pkg.config.model import Kind
from pkg.config.specs.networking import (
    Destination,
    DestinationRule,
    Gateway,
    VirtualService,
)


@dataclass(frozen=True, slots=True)
class _Dest:
    path: str  # of the destination's `host` field
    destination: Destination
    mirror: bool = False


def _route_destinations(vs: VirtualService) -> Iterator[_Dest]:
    """Route destinations in Istio's order: tcp, tls, then http."""
    rules: list[tuple[str, int, Sequence[Destination | None]]] = []
    rules.extend(("tcp", i, [rd.destination for rd in r.route]) for i, r in enumerate(vs.tcp))
    rules.extend(("tls", i, [rd.destination for rd in r.route]) for i, r in enumerate(vs.tls))
    rules.extend(("http", i, [rd.destination for rd in r.route]) for i, r in enumerate(vs.http))
    for rule, i, destinations in rules:
        for j, destination in enumerate(destinations):
            if destination is not None:
                yield _Dest(f"spec.{rule}[{i}].route[{j}].destination.host", destination)


def _mirror_destinations(vs: VirtualService) -> Iterator[_Dest]:
    for i, route in enumerate(vs.http):
        if route.mirror is not None:
            yield _Dest(f"spec.http[{i}].mirror.host", route.mirror, mirror=True)
        for j, mirror in enumerate(route.mirrors):
            if mirror.destination is not None:
                path = f"spec.http[{i}].mirrors[{j}].destination.host"
                yield _Dest(path, mirror.destination, mirror=True)


def resolve_gateway(reference: str, namespace: str) -> tuple[str, str]:
    """(namespace, name) of a gateway reference, as pilot resolves it."""
    ns, slash, name = reference.partition("/")
    if slash:
        return (namespace if ns == LOCAL else ns), name
    if "." not in reference:
        return namespace, reference
    name, _, rest = reference.partition(".")  # legacy FQDN: name.ns.svc.cluster.local
    return rest.split(".", 1)[0], name


def _gateway_hosts(gateway: Gateway, gateway_ns: str, vs_ns: str) -> list[str]:
    """The gateway's server hosts a VirtualService in `vs_ns` may bind to (Istio's
    sanitizeServerHostNamespace then host.NamesForNamespace)."""
    out: list[str] = []
    for server in gateway.servers:
        for h in server.hosts:
            ns, slash, name = h.partition("/")
            if not slash:
                out.append(h)
            elif ns == "*" or ns == vs_ns or (ns == LOCAL and gateway_ns == vs_ns):
                out.append(name)
    return out


def analyze_gateways(inp: AnalysisInput) -> Iterator[Message]:
    gateways = {(r.namespace, r.name): c.spec for r, c in inp.of_kind(Kind.GATEWAY)}
    for r, config in inp.of_kind(Kind.VIRTUAL_SERVICE):
        vs: VirtualService = config.spec
        for i, reference in enumerate(vs.gateways):
            if reference == MESH_GATEWAY:
                continue
            path = f"spec.gateways[{i}]"
            ns, name = resolve_gateway(reference, r.namespace)
            if not inp.exists(Kind.GATEWAY, ns, name):
                yield message(m.REFERENCED_RESOURCE_NOT_FOUND, r, "gateway", reference, path=path)
                continue
            gateway = gateways.get((ns, name))
            if gateway is None:
                continue  # present but invalid: the schema analyzer reports it
            served = _gateway_hosts(gateway, ns, r.namespace)
            if not any(hosts.intersects(g, h) for g in served for h in vs.hosts):
                yield message(
                    m.VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
                    r,
                    list(vs.hosts),
                    r.ref.full_name,
                    f"{ns}/{name}",
                    path=path,
                )


def _check_ports(r: Resource, d: _Dest, service: ServiceInfo) -> Iterator[Message]:
    port = d.destination.port.number if d.destination.port is not None else 0
    host = d.destination.host
    if not port:
        if len(service.ports) > 1:
            yield message(
                m.VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
                r,
                host,
                list(service.ports),
                path=d.path,
            )
        return
    if port not in service.ports:
        value = f"{host}:{port}"
        yield message(m.REFERENCED_RESOURCE_NOT_FOUND, r, "host:port", value, path=d.path)


def analyze_destination_hosts(inp: AnalysisInput) -> Iterator[Message]:
    for r, config in inp.of_kind(Kind.VIRTUAL_SERVICE):
        vs: VirtualService = config.spec
        for d in (*_route_destinations(vs), *_mirror_destinations(vs)):
            service = inp.services.lookup(r.namespace, vs.export_to, d.destination.host)
            if service is None:
                reftype = "mirror host" if d.mirror else "host"
                yield message(
                    m.REFERENCED_RESOURCE_NOT_FOUND, r, reftype, d.destination.host, path=d.path
                )
                continue
            yield from _check_ports(r, d, service)


def analyze_destination_subsets(inp: AnalysisInput) -> Iterator[Message]:
    defined: list[tuple[str, frozenset[str]]] = []
    for dr_resource, config in inp.of_kind(Kind.DESTINATION_RULE):
        dr: DestinationRule = config.spec
        names = frozenset(s.name for s in dr.subsets)
        defined.append((fqdn(dr_resource.namespace, dr.host), names))
    for r, config in inp.of_kind(Kind.VIRTUAL_SERVICE):
        vs: VirtualService = config.spec
        for d in (*_route_destinations(vs), *_mirror_destinations(vs)):
            subset = d.destination.subset
            if not subset:
                continue
            target = fqdn(r.namespace, d.destination.host)
            if any(subset in names and hosts.matches(h, target) for h, names in defined):
                continue
            reftype = (
                "mirror+subset in destinationrule"
                if d.mirror
                else ("host+subset in destinationrule")
            )
            value = f"{d.destination.host}+{subset}"
            yield message(m.REFERENCED_RESOURCE_NOT_FOUND, r, reftype, value, path=d.path)


def _mesh_scopes(vs: VirtualService, namespace: str) -> list[str]:
    if not vs.export_to or ALL in vs.export_to:
        return [ALL]
    return sorted({namespace if e == LOCAL else e for e in vs.export_to})


def analyze_conflicting_mesh_hosts(inp: AnalysisInput) -> Iterator[Message]:
    by_host: dict[tuple[str, str], list[Resource]] = {}
    for r, config in inp.of_kind(Kind.VIRTUAL_SERVICE):
        vs: VirtualService = config.spec
        if vs.gateways and MESH_GATEWAY not in vs.gateways:
            continue
        for scope in _mesh_scopes(vs, r.namespace):
            for h in dict.fromkeys(fqdn(r.namespace, h) for h in vs.hosts):
                by_host.setdefault((scope, h), []).append(r)
    reported: set[tuple[str, str]] = set()
    for (scope, h), found in sorted(by_host.items(), key=lambda item: item[0]):
        group = list(found)
        if scope != ALL:
            for (other_scope, other_host), more in by_host.items():
                if other_scope == ALL and hosts.intersects(h, other_host):
                    group.extend(more)
        if len(group) < 2:
            continue
        names = ",".join(sorted(v.ref.full_name for v in group))
        for vs_resource in group:
            key = (vs_resource.namespace, vs_resource.name)
            if key in reported:
                continue
            reported.add(key)
            yield message(
                m.CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
                vs_resource,
                names,
                f"{scope}/{h}",
                path="metadata.name",
            )


ANALYZERS = (
    Analyzer(
        "virtualservice.GatewayAnalyzer",
        "Checks the gateways associated with each virtual service",
        analyze_gateways,
    ),
    Analyzer(
        "virtualservice.DestinationHostAnalyzer",
        "Checks the destination hosts associated with each virtual service",
        analyze_destination_hosts,
    ),
    Analyzer(
        "virtualservice.DestinationRuleAnalyzer",
        "Checks the destination rules associated with each virtual service",
        analyze_destination_subsets,
    ),
    Analyzer(
        "virtualservice.ConflictingMeshGatewayHostsAnalyzer",
        "Checks if multiple virtual services associated with the mesh gateway have conflicting"
        " hosts",
        analyze_conflicting_mesh_hosts,
    ),
)
