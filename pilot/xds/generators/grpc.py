"""Generators for proxyless gRPC clients (node metadata `GENERATOR: grpc`): LDS, RDS and CDS
from `pilot.networking.grpcgen`; EDS is the ordinary one with a locality on every group (SDS is
never asked for).

Like Istio's GrpcConfigGenerator, every type is answered only for the names the client asked
for (gRPC never subscribes by wildcard). Results are memoized per PushContext under keys that
hold what they depend on, so clients with equal inputs share one build.
"""

from __future__ import annotations

from functools import partial

from envoy.config.endpoint.v3 import endpoint_pb2

from pilot.model.destination_rule_index import MergedDestinationRule
from pilot.model.proxy_view import ProxyView
from pilot.model.push_request import PushRequest
from pilot.model.service import Service
from pilot.networking import naming
from pilot.networking.grpcgen.clusters import build_grpc_clusters, group_by_service, lookup_service
from pilot.networking.grpcgen.listeners import build_grpc_listeners
from pilot.networking.grpcgen.routes import build_grpc_route_config
from pilot.xds.generators.base import affected_by
from pilot.xds.generators.eds import EdsGenerator
from pilot.xds.wire import BuiltResource
from pkg.config.model import Kind
from pkg.xds import typeurls

# Kinds that cannot change a gRPC client's listeners, routes or clusters: it has no inbound
# side, no mesh TLS, no certificates over xDS, and endpoint changes are EDS's alone.
_IGNORED = frozenset(
    {
        Kind.GATEWAY,
        Kind.WORKLOAD_ENTRY,
        Kind.WORKLOAD_GROUP,
        Kind.AUTHORIZATION_POLICY,
        Kind.REQUEST_AUTHENTICATION,
        Kind.PEER_AUTHENTICATION,
        Kind.SECRET,
        Kind.TELEMETRY,
        Kind.WASM_PLUGIN,
        Kind.PROXY_CONFIG,
        Kind.ENDPOINTS,
    }
)


class GrpcLdsGenerator:
    type_url = typeurls.LISTENER

    def needs_push(self, req: PushRequest) -> bool:
        return affected_by(req, _IGNORED)

    def generate(self, view: ProxyView, names: frozenset[str] | None) -> list[BuiltResource]:
        proxy = view.proxy
        key = ("grpc-lds", names, id(view.scope), proxy.namespace, proxy.dns_domain)
        return view.push.memo(key, partial(_listeners, view, names))


def _listeners(view: ProxyView, names: frozenset[str] | None) -> list[BuiltResource]:
    return [BuiltResource.pack(lst.name, lst) for lst in build_grpc_listeners(view, names)]


class GrpcRdsGenerator:
    type_url = typeurls.ROUTE

    def needs_push(self, req: PushRequest) -> bool:
        return affected_by(req, _IGNORED)

    def generate(self, view: ProxyView, names: frozenset[str] | None) -> list[BuiltResource]:
        if names is None:
            return []  # RDS is never wildcard
        labels = tuple(sorted(view.labels.items()))  # sourceLabels matches depend on them
        out = []
        for name in sorted(names):
            key = ("grpc-rds", name, id(view.scope), view.namespace, labels)
            built = view.push.memo(key, partial(_route, view, name))
            if built is not None:
                out.append(built)
        return out


def _route(view: ProxyView, name: str) -> BuiltResource | None:
    config = build_grpc_route_config(view, name)
    return None if config is None else BuiltResource.pack(name, config)


class GrpcCdsGenerator:
    type_url = typeurls.CLUSTER

    def needs_push(self, req: PushRequest) -> bool:
        return affected_by(req, _IGNORED)

    def generate(self, view: ProxyView, names: frozenset[str] | None) -> list[BuiltResource]:
        if names is None:
            return []  # gRPC names its clusters; a wildcard asks for nothing
        push = view.push
        out: list[BuiltResource] = []
        for default, wanted in sorted(group_by_service(names).items()):
            key = naming.parse_subset_key(default)
            svc = lookup_service(view, key.host) if key is not None else None
            if key is None or svc is None or svc.port_by_number(key.port) is None:
                continue
            dr = push.destination_rule(view.namespace, svc, view.labels)
            memo_key = (
                "grpc-cds",
                wanted,
                svc.hostname,
                svc.namespace,
                svc.ports,
                dr.sources if dr is not None else None,
            )
            out.extend(push.memo(memo_key, partial(_clusters, view, svc, key.port, dr, wanted)))
        return out


def _clusters(
    view: ProxyView,
    svc: Service,
    port: int,
    dr: MergedDestinationRule | None,
    wanted: frozenset[str],
) -> list[BuiltResource]:
    clusters = build_grpc_clusters(view, svc, port, dr, wanted)
    return [BuiltResource.pack(c.name, c) for c in clusters]


class GrpcEdsGenerator:
    """The ordinary load assignments, each locality group carrying a `locality` message even
    when it is empty: gRPC rejects a group without one ("endpoints[0].locality: field not
    present"), and Istio always sets it. Converted once per assignment content and push."""

    type_url = typeurls.ENDPOINT

    def __init__(self) -> None:
        self._eds = EdsGenerator()

    def needs_push(self, req: PushRequest) -> bool:
        return self._eds.needs_push(req)

    def generate(self, view: ProxyView, names: frozenset[str] | None) -> list[BuiltResource]:
        push = view.push
        return [
            push.memo(("grpc-eds", r.name, r.version), partial(_with_localities, r))
            for r in self._eds.generate(view, names)
        ]


def _with_localities(built: BuiltResource) -> BuiltResource:
    cla = endpoint_pb2.ClusterLoadAssignment()
    built.unpack().Unpack(cla)
    if all(group.HasField("locality") for group in cla.endpoints):
        return built
    for group in cla.endpoints:
        group.locality.SetInParent()
    return BuiltResource.pack(built.name, cla)
