"""Outbound TCP and TLS filter chains of sidecars (Istio's tls.go).

For a TCP port, the VirtualService `tcp` routes of the service decide the tcp_proxy (one
cluster, or weighted clusters); the first route that matches any destination ends the list,
routes matching `destinationSubnets` become chains with prefix ranges; with no route, the
service's own cluster. For a TLS/HTTPS port, `tls` routes match on SNI. A service with no VIP
shares `0.0.0.0_<port>` with others, so its chain matches its host name as SNI (and the listener
inspects TLS to read it); other TLS traffic falls through to the passthrough chain.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pilot.model.proxy_view import ProxyView
from pilot.model.service import Service
from pilot.model.virtual_service_index import MESH_GATEWAY, BoundVirtualService
from pilot.networking import naming
from pilot.networking.filters import tcp_proxy_filter
from pilot.networking.route_action import destination_cluster
from pkg.config.host import intersects, resolve_short_name


@dataclass
class NetChain:
    """A non-HTTP outbound filter chain: its match and its network filters."""

    filters: list[Any]
    sni_hosts: tuple[str, ...] = ()
    cidrs: tuple[str, ...] = ()
    config: str = ""  # provenance: the VirtualService behind the chain
    alpns: tuple[str, ...] = field(default=())

    @property
    def match_key(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        return (tuple(sorted(self.sni_hosts)), tuple(sorted(self.cidrs)), self.alpns)

    @property
    def is_match_all(self) -> bool:
        return not self.sni_hosts and not self.cidrs and not self.alpns


def virtual_services_for_host(
    hostname: str, virtual_services: Sequence[BoundVirtualService]
) -> list[BoundVirtualService]:
    return [vs for vs in virtual_services if any(intersects(h, hostname) for h in vs.hosts)]


def _static_match(
    match: Any, labels: Mapping[str, str], gateways: Collection[str], port: int, namespace: str
) -> bool:
    """Istio's matchTCP/matchTLS: what can be decided while generating."""
    if match is None:
        return True
    gateway_ok = not match.gateways or any(g in gateways for g in match.gateways)
    labels_ok = all(labels.get(k) == v for k, v in match.source_labels.items())
    port_ok = not match.port or int(match.port) == port
    ns_ok = not match.source_namespace or match.source_namespace == namespace
    return bool(gateway_ok and labels_ok and port_ok and ns_ok)


def route_filters(
    view: ProxyView, vs: BoundVirtualService, routes: Sequence[Any], port: int
) -> list[Any]:
    """tcp_proxy for a tcp/tls route's destinations (weighted when several)."""
    push = view.push

    def cluster_of(dest: Any) -> str:
        host = resolve_short_name(dest.host, vs.namespace, push.domain_suffix)
        svc = view.scope.service(host) or push.services.for_host(host, view.namespace)
        return destination_cluster(dest, host, svc, port)

    if len(routes) == 1:
        cluster = cluster_of(routes[0].destination)
        return [tcp_proxy_filter(cluster)]
    weighted = [(cluster_of(r.destination), int(r.weight)) for r in routes if r.weight > 0]
    return [tcp_proxy_filter(weighted[0][0], f"{vs.name}.{vs.namespace}", weighted)]


def _default_cluster(svc: Service, port: int) -> str:
    number = svc.ports[0].port if len(svc.ports) == 1 else port
    return naming.outbound_cluster(number, "", svc.hostname)


def tcp_chains(
    view: ProxyView,
    svc: Service,
    port: int,
    virtual_services: Sequence[BoundVirtualService],
    cidrs: tuple[str, ...] = (),
) -> list[NetChain]:
    out: list[NetChain] = []
    gateways = (MESH_GATEWAY,)
    for vs in virtual_services_for_host(svc.hostname, virtual_services):
        for tcp in vs.spec.tcp:
            if not tcp.route:
                continue
            config = naming.virtual_service_config_path(vs.namespace, vs.name)
            if not tcp.match:
                out.append(NetChain(route_filters(view, vs, tcp.route, port), (), cidrs, config))
                return out
            subnets: list[str] = []
            for match in tcp.match:
                if not _static_match(match, view.labels, gateways, port, view.namespace):
                    continue
                if not match.destination_subnets:
                    filters = route_filters(view, vs, tcp.route, port)
                    out.append(NetChain(filters, (), cidrs, config))
                    return out
                subnets.extend(match.destination_subnets)
            if subnets:
                filters = route_filters(view, vs, tcp.route, port)
                out.append(NetChain(filters, (), tuple(subnets), config))
    out.append(NetChain([tcp_proxy_filter(_default_cluster(svc, port))], (), cidrs))
    return out


def tls_chains(
    view: ProxyView,
    svc: Service,
    port: int,
    virtual_services: Sequence[BoundVirtualService],
    shares_wildcard: bool,
    cidrs: tuple[str, ...] = (),
) -> list[NetChain]:
    out: list[NetChain] = []
    handled: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    gateways = (MESH_GATEWAY,)
    for vs in virtual_services_for_host(svc.hostname, virtual_services):
        for tls in vs.spec.tls:
            if not tls.route:
                continue
            for match in tls.match:
                if not _static_match(match, view.labels, gateways, port, view.namespace):
                    continue
                subnets = tuple(match.destination_subnets) or cidrs
                key = (tuple(match.sni_hosts), tuple(match.destination_subnets))
                if key in handled:
                    continue
                handled.add(key)
                out.append(
                    NetChain(
                        route_filters(view, vs, tls.route, port),
                        tuple(match.sni_hosts),
                        subnets,
                        naming.virtual_service_config_path(vs.namespace, vs.name),
                    )
                )
    if out:
        return out
    sni = (svc.hostname,) if (shares_wildcard or cidrs) else ()
    return [NetChain([tcp_proxy_filter(_default_cluster(svc, port))], sni, cidrs)]
