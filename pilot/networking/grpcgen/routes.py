"""Proxyless gRPC RDS: the route configuration `outbound|PORT||HOST` of one service (Istio's
grpcgen BuildHTTPRoutes).

Istio builds the sidecar's outbound virtual hosts for the port and keeps only those of the
requested host; the configuration carries nothing else (no catch-all: a gRPC client only ever
asks for the hosts it dials). What differs from Envoy's copy:
- gRPC matches virtual hosts on `HOST:PORT` (it has no ignore-port option), so every domain
  also appears with the port, as Istio does for proxyless clients;
- gRPC reads a route's timeout from `max_stream_duration.max_stream_duration`, so the timeout
  goes there (Istio's setTimeout for proxyless gRPC) instead of bounding the grpc-timeout
  header;
- per-route configuration is kept only for HTTP filters gRPC runs (fault): gRPC rejects a
  route configuration naming a filter it does not implement (such as CORS).
"""

from __future__ import annotations

import logging
from typing import Any

from envoy.config.route.v3 import route_components_pb2 as route_pb2
from envoy.config.route.v3 import route_pb2 as route_config_pb2

from pilot.model.proxy_view import ProxyView
from pilot.networking import naming
from pilot.networking.filters import FAULT
from pilot.networking.route_config import build_sidecar_route_config
from pkg.config.host import is_wildcard, matches

log = logging.getLogger(__name__)

_CATCH_ALL_VHOSTS = frozenset({naming.ALLOW_ANY_VHOST, naming.BLOCK_ALL_VHOST})
# HTTP filters gRPC implements among those a route may configure.
_GRPC_ROUTE_FILTERS = frozenset({FAULT})


def _serves(vhost: Any, host: str) -> bool:
    """Istio's filterVirtualHostsForHostname (domains here carry no port yet)."""
    for domain in vhost.domains:
        d = domain.lower()
        if d == host or (is_wildcard(d) and matches(d, host)):
            return True
    return False


def _with_ports(domains: Any, port: int) -> list[str]:
    out: list[str] = []
    for domain in domains:
        out += [domain, f"{domain}:{port}"]
    return list(dict.fromkeys(out))


def _keep_grpc_filters(per_filter: Any) -> None:
    for name in list(per_filter):
        if name not in _GRPC_ROUTE_FILTERS:
            del per_filter[name]


def adapt_route(route: Any) -> None:
    """A sidecar route as gRPC reads it: timeout as max stream duration, per-route config only
    for filters gRPC runs."""
    _keep_grpc_filters(route.typed_per_filter_config)
    if route.HasField("route"):
        for weighted in route.route.weighted_clusters.clusters:
            _keep_grpc_filters(weighted.typed_per_filter_config)
        action = route.route
        action.ClearField("max_stream_duration")
        action.max_stream_duration.max_stream_duration.CopyFrom(action.timeout)


def build_grpc_route_config(view: ProxyView, name: str) -> Any | None:
    key = naming.parse_subset_key(name)
    if key is None or not key.host or key.port <= 0:
        log.warning("proxy %s: cannot parse gRPC route name %r", view.proxy.id, name)
        return None
    host = key.host.lower()
    sidecar = build_sidecar_route_config(view, naming.sidecar_http_route_name(key.port))
    out = route_config_pb2.RouteConfiguration(name=name)
    if sidecar is None:
        return out
    for vhost in sidecar.virtual_hosts:
        if vhost.name in _CATCH_ALL_VHOSTS or not _serves(vhost, host):
            continue
        picked = route_pb2.VirtualHost()
        picked.CopyFrom(vhost)
        del picked.domains[:]
        picked.domains.extend(_with_ports(vhost.domains, key.port))
        _keep_grpc_filters(picked.typed_per_filter_config)
        for route in picked.routes:
            adapt_route(route)
        out.virtual_hosts.append(picked)
    return out
