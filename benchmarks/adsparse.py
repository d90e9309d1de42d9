"""What a simulated Envoy reads out of the resources it receives: only what decides its next
subscription (a Cluster's EDS service name, a Listener's RDS route names) and the name of an
EDS or RDS resource.

Parse results are cached per process by resource bytes, since istiod sends the same bytes to
every proxy.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

_HCM = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)

_EDS_NAME_CACHE: dict[bytes, str | None] = {}
_ROUTE_NAMES_CACHE: dict[bytes, tuple[str, ...]] = {}


def eds_service_name(value: bytes) -> str | None:
    """The EDS name a Cluster subscribes to, or None when it is not an EDS cluster."""
    cached = _EDS_NAME_CACHE.get(value, "")
    if cached != "":
        return cached
    cluster = cluster_pb2.Cluster.FromString(value)
    name: str | None = None
    if cluster.WhichOneof("cluster_discovery_type") == "type" and cluster.type == cluster.EDS:
        name = cluster.eds_cluster_config.service_name or cluster.name
    _EDS_NAME_CACHE[value] = name
    return name


def listener_route_names(value: bytes) -> tuple[str, ...]:
    """Route config names a Listener's HTTP connection managers fetch over RDS."""
    cached = _ROUTE_NAMES_CACHE.get(value)
    if cached is not None:
        return cached
    listener = listener_pb2.Listener.FromString(value)
    names: list[str] = []
    chains = list(listener.filter_chains)
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    for chain in chains:
        for flt in chain.filters:
            if flt.typed_config.type_url != _HCM:
                continue
            hcm = hcm_pb2.HttpConnectionManager.FromString(flt.typed_config.value)
            if hcm.WhichOneof("route_specifier") == "rds" and hcm.rds.route_config_name:
                names.append(hcm.rds.route_config_name)
    if listener.HasField("api_listener") and listener.api_listener.api_listener.type_url == _HCM:
        hcm = hcm_pb2.HttpConnectionManager.FromString(listener.api_listener.api_listener.value)
        if hcm.WhichOneof("route_specifier") == "rds":
            names.append(hcm.rds.route_config_name)
    result = tuple(sorted(set(names)))
    _ROUTE_NAMES_CACHE[value] = result
    return result


def first_string_field(value: bytes) -> str:
    """Field 1 (a length-delimited string) of a serialized message: `cluster_name` of a
    ClusterLoadAssignment, `name` of a RouteConfiguration. Falls back to '' if absent."""
    if not value or value[0] != 0x0A:
        return ""
    length, shift, pos = 0, 0, 1
    while True:
        byte = value[pos]
        length |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            break
        shift += 7
    return value[pos : pos + length].decode()
