"""LDS for routers: one listener per Gateway server port (and bind), as Istio's
buildGatewayListeners.

- Plain-text HTTP servers on a port share one filter chain whose HTTP connection manager
  fetches the route configuration `http.<port>[.<bind>]`.
- HTTPS servers that terminate TLS (SIMPLE, MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL) get one
  filter chain each, matched on SNI (the server's hosts, none for `*`), with the server's
  DownstreamTlsContext (`tls.gateway_server_downstream`) and a connection manager fetching the
  server's own route configuration `https.<number>.<portName>.<gateway>.<namespace>[.<bind>]`.
  The listener then gets a TLS inspector to read SNI and ALPN.

Every gateway connection manager uses the remote address (`use_remote_address`) and sanitizes
then sets the `x-forwarded-client-cert` header from the client certificate (Istio's gateway
default, SANITIZE_SET); every chain bounds the transport handshake (Istio's
PILOT_GATEWAY_TRANSPORT_SOCKET_CONNECT_TIMEOUT, 15 s).

A terminating server without a usable certificate source is skipped with the reason in the log
(Istio's validation rejects it; generation never fails). TLS passthrough, TLS-protocol and TCP
servers are not generated yet: they are skipped with a reason rather than half-configured.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from pilot.model.gateway import GatewayServer, ServerPort
from pilot.model.proxy_view import ProxyView
from pilot.model.service import Protocol
from pilot.networking import naming
from pilot.networking.filters import hcm_filter, http_connection_manager, tls_inspector_filter
from pilot.networking.listener_common import OUTBOUND, new_listener, wildcard_bind
from pilot.networking.policy_filters import inbound_http_filters
from pilot.networking.protos import duration
from pilot.networking.tls import (
    TERMINATING_MODES,
    gateway_certificate_problem,
    gateway_server_downstream,
    transport_socket,
)

log = logging.getLogger(__name__)

# Istio's PILOT_GATEWAY_TRANSPORT_SOCKET_CONNECT_TIMEOUT default.
TRANSPORT_SOCKET_CONNECT_TIMEOUT = 15.0


def build_gateway_listeners(view: ProxyView) -> list[Any]:
    merged = view.gateway
    if merged is None:
        return []
    listeners: dict[str, Any] = {}
    for server_port in merged.ports:
        bind = server_port.bind or wildcard_bind(view)
        name = naming.listener_name(bind, server_port.port)
        chains = _filter_chains(view, name, server_port, merged.servers[server_port])
        if not chains:
            continue
        listener = listeners.get(name)
        if listener is None:
            # HTTPS and TLS servers on one port are separate server ports sharing a listener.
            listener = new_listener(name, bind, server_port.port, OUTBOUND)
            listeners[name] = listener
        for chain in chains:
            _add_chain(listener, chain)
    out = []
    for listener in listeners.values():
        if any(_needs_tls_inspector(c) for c in listener.filter_chains):
            listener.listener_filters.append(tls_inspector_filter())
        out.append(listener)
    return out


def _filter_chains(
    view: ProxyView, listener_name: str, server_port: ServerPort, servers: Sequence[GatewayServer]
) -> list[Any]:
    chains: list[Any] = []
    for entry in servers:
        if entry.protocol.is_http and not entry.is_tls:
            if any(c.name == naming.gateway_chain_name(entry.route_name) for c in chains):
                continue  # HTTP servers of one port share the chain of `http.<port>`
            chains.append(_http_chain(view, listener_name, entry))
        elif _terminates_https(entry):
            chain = _https_chain(view, listener_name, entry)
            if chain is not None:
                chains.append(chain)
        else:
            log.info(
                "gateway %s server %s (%s) on port %d is not generated yet",
                entry.gateway_name,
                entry.server.port.name,
                entry.protocol,
                server_port.port,
            )
    return chains


def _terminates_https(entry: GatewayServer) -> bool:
    return (
        entry.protocol is Protocol.HTTPS
        and entry.is_tls
        and bool(entry.route_name)
        and str(entry.server.tls.mode) in TERMINATING_MODES
    )


def _http_chain(view: ProxyView, listener_name: str, entry: GatewayServer) -> Any:
    manager = _connection_manager(view, naming.gateway_stat_prefix(listener_name), entry)
    chain = listener_components_pb2.FilterChain(name=naming.gateway_chain_name(entry.route_name))
    chain.filters.append(hcm_filter(manager))
    chain.transport_socket_connect_timeout.CopyFrom(duration(TRANSPORT_SOCKET_CONNECT_TIMEOUT))
    return chain


def _https_chain(view: ProxyView, listener_name: str, entry: GatewayServer) -> Any | None:
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
    manager = _connection_manager(view, stat_prefix, entry)
    chain = listener_components_pb2.FilterChain(name=naming.gateway_chain_name(entry.route_name))
    names = sni_hosts(entry.server.hosts)
    if names:  # else a match-all chain, without a filter_chain_match (as Istio)
        chain.filter_chain_match.server_names.extend(names)
    chain.transport_socket.CopyFrom(transport_socket(gateway_server_downstream(settings)))
    chain.filters.append(hcm_filter(manager))
    chain.transport_socket_connect_timeout.CopyFrom(duration(TRANSPORT_SOCKET_CONNECT_TIMEOUT))
    return chain


def sni_hosts(hosts: Sequence[str]) -> list[str]:
    """The SNI names a TLS server's chain matches (Istio's GetSNIHostsForServer): its hosts
    without any `namespace/` part, sorted and unique; none at all (match any SNI, or no SNI)
    when one of them is `*`."""
    names = sorted({h.split("/", 1)[1] if "/" in h else h for h in hosts})
    return [] if "*" in names else names


def _connection_manager(view: ProxyView, stat_prefix: str, entry: GatewayServer) -> Any:
    manager = http_connection_manager(
        stat_prefix,
        rds=entry.route_name,
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
                chain.name,
                existing.name,
            )
            return
    listener.filter_chains.append(chain)


def _needs_tls_inspector(chain: Any) -> bool:
    return bool(chain.filter_chain_match.server_names) or chain.HasField("transport_socket")
