"""istiod's /debug/explain: replay a request through a connected proxy's config.

The proxy's resources are generated from the current PushContext by the connection's own
generators (as /debug/config_dump does: what a push would send now) — every listener and
cluster, the endpoints of its EDS clusters and the route configurations its listeners name —
then `pilot.simulate.explain` walks them. The answer is the explanation as JSON; 400 names a
bad request field, 404 an unknown proxy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2

from pilot.model.proxy_view import proxy_view
from pilot.model.push_context import PushContext
from pilot.simulate.explain import Explanation, explain
from pilot.simulate.request import ExplainRequest
from pilot.simulate.resources import HCM_TYPE, Resources, eds_service_name
from pilot.xds.connection import Connection
from pkg.xds import typeurls

_MESSAGES: dict[str, Any] = {
    typeurls.CLUSTER: cluster_pb2.Cluster,
    typeurls.LISTENER: listener_pb2.Listener,
    typeurls.ROUTE: route_pb2.RouteConfiguration,
    typeurls.ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
}


def _generate(
    connection: Connection, push: PushContext, type_url: str, names: Iterable[str] | None
) -> dict[str, Any]:
    generator = connection.generators.get(type_url)
    if generator is None:
        return {}
    view = proxy_view(connection.proxy, push)
    wanted = None if names is None else frozenset(names)
    out: dict[str, Any] = {}
    for built in generator.generate(view, wanted):
        packed = any_pb2.Any()
        packed.ParseFromString(built.any_bytes)
        message = _MESSAGES[type_url]()
        packed.Unpack(message)
        out[built.name] = message
    return out


def _rds_names(listeners: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for listener in listeners.values():
        chains = list(listener.filter_chains)
        if listener.HasField("default_filter_chain"):
            chains.append(listener.default_filter_chain)
        for chain in chains:
            for f in chain.filters:
                if f.typed_config.type_url == HCM_TYPE:
                    hcm = hcm_pb2.HttpConnectionManager()
                    f.typed_config.Unpack(hcm)
                    if hcm.HasField("rds"):
                        names.add(hcm.rds.route_config_name)
    return names


def proxy_resources(connection: Connection, push: PushContext) -> Resources:
    """What a push would send the proxy now, decoded."""
    clusters = _generate(connection, push, typeurls.CLUSTER, None)
    eds = {eds_service_name(c) for c in clusters.values() if c.type == cluster_pb2.Cluster.EDS}
    listeners = _generate(connection, push, typeurls.LISTENER, None)
    return Resources(
        listeners=listeners,
        routes=_generate(connection, push, typeurls.ROUTE, _rds_names(listeners)),
        clusters=clusters,
        endpoints=_generate(connection, push, typeurls.ENDPOINT, eds),
    )


def explain_connection(
    connection: Connection, push: PushContext, request: ExplainRequest
) -> Explanation:
    return explain(proxy_resources(connection, push), connection.proxy, push, request)
