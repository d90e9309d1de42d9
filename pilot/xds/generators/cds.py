"""CDS generator: clusters, shared across proxies whose inputs are equal within a push."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from pilot.model.proxy_view import ProxyView
from pilot.model.push_request import PushRequest
from pilot.model.service import Service
from pilot.networking.cluster import (
    blackhole_cluster,
    build_inbound_clusters,
    build_outbound_clusters,
    inbound_passthrough_cluster,
    passthrough_cluster,
)
from pilot.networking.cluster_sni_dnat import build_sni_dnat_clusters
from pilot.xds.generators.base import affected_by, rule_labels_key, select
from pilot.xds.resource_set import ResourceSet
from pilot.xds.wire import BuiltResource
from pkg.config.model import Kind
from pkg.xds import typeurls

_IGNORED = frozenset(
    {
        Kind.GATEWAY,
        Kind.WORKLOAD_ENTRY,
        Kind.WORKLOAD_GROUP,
        Kind.AUTHORIZATION_POLICY,
        Kind.REQUEST_AUTHENTICATION,
        Kind.SECRET,
        Kind.TELEMETRY,
        Kind.WASM_PLUGIN,
        Kind.PROXY_CONFIG,
        Kind.ENDPOINTS,
    }
)


class CdsGenerator:
    type_url = typeurls.CLUSTER

    def needs_push(self, req: PushRequest) -> bool:
        return affected_by(req, _IGNORED)

    def generate(self, view: ProxyView, names: frozenset[str] | None) -> Sequence[BuiltResource]:
        push = view.push
        # Outbound and fixed clusters depend on the scope, the namespace (which rules apply),
        # the labels only when rules select workloads, router-ness and whether the proxy has
        # an identity (mesh mTLS): proxies equal in those share one set.
        key = (
            "cds-set",
            id(view.scope),
            view.namespace,
            rule_labels_key(view),
            view.is_router,
            view.proxy.identity is not None,
        )
        shared = push.memo(key, partial(_shared_set, view))
        extra: list[BuiltResource] = []
        if view.gateway is not None and view.gateway.auto_passthrough:
            extra.extend(BuiltResource.pack(c.name, c) for c in build_sni_dnat_clusters(view))
        if not view.is_router:
            extra.extend(BuiltResource.pack(c.name, c) for c in build_inbound_clusters(view))
        extra = [r for r in extra if not shared.has(r.name)]
        result = ResourceSet.join(shared, ResourceSet(extra)) if extra else shared
        return result if names is None else select(result, names)


def _shared_set(view: ProxyView) -> ResourceSet:
    push = view.push
    out: list[BuiltResource] = []
    for svc in view.scope.services:
        dr = push.destination_rule(view.namespace, svc, view.labels)
        key = (
            "cds-outbound",
            svc.hostname,
            svc.namespace,
            svc.ports,
            dr.sources if dr is not None else None,
            view.is_router,
            view.proxy.identity is not None,
        )
        out.extend(push.memo(key, partial(_outbound, view, svc)))
    out.extend(push.memo(("cds-fixed", view.is_router), partial(_fixed, view)))
    return ResourceSet(out)


def _outbound(view: ProxyView, svc: Service) -> list[BuiltResource]:
    return [BuiltResource.pack(c.name, c) for c in build_outbound_clusters(view, svc)]


def _fixed(view: ProxyView) -> list[BuiltResource]:
    clusters = [blackhole_cluster(view)]
    if not view.is_router:
        clusters += [passthrough_cluster(view), inbound_passthrough_cluster(view)]
    return [BuiltResource.pack(c.name, c) for c in clusters]
