"""LDS for sidecars (Istio's buildSidecarOutboundListeners / buildInboundListeners).

REDIRECT mode: `virtualOutbound` (0.0.0.0:15001, original destination) hands connections to
per-port outbound listeners that do not bind (`0.0.0.0_9080` for HTTP, `<VIP>_<port>` for TCP
and sniffed services); `virtualInbound` (0.0.0.0:15006) has one filter chain per port the
workload serves plus passthrough chains.

NONE mode: no iptables, so listeners bind real sockets: outbound listeners on localhost (or the
Sidecar egress `bind`), inbound listeners only for the Sidecar `ingress` entries (Istio creates
none from services in NONE mode: they would clash with the workload's own ports).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2

from pilot.model.proxy import InterceptionMode
from pilot.model.proxy_view import ProxyView
from pilot.model.service import Protocol, Registry, Service
from pilot.model.sidecar_scope import EgressListener
from pilot.networking import naming
from pilot.networking.filters import (
    PLAINTEXT_HTTP_ALPNS,
    hcm_filter,
    http_connection_manager,
    http_inspector_filter,
    tcp_proxy_filter,
    tls_inspector_filter,
)
from pilot.networking.listener_common import OUTBOUND, WILDCARD, local_bind, new_listener
from pilot.networking.listener_inbound import build_inbound_listeners
from pilot.networking.protos import duration, uint32
from pilot.networking.tcp_routes import NetChain, tcp_chains, tls_chains


@dataclass
class _Chain:
    rds: str = ""  # an HTTP chain when set
    filters: list[Any] = field(default_factory=list)  # network filters otherwise
    alpns: tuple[str, ...] = ()
    transport: str = ""
    sni: tuple[str, ...] = ()
    cidrs: tuple[str, ...] = ()

    @property
    def match_key(self) -> tuple[object, ...]:
        return (self.alpns, self.transport, tuple(sorted(self.sni)), tuple(sorted(self.cidrs)))

    @property
    def is_match_all(self) -> bool:
        return not (self.alpns or self.transport or self.sni or self.cidrs)


@dataclass
class _Entry:
    bind: str
    port: int
    protocol: Protocol
    bind_to_port: bool
    chains: list[_Chain] = field(default_factory=list)
    locked: bool = False

    def merge(self, chains: list[_Chain]) -> None:
        """Add chains whose match is new; the first chain for a match keeps it (Istio reports
        the later one as a conflict)."""
        known = {c.match_key for c in self.chains}
        for chain in chains:
            if chain.match_key not in known:
                known.add(chain.match_key)
                self.chains.append(chain)


def build_sidecar_listeners(view: ProxyView) -> list[Any]:
    none_mode = view.proxy.interception_mode is InterceptionMode.NONE
    inbound = build_inbound_listeners(view, none_mode)
    # A NONE-mode proxy on a loopback IP binds its outbound listeners on that IP (local_bind),
    # where its Sidecar `ingress` listeners bind too: an outbound listener for the same port
    # would be a second listener of the same name, and Envoy rejects the whole LDS update for
    # it. The workload's own inbound port wins (Istio never meets this: its NONE-mode outbound
    # listeners bind 127.0.0.1, its inbound ones the workload's IP).
    taken = {listener.name for listener in inbound}
    out = [listener for listener in build_outbound_side(view) if listener.name not in taken]
    out.extend(inbound)
    return out


def build_outbound_side(view: ProxyView) -> list[Any]:
    """Outbound listeners and (REDIRECT mode) virtualOutbound: what the proxy's scope,
    namespace and mode decide, shared by every workload equal in those."""
    out = _outbound_listeners(view)
    if view.proxy.interception_mode is not InterceptionMode.NONE:
        out.append(_virtual_outbound(view))
    return out


# ---- outbound ---------------------------------------------------------------------------


def _fallthrough_cluster(view: ProxyView) -> str:
    if view.scope.outbound_mode == "REGISTRY_ONLY":
        return naming.BLACKHOLE_CLUSTER
    return naming.PASSTHROUGH_CLUSTER


def _outbound_listeners(view: ProxyView) -> list[Any]:
    none_mode = view.proxy.interception_mode is InterceptionMode.NONE
    entries: dict[tuple[str, int], _Entry] = {}
    for egress in view.scope.egress:
        bind_to_port = (
            none_mode or egress.capture_mode == "NONE" or egress.bind.startswith("unix://")
        )
        bind = egress.bind or (local_bind(view) if bind_to_port else "")
        if not egress.is_catch_all:
            for svc in egress.services:
                _add_service_port(
                    view, entries, egress, svc, egress.port, egress.protocol, bind, bind_to_port
                )
            continue
        for entry in entries.values():
            entry.locked = True
        for svc in egress.services:
            for port in svc.ports:
                if port.protocol is Protocol.UDP:
                    continue
                _add_service_port(
                    view, entries, egress, svc, port.port, port.protocol, bind, bind_to_port
                )
    return [_finish(view, entry) for entry in entries.values()]


def _add_service_port(
    view: ProxyView,
    entries: dict[tuple[str, int], _Entry],
    egress: EgressListener,
    svc: Service,
    port: int,
    protocol: Protocol,
    bind: str,
    bind_to_port: bool,
) -> None:
    if protocol.is_http:
        _add_port_on(view, entries, egress, svc, port, protocol, bind or WILDCARD, (), bind_to_port)
        return
    for address, cidrs in _listen_addresses(svc, bind):
        _add_port_on(view, entries, egress, svc, port, protocol, address, cidrs, bind_to_port)


def _listen_addresses(svc: Service, bind: str) -> list[tuple[str, tuple[str, ...]]]:
    """Where a TCP or sniffed service port listens, with the destination CIDRs its chains
    match: the bind, else each VIP (a ServiceEntry is one service per address in Istio, so
    each of its addresses gets its own listener), a CIDR on 0.0.0.0 with a prefix-range match,
    else 0.0.0.0."""
    if bind:
        return [(bind, ())]
    if not svc.has_vip:
        return [(WILDCARD, ())]
    addresses = svc.all_addresses if svc.registry is Registry.EXTERNAL else (svc.address,)
    return [(WILDCARD, (a,)) if "/" in a else (a, ()) for a in addresses]


def _add_port_on(
    view: ProxyView,
    entries: dict[tuple[str, int], _Entry],
    egress: EgressListener,
    svc: Service,
    port: int,
    protocol: Protocol,
    address: str,
    cidrs: tuple[str, ...],
    bind_to_port: bool,
) -> None:
    key = (address, port)
    current = entries.get(key)
    if current is not None and current.locked:
        return
    if protocol.is_http:
        # On the wildcard address HTTP is told apart from other traffic by the inspector.
        chain = _http_chain(port, match_alpn=address == WILDCARD)
        if current is None:
            entry = _Entry(address, port, Protocol.HTTP, bind_to_port)
            entry.chains.append(chain)
            if address == WILDCARD:
                entry.protocol = Protocol.UNSUPPORTED
            entries[key] = entry
        elif not any(c.rds for c in current.chains):
            current.merge([_http_chain(port, match_alpn=True)])
            current.protocol = Protocol.UNSUPPORTED
        return
    vss = egress.virtual_services
    if protocol.is_tcp:
        if protocol.is_tls:
            wildcard = address == WILDCARD
            chains = [_net(c) for c in tls_chains(view, svc, port, vss, wildcard, cidrs)]
        else:
            chains = [_net(c) for c in tcp_chains(view, svc, port, vss, cidrs)]
        if current is None:
            entry = _Entry(address, port, Protocol.TCP, bind_to_port)
            entry.merge(chains)
            entries[key] = entry
        else:
            current.merge(chains)
        return
    # Protocol sniffing: an HTTP chain (selected by ALPN) and the TCP chains.
    if current is not None:
        return
    rds = (
        naming.sniffed_route_name(svc.hostname, port)
        if address != WILDCARD
        else naming.sidecar_http_route_name(port)
    )
    entry = _Entry(address, port, Protocol.UNSUPPORTED, bind_to_port)
    entry.chains.append(_Chain(rds=rds, alpns=PLAINTEXT_HTTP_ALPNS, transport="raw_buffer"))
    entry.merge([_net(c) for c in tcp_chains(view, svc, port, vss, cidrs)])
    entries[key] = entry


def _net(chain: NetChain) -> _Chain:
    return _Chain(filters=chain.filters, sni=chain.sni_hosts, cidrs=chain.cidrs)


def _http_chain(port: int, match_alpn: bool) -> _Chain:
    if match_alpn:
        return _Chain(
            rds=naming.sidecar_http_route_name(port),
            alpns=PLAINTEXT_HTTP_ALPNS,
            transport="raw_buffer",
        )
    return _Chain(rds=naming.sidecar_http_route_name(port))


def _cidr_range(value: str) -> Any:
    network = ipaddress.ip_network(value, strict=False)
    return address_pb2.CidrRange(
        address_prefix=str(network.network_address), prefix_len=uint32(network.prefixlen)
    )


def _finish(view: ProxyView, entry: _Entry) -> Any:
    name = naming.listener_name(entry.bind, entry.port)
    listener = new_listener(name, entry.bind, entry.port, OUTBOUND, entry.bind_to_port)
    if any(c.sni for c in entry.chains):
        listener.listener_filters.append(tls_inspector_filter())
    if any(c.alpns for c in entry.chains):
        listener.listener_filters.append(http_inspector_filter())
        listener.listener_filters_timeout.CopyFrom(
            duration(view.push.mesh.protocol_detection_timeout)
        )
    else:
        listener.listener_filters_timeout.CopyFrom(duration(None))
    access_log = view.push.mesh.access_log_file
    default_chain = None
    chains = []
    for spec in entry.chains:
        chain = listener_components_pb2.FilterChain()
        if spec.rds:
            manager = http_connection_manager(
                naming.stat_prefix(f"outbound_{name}"), rds=spec.rds, access_log_path=access_log
            )
            chain.filters.append(hcm_filter(manager))
        else:
            chain.filters.extend(spec.filters)
        if spec.is_match_all:
            if default_chain is None:
                default_chain = chain
            continue
        match = chain.filter_chain_match
        match.application_protocols.extend(spec.alpns)
        if spec.transport:
            match.transport_protocol = spec.transport
        match.server_names.extend(spec.sni)
        match.prefix_ranges.extend(_cidr_range(c) for c in spec.cidrs)
        chains.append(chain)
    if chains and default_chain is not None:
        listener.filter_chains.extend(chains)
        listener.default_filter_chain.CopyFrom(default_chain)
    elif default_chain is not None:
        listener.filter_chains.append(default_chain)
    else:
        listener.filter_chains.extend(chains)
        fallthrough = listener_components_pb2.FilterChain(name="PassthroughFilterChain")
        fallthrough.filter_chain_match.SetInParent()
        cluster = _fallthrough_cluster(view)
        fallthrough.filters.append(tcp_proxy_filter(cluster))
        listener.default_filter_chain.CopyFrom(fallthrough)
    return listener


def _virtual_outbound(view: ProxyView) -> Any:
    mesh = view.push.mesh
    listener = new_listener(
        naming.VIRTUAL_OUTBOUND_LISTENER, WILDCARD, mesh.proxy_listen_port, OUTBOUND
    )
    listener.use_original_dst.value = True
    blackhole = listener.filter_chains.add(name=naming.VIRTUAL_OUTBOUND_BLACKHOLE_CHAIN)
    blackhole.filter_chain_match.destination_port.value = mesh.proxy_listen_port
    blackhole.filters.append(
        tcp_proxy_filter(naming.BLACKHOLE_CLUSTER, stat_prefix=naming.BLACKHOLE_CLUSTER)
    )
    catch_all = listener.filter_chains.add(name=naming.VIRTUAL_OUTBOUND_CATCHALL_CHAIN)
    cluster = _fallthrough_cluster(view)
    catch_all.filters.append(tcp_proxy_filter(cluster, stat_prefix=cluster))
    return listener
