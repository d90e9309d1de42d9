"""Inbound listeners of sidecars (Istio's listener_inbound.go).

REDIRECT mode: `virtualInbound` (0.0.0.0:15006, original destination) holds a blackhole chain
for its own port, passthrough chains for unknown ports, and per workload port the chains of its
PeerAuthentication mode (mTLS, plaintext, or both in PERMISSIVE) matched on destination port,
transport and ALPN; its TLS and HTTP inspectors run only on the ports whose chains need them
(inspectors.py). NONE mode: a real listener per Sidecar `ingress` entry with the same chains.
A proxy without a verified identity has no certificate to terminate mTLS with, so its inbound
side is plaintext whatever the policy says. Every chain but the blackhole one carries the
proxy's authorization filters (`policy_filters`), as Istio builds them for all inbound chains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2

from pilot.model.peer_authentication import MTLSMode
from pilot.model.proxy_view import ProxyView
from pilot.model.service import Protocol
from pilot.networking import naming
from pilot.networking.filters import (
    hcm_filter,
    http_connection_manager,
    http_inspector_filter,
    original_dst_filter,
    tcp_proxy_filter,
    tls_inspector_filter,
)
from pilot.networking.inbound_tls import RAW, TLS, ChainOption, chain_options, server_alpn
from pilot.networking.inspectors import inbound_inspectors
from pilot.networking.listener_common import (
    INBOUND,
    WILDCARD,
    inbound_bind,
    inbound_route_config,
    new_listener,
)
from pilot.networking.policy_filters import inbound_http_filters, inbound_network_filters
from pilot.networking.protos import duration
from pilot.networking.tls import mesh_downstream, transport_socket


@dataclass(frozen=True)
class InboundPort:
    port: int
    protocol: Protocol
    cluster: str
    operation: str
    bind: str
    bind_to_port: bool


def inbound_ports(view: ProxyView, none_mode: bool) -> list[InboundPort]:
    ingress = view.scope.ingress
    out: dict[int, InboundPort] = {}
    if ingress:
        for listener in ingress:
            number = int(listener.port.number)
            if number in out:
                continue
            capture = str(listener.capture_mode or "DEFAULT")
            bind_to_port = none_mode if capture == "DEFAULT" else capture == "NONE"
            scope_host = f"{view.scope.name}.{view.scope.namespace}"
            out[number] = InboundPort(
                number,
                Protocol.parse(listener.port.protocol),
                naming.inbound_cluster(number),
                f"{scope_host}:{number}/*",
                listener.bind or inbound_bind(view),
                bind_to_port,
            )
        return [out[k] for k in sorted(out)]
    if none_mode:
        return []
    for target in view.targets:
        if target.target_port in out:
            continue
        out[target.target_port] = InboundPort(
            target.target_port,
            target.protocol,
            naming.inbound_cluster(target.target_port),
            f"{target.hostname}:{target.port}/*",
            WILDCARD,
            False,
        )
    return [out[k] for k in sorted(out)]


def _mode(view: ProxyView, port: int) -> MTLSMode:
    if view.proxy.identity is None:
        return MTLSMode.DISABLE
    return view.push.peer_authentication.mode(view.namespace, view.labels, port)


def _trust_domains(view: ProxyView) -> tuple[str, ...]:
    mesh = view.push.mesh
    return (mesh.trust_domain, *mesh.trust_domain_aliases)


@dataclass(frozen=True, slots=True)
class _Target:
    """Where an inbound chain sends traffic and how it is named and matched."""

    name: str
    match_port: int  # 0: any destination port
    route_port: int
    cluster: str
    protocol: Protocol
    operation: str
    stat_prefix: str


def _chain(view: ProxyView, option: ChainOption, target: _Target) -> Any:
    chain = listener_components_pb2.FilterChain(name=target.name)
    match = chain.filter_chain_match
    if target.match_port:
        match.destination_port.value = target.match_port
    match.transport_protocol = option.transport
    match.application_protocols.extend(option.alpns)
    if option.mtls:
        context = mesh_downstream(_trust_domains(view), server_alpn(option))
        chain.transport_socket.CopyFrom(transport_socket(context))
    if option.http:
        manager = http_connection_manager(
            target.stat_prefix,
            route_config=inbound_route_config(
                target.cluster, target.route_port, target.protocol, target.operation
            ),
            forward_client_cert=True,
            http2=target.protocol.is_http2,
            access_log_path=view.push.mesh.access_log_file,
            security_filters=inbound_http_filters(view),
        )
        chain.filters.append(hcm_filter(manager))
    else:
        chain.filters.extend(inbound_network_filters(view))
        chain.filters.append(tcp_proxy_filter(target.cluster))
    return chain


def port_chains(view: ProxyView, p: InboundPort, match_port: bool) -> list[Any]:
    target = _Target(
        name=naming.inbound_chain_name(p.port),
        match_port=p.port if match_port else 0,
        route_port=p.port,
        cluster=p.cluster,
        protocol=Protocol.HTTP if p.protocol.is_unsupported else p.protocol,
        operation=p.operation,
        stat_prefix=naming.inbound_stat_prefix(p.port),
    )
    options = chain_options(_mode(view, p.port), p.protocol)
    return [_chain(view, option, target) for option in options]


def _inspectors(listener: Any, chains: list[Any]) -> None:
    transports = {c.filter_chain_match.transport_protocol for c in chains}
    alpns = {a for c in chains for a in c.filter_chain_match.application_protocols}
    if TLS in transports or alpns:
        listener.listener_filters.append(tls_inspector_filter())
    if any(a.startswith(("http/", "h2c")) for a in alpns):
        listener.listener_filters.append(http_inspector_filter())


def build_inbound_listeners(view: ProxyView, none_mode: bool) -> list[Any]:
    out: list[Any] = []
    virtual: list[Any] = []
    for p in inbound_ports(view, none_mode):
        if p.bind_to_port:
            listener = new_listener(naming.listener_name(p.bind, p.port), p.bind, p.port, INBOUND)
            chains = port_chains(view, p, match_port=False)
            _inspectors(listener, chains)
            listener.filter_chains.extend(chains)
            if listener.listener_filters:
                listener.listener_filters_timeout.CopyFrom(
                    duration(view.push.mesh.protocol_detection_timeout)
                )
            out.append(listener)
        else:
            virtual.extend(port_chains(view, p, match_port=True))
    if not none_mode:
        out.insert(0, _virtual_inbound(view, virtual))
    return out


def _virtual_inbound(view: ProxyView, port_chains_: list[Any]) -> Any:
    mesh = view.push.mesh
    listener = new_listener(
        naming.VIRTUAL_INBOUND_LISTENER, WILDCARD, mesh.proxy_inbound_listen_port, INBOUND
    )
    listener.listener_filters_timeout.CopyFrom(duration(mesh.protocol_detection_timeout))
    blackhole = listener.filter_chains.add(name=naming.VIRTUAL_INBOUND_BLACKHOLE_CHAIN)
    blackhole.filter_chain_match.destination_port.value = mesh.proxy_inbound_listen_port
    blackhole.filters.append(
        tcp_proxy_filter(naming.BLACKHOLE_CLUSTER, stat_prefix=naming.BLACKHOLE_CLUSTER)
    )
    # Passthrough chains for ports no service declares, by the workload's default mode.
    cluster = naming.INBOUND_PASSTHROUGH_CLUSTER
    for option in chain_options(_mode(view, 0), Protocol.UNSUPPORTED):
        name = (
            naming.VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN
            if option.http
            else naming.VIRTUAL_INBOUND_LISTENER
        )
        target = _Target(
            name, 0, 0, cluster, Protocol.HTTP, f"{cluster}/*", naming.stat_prefix(cluster)
        )
        listener.filter_chains.append(_chain(view, option, target))
    listener.filter_chains.extend(port_chains_)
    # The inspectors run only on the ports whose chains need them (server-first protocols).
    listener.listener_filters.append(original_dst_filter())
    listener.listener_filters.extend(inbound_inspectors(listener.filter_chains))
    return listener


__all__ = ["RAW", "InboundPort", "build_inbound_listeners", "inbound_ports", "port_chains"]
