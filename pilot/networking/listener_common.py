"""Pieces shared by sidecar and gateway listeners: addresses, binds and inbound routes.

Binding: Istio binds NONE-mode sidecar listeners to localhost and gateway listeners to the
wildcard address. A mesh run on one machine gives every workload its own loopback address
(127.0.0.x), where a shared 127.0.0.1:9080 or 0.0.0.0:8080 would collide between proxies; so
when a proxy's own IP is a loopback address, pyistio binds to that address instead. Proxies
with routable IPs bind exactly as Istio does.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as route_pb2
from envoy.config.route.v3 import route_pb2 as route_config_pb2
from google.protobuf import wrappers_pb2

from pilot.model.proxy_view import ProxyView
from pilot.model.service import Protocol
from pilot.networking import naming
from pilot.networking.protos import duration, socket_address

WILDCARD = "0.0.0.0"
LOCALHOST = "127.0.0.1"


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def local_bind(view: ProxyView) -> str:
    """Where a NONE-mode sidecar's outbound listeners bind (Istio: localhost)."""
    ip = view.proxy.ip
    return ip if _is_loopback(ip) else LOCALHOST


def wildcard_bind(view: ProxyView) -> str:
    """Where gateway listeners bind (Istio: 0.0.0.0)."""
    ip = view.proxy.ip
    return ip if _is_loopback(ip) else WILDCARD


def inbound_bind(view: ProxyView) -> str:
    """Where Sidecar ingress listeners without `bind` bind: the workload's own IP when it is a
    global unicast address (Istio's getSidecarInboundBindIPs) or a loopback one, else 0.0.0.0."""
    ip = view.proxy.ip
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return WILDCARD
    special = address.is_unspecified or address.is_link_local or address.is_multicast
    return WILDCARD if special else ip


def new_listener(
    name: str, address: str, port: int, direction: int, bind_to_port: bool = True
) -> Any:
    out = listener_pb2.Listener(name=name, traffic_direction=direction)
    out.address.CopyFrom(socket_address(address, port))
    out.continue_on_listener_filters_timeout = True
    if not bind_to_port:
        out.bind_to_port.CopyFrom(wrappers_pb2.BoolValue(value=False))
    return out


OUTBOUND = int(base_pb2.OUTBOUND)
INBOUND = int(base_pb2.INBOUND)


def inbound_route_config(cluster: str, port: int, protocol: Protocol, operation: str) -> Any:
    """The inline route of an inbound HTTP chain: everything to the inbound cluster, no timeout,
    and (except for gRPC) retry of requests reset before reaching the application."""
    route = route_pb2.Route(name=naming.DEFAULT_ROUTE, match=route_pb2.RouteMatch(prefix="/"))
    route.decorator.operation = operation
    action = route.route
    action.cluster = cluster
    action.timeout.CopyFrom(duration(None))
    action.max_stream_duration.max_stream_duration.CopyFrom(duration(None))
    action.max_stream_duration.grpc_timeout_header_max.CopyFrom(duration(None))
    if protocol not in (Protocol.GRPC, Protocol.GRPC_WEB):
        action.retry_policy.retry_on = "reset-before-request"
        action.retry_policy.num_retries.value = 2
    vhost = route_pb2.VirtualHost(name=naming.inbound_virtual_host_name(port), domains=["*"])
    vhost.routes.append(route)
    config = route_config_pb2.RouteConfiguration(name=cluster)
    config.virtual_hosts.append(vhost)
    config.validate_clusters.value = False
    return config
