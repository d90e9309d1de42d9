"""Filter chains of Gateway servers that forward TCP rather than HTTP (Istio's
createGatewayTCPFilterChainOpts, buildGatewayNetworkFiltersFrom{TCP,TLS}Routes and
builtAutoPassthroughFilterChains, pilot/pkg/networking/core/gateway.go).

A VirtualService serves a server when it is bound to the server's gateway and one of its hosts
meets one of the server's (a `ns/host` server host only meets VirtualServices of namespace
`ns`); a route's match applies when its `port` (if any) is the server's port and its `gateways`
(if any) name the server's gateway.

- TCP server (no TLS): the first `tcp` route that applies, of the first VirtualService that
  has one; its destinations become a tcp_proxy (weighted when several). No route: no chain.
- TLS server terminating TLS (SIMPLE, MUTUAL, ISTIO_MUTUAL on protocol TLS): the same, on a
  chain matched on the server's hosts as SNI that terminates with the server's certificate.
- PASSTHROUGH server: one chain per applying `tls` route match, matched on its `sniHosts`
  (a host claimed twice on one port and bind is skipped: Envoy rejects equal matches), the
  bytes forwarded still encrypted.
- AUTO_PASSTHROUGH server: one chain per mesh service port (and DestinationRule subset) whose
  host the server covers, matched on SNI `outbound_.<port>_.<subset>_.<host>` and Istio's mTLS
  ALPNs, forwarding to the SNI-DNAT cluster of that name (`cluster_sni_dnat`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2

from pilot.model.gateway import GatewayServer
from pilot.model.proxy_view import ProxyView
from pilot.model.service import Protocol
from pilot.model.virtual_service_index import BoundVirtualService, resolve_gateway_name
from pilot.networking import naming
from pilot.networking.filters import tcp_proxy_filter
from pilot.networking.policy_filters import inbound_network_filters
from pilot.networking.tcp_routes import route_filters
from pilot.networking.tls import (
    ALL_ISTIO_MTLS_ALPNS,
    ALPN_HTTP,
    gateway_certificate_problem,
    gateway_server_downstream,
    transport_socket,
)
from pkg.config.host import intersects, matches

log = logging.getLogger(__name__)

# Istio's ALPNDownstreamWithMxc: what a TCP server terminating ISTIO_MUTUAL offers.
ALPN_DOWNSTREAM_MX = ("istio-peer-exchange", *ALPN_HTTP)


@dataclass
class ChainOpts:
    """A gateway filter chain before it is a proto (Istio's filterChainOpts)."""

    name: str = ""
    sni_hosts: tuple[str, ...] = ()
    alpns: tuple[str, ...] = ()
    tls_context: Any = None
    filters: list[Any] = field(default_factory=list)

    @property
    def needs_tls_inspector(self) -> bool:
        offers_alpn = self.tls_context is not None and bool(
            self.tls_context.common_tls_context.alpn_protocols
        )
        return bool(self.sni_hosts) or offers_alpn

    def to_proto(self) -> Any:
        chain = listener_components_pb2.FilterChain(name=self.name)
        names = [] if "*" in self.sni_hosts else list(self.sni_hosts)
        if names or self.alpns:  # else match-all, without a filter_chain_match (as Istio)
            chain.filter_chain_match.server_names.extend(names)
            chain.filter_chain_match.application_protocols.extend(self.alpns)
        if self.tls_context is not None:
            chain.transport_socket.CopyFrom(transport_socket(self.tls_context))
        chain.filters.extend(self.filters)
        return chain


def tcp_server_chains(
    view: ProxyView, entry: GatewayServer, tls_hosts: dict[int, dict[str, str]]
) -> list[ChainOpts]:
    """The chains of a server that is not HTTP (TCP, TLS, or HTTPS passed through)."""
    settings = entry.server.tls
    if settings is None:
        filters = _tcp_route_filters(view, entry)
        if not filters:
            _no_route(entry)
            return []
        return [ChainOpts(filters=[*inbound_network_filters(view), *filters])]
    if not entry.is_passthrough:
        problem = gateway_certificate_problem(settings, view.proxy.identity is not None)
        if problem:
            log.warning(
                "gateway %s server %s (%s) on port %d skipped: %s",
                entry.gateway_name,
                entry.server.port.name,
                entry.protocol,
                entry.port,
                problem,
            )
            return []
        filters = _tcp_route_filters(view, entry)
        if not filters:
            _no_route(entry)
            return []
        alpn = ALPN_DOWNSTREAM_MX if entry.tls_mode == "ISTIO_MUTUAL" else ALPN_HTTP
        return [
            ChainOpts(
                sni_hosts=entry.sni_hosts,
                tls_context=gateway_server_downstream(settings, alpn),
                filters=[*inbound_network_filters(view), *filters],
            )
        ]
    if entry.tls_mode == "AUTO_PASSTHROUGH":
        return _auto_passthrough_chains(view, entry)
    return _tls_route_chains(view, entry, tls_hosts.setdefault(entry.port, {}))


def _no_route(entry: GatewayServer) -> None:
    log.warning(
        "gateway %s server %s on port %d: no VirtualService tcp route applies, no filter chain",
        entry.gateway_name,
        entry.server.port.name,
        entry.port,
    )


def serves_hosts(server_hosts: Sequence[str], vs: BoundVirtualService) -> bool:
    """Istio's pickMatchingGatewayHosts is not empty: a VirtualService host meets a server
    host (`ns/host` only for VirtualServices of `ns`)."""
    for gw_host in server_hosts:
        name = gw_host
        if "/" in gw_host:
            namespace, name = gw_host.split("/", 1)
            if namespace != vs.namespace:
                continue
        if any(intersects(name, h) for h in vs.hosts):
            return True
    return False


def _l4_match(match: Any, entry: GatewayServer, vs_namespace: str) -> bool:
    """Istio's l4SingleMatch: the match's port and gateways (the rest cannot apply here)."""
    port_ok = not match.port or int(match.port) == int(entry.server.port.number)
    gateways = [resolve_gateway_name(g, vs_namespace) for g in match.gateways]
    return port_ok and (not gateways or entry.gateway_name in gateways)


def _bound(view: ProxyView, entry: GatewayServer) -> list[BoundVirtualService]:
    found = view.push.virtual_services.for_gateway(view.namespace, entry.gateway_name)
    return [vs for vs in found if serves_hosts(entry.hosts, vs)]


def _tcp_route_filters(view: ProxyView, entry: GatewayServer) -> list[Any]:
    port = int(entry.server.port.number)
    for vs in _bound(view, entry):
        for tcp in vs.spec.tcp:
            applies = not tcp.match or any(_l4_match(m, entry, vs.namespace) for m in tcp.match)
            if applies and tcp.route:
                return route_filters(view, vs, tcp.route, port)
    return []


def _tls_route_chains(
    view: ProxyView, entry: GatewayServer, known: dict[str, str]
) -> list[ChainOpts]:
    port = int(entry.server.port.number)
    chains: list[ChainOpts] = []
    for vs in _bound(view, entry):
        for tls in vs.spec.tls:
            if not tls.route:
                continue
            for index, match in enumerate(tls.match):
                if not _l4_match(match, entry, vs.namespace):
                    continue
                dups = sorted(h for h in match.sni_hosts if known.get(h) == entry.bind)
                if dups:
                    log.warning(
                        "gateway %s port %d: VirtualService %s/%s tls match %d skipped, "
                        "duplicate SNI hosts %s",
                        entry.gateway_name,
                        port,
                        vs.namespace,
                        vs.name,
                        index,
                        dups,
                    )
                    continue
                known.update(dict.fromkeys(match.sni_hosts, entry.bind))
                filters = [
                    *inbound_network_filters(view),
                    *route_filters(view, vs, tls.route, port),
                ]
                chains.append(ChainOpts(sni_hosts=tuple(match.sni_hosts), filters=filters))
    return chains


def _auto_passthrough_chains(view: ProxyView, entry: GatewayServer) -> list[ChainOpts]:
    chains: list[ChainOpts] = []
    for svc in view.scope.services:
        if svc.mesh_external or not any(matches(h, svc.hostname) for h in entry.sni_hosts):
            continue
        dr = view.push.destination_rule(view.namespace, svc, view.labels)
        subsets = [""] + ([s.name for s in dr.spec.subsets] if dr is not None else [])
        for port in svc.ports:
            if port.protocol is Protocol.UDP:
                continue
            for subset in subsets:
                name = naming.dns_srv_subset_key(port.port, subset, svc.hostname)
                chains.append(
                    ChainOpts(
                        sni_hosts=(name,),
                        alpns=ALL_ISTIO_MTLS_ALPNS,
                        filters=[tcp_proxy_filter(name)],
                    )
                )
    return chains
