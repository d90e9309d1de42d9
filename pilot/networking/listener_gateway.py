"""LDS for routers: one listener per Gateway server port (and bind), as Istio's
buildGatewayListeners (pilot/pkg/networking/core/gateway.go).

- Plain-text HTTP servers on a port share one filter chain whose HTTP connection manager
  fetches the route configuration `http.<port>[.<bind>]`.
- HTTPS servers that terminate TLS (SIMPLE, MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL) get one
  filter chain each, matched on SNI (the server's hosts, none for `*`), with the server's
  DownstreamTlsContext and a connection manager fetching the server's own route configuration
  `https.<number>.<portName>.<gateway>.<namespace>[.<bind>]`.
- TCP servers (no TLS) and TLS-protocol servers terminating TLS forward with tcp_proxy to the
  destinations of the first `tcp` route of a VirtualService bound to the gateway whose hosts
  meet the server's (`gateway_tcp`); a terminating one matches its hosts by SNI.
- PASSTHROUGH servers (HTTPS or TLS) do not terminate: each `tls` route match of a bound
  VirtualService becomes a chain matched on the match's `sniHosts`, forwarding the still
  encrypted bytes to its destinations; AUTO_PASSTHROUGH servers forward SNI
  `outbound_.<port>_.<subset>_.<host>` of mesh services to the cluster of that name.
A listener with SNI chains (or a TLS context offering ALPN) gets a TLS inspector.

Every gateway connection manager uses the remote address (`use_remote_address`) and sanitizes
then sets the `x-forwarded-client-cert` header from the client certificate (Istio's gateway
default, SANITIZE_SET); every chain bounds the transport handshake (Istio's
PILOT_GATEWAY_TRANSPORT_SOCKET_CONNECT_TIMEOUT, 15 s). Gateways enforce authorization on all
their chains (AUTO_PASSTHROUGH ones excepted, as in Istio).

A terminating server without a usable certificate source is skipped with the reason in the log
(Istio's validation rejects it; generation never fails).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from pilot.model.gateway import GatewayServer, ServerPort
from pilot.model.proxy_view import ProxyView
from pilot.networking import naming
from pilot.networking.filters import hcm_filter, http_connection_manager, tls_inspector_filter
from pilot.networking.gateway_tcp import ChainOpts, tcp_server_chains
from pilot.networking.listener_common import OUTBOUND, new_listener, wildcard_bind
from pilot.networking.policy_filters import inbound_http_filters
from pilot.networking.protos import duration
from pilot.networking.tls import ALPN_HTTP, gateway_certificate_problem, gateway_server_downstream

log = logging.getLogger(__name__)

# Istio's PILOT_GATEWAY_TRANSPORT_SOCKET_CONNECT_TIMEOUT default.
TRANSPORT_SOCKET_CONNECT_TIMEOUT = 15.0


def build_gateway_listeners(view: ProxyView) -> list[Any]:
    merged = view.gateway
    if merged is None:
        return []
    chains_by_listener: dict[str, list[ChainOpts]] = {}
    addresses: dict[str, tuple[str, int]] = {}
    # listener port → SNI host → bind, over every passthrough route (Istio's tlsHostsByPort)
    tls_hosts: dict[int, dict[str, str]] = {}
    for server_port in merged.ports:
        bind = server_port.bind or wildcard_bind(view)
        name = naming.listener_name(bind, server_port.port)
        servers = merged.servers[server_port]
        if server_port.protocol.is_http:
            route = merged.route_names.get(server_port) or servers[0].route_name
            chains = [_http_chain(view, name, route)]
        else:
            chains = []
            for entry in servers:
                if entry.terminates_https:
                    chain = _https_chain(view, name, entry)
                    if chain is not None:
                        chains.append(chain)
                else:
                    chains.extend(tcp_server_chains(view, entry, tls_hosts))
        if chains:
            chains_by_listener.setdefault(name, []).extend(chains)
            addresses.setdefault(name, (bind, server_port.port))
    out = []
    for name, chains in chains_by_listener.items():
        bind, port = addresses[name]
        out.append(_listener(name, bind, port, chains))
    return out


def _listener(name: str, bind: str, port: int, chains: Sequence[ChainOpts]) -> Any:
    listener = new_listener(name, bind, port, OUTBOUND)
    if any(c.needs_tls_inspector for c in chains):
        listener.listener_filters.append(tls_inspector_filter())
    for opts in chains:
        chain = opts.to_proto()
        chain.transport_socket_connect_timeout.CopyFrom(duration(TRANSPORT_SOCKET_CONNECT_TIMEOUT))
        _add_chain(listener, chain)
    return listener


def _http_chain(view: ProxyView, listener_name: str, route: str) -> ChainOpts:
    manager = _connection_manager(view, naming.gateway_stat_prefix(listener_name), route)
    return ChainOpts(name=naming.gateway_chain_name(route), filters=[hcm_filter(manager)])


def _https_chain(view: ProxyView, listener_name: str, entry: GatewayServer) -> ChainOpts | None:
    settings = entry.server.tls
    problem = gateway_certificate_problem(settings, view.proxy.identity is not None)
    if problem:
        log.warning(
            "gateway %s server %s (HTTPS) on port %d skipped: %s",
            entry.gateway_name,
            entry.server.port.name,
            entry.port,
            problem,
        )
        return None
    # Istio: a named server's connection manager reports its stats under the server's name.
    stat_prefix = entry.server.name or naming.gateway_stat_prefix(listener_name)
    manager = _connection_manager(view, stat_prefix, entry.route_name)
    return ChainOpts(
        name=naming.gateway_chain_name(entry.route_name),
        sni_hosts=entry.sni_hosts,
        tls_context=gateway_server_downstream(settings, ALPN_HTTP),
        filters=[hcm_filter(manager)],
    )


def sni_hosts(hosts: Sequence[str]) -> list[str]:
    """The SNI names a TLS server's chain matches (Istio's GetSNIHostsForServer): its hosts
    without any `namespace/` part, sorted and unique; none at all (match any SNI, or no SNI)
    when one of them is `*`."""
    names = sorted({h.split("/", 1)[1] if "/" in h else h for h in hosts})
    return [] if "*" in names else names


def _connection_manager(view: ProxyView, stat_prefix: str, route: str) -> Any:
    manager = http_connection_manager(
        stat_prefix,
        rds=route,
        use_remote_address=True,
        access_log_path=view.push.mesh.access_log_file,
        security_filters=inbound_http_filters(view),
    )
    # Istio's buildGatewayConnectionManager: SANITIZE_SET, with the details it sets.
    manager.forward_client_cert_details = hcm_pb2.HttpConnectionManager.SANITIZE_SET
    details = manager.set_current_client_cert_details
    details.subject.value = True
    details.cert = True
    details.dns = True
    details.uri = True
    return manager


def _add_chain(listener: Any, chain: Any) -> None:
    """Append `chain` unless a chain with the same match is there (Envoy rejects a listener
    whose chains overlap, which would cost the proxy every listener of the update)."""
    for existing in listener.filter_chains:
        if existing.filter_chain_match == chain.filter_chain_match:
            log.warning(
                "listener %s: filter chain %s dropped, it matches the same connections as %s",
                listener.name,
                chain.name or "<unnamed>",
                existing.name or "<unnamed>",
            )
            return
    listener.filter_chains.append(chain)


__all__ = ["ServerPort", "build_gateway_listeners", "sni_hosts"]
