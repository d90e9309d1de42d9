"""LDS for routers: one listener per Gateway server port (and bind).

Plain-text HTTP servers share one listener per port whose HTTP connection manager fetches the
route configuration `http.<port>[.<bind>]`, with `use_remote_address` as on Istio gateways.
TLS-terminating, passthrough and TCP servers are generated once the TLS work lands; until then
such a server is skipped with a reason in the log rather than half-configured.
"""

from __future__ import annotations

import logging
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2

from pilot.model.gateway import GatewayServer, ServerPort
from pilot.model.proxy_view import ProxyView
from pilot.networking import naming
from pilot.networking.filters import hcm_filter, http_connection_manager
from pilot.networking.listener_common import OUTBOUND, new_listener, wildcard_bind

log = logging.getLogger(__name__)


def build_gateway_listeners(view: ProxyView) -> list[Any]:
    merged = view.gateway
    if merged is None:
        return []
    out = []
    for server_port in merged.ports:
        listener = _listener(view, server_port, merged.servers[server_port])
        if listener is not None:
            out.append(listener)
    return out


def _listener(
    view: ProxyView, server_port: ServerPort, servers: tuple[GatewayServer, ...]
) -> Any | None:
    bind = server_port.bind or wildcard_bind(view)
    name = naming.listener_name(bind, server_port.port)
    chains: list[Any] = []
    for entry in servers:
        if entry.protocol.is_http and not entry.is_tls:
            if any(c.name == entry.route_name for c in chains):
                continue
            manager = http_connection_manager(
                naming.stat_prefix(f"outbound_{name}"),
                rds=entry.route_name,
                use_remote_address=True,
                access_log_path=view.push.mesh.access_log_file,
            )
            chain = listener_components_pb2.FilterChain(name=entry.route_name)
            chain.filters.append(hcm_filter(manager))
            chains.append(chain)
        else:
            log.info(
                "gateway %s server %s (%s) on port %d is not generated yet",
                entry.gateway_name,
                entry.server.port.name,
                entry.protocol,
                server_port.port,
            )
    if not chains:
        return None
    listener = new_listener(name, bind, server_port.port, OUTBOUND)
    listener.filter_chains.extend(chains)
    return listener
