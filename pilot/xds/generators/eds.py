"""EDS generator: one ClusterLoadAssignment per requested cluster name."""

from __future__ import annotations

from functools import partial

from pilot.model.proxy_view import ProxyView
from pilot.model.push_request import PushRequest
from pilot.networking import naming
from pilot.networking.endpoint import assignment_cache_key, build_load_assignment
from pilot.xds.generators.base import affected_by
from pilot.xds.wire import BuiltResource
from pkg.config.model import Kind
from pkg.xds import typeurls

_IGNORED = frozenset(
    {
        Kind.GATEWAY,
        Kind.VIRTUAL_SERVICE,
        Kind.WORKLOAD_GROUP,
        Kind.AUTHORIZATION_POLICY,
        Kind.REQUEST_AUTHENTICATION,
        Kind.SECRET,
        Kind.TELEMETRY,
        Kind.WASM_PLUGIN,
        Kind.PROXY_CONFIG,
        Kind.SIDECAR,
    }
)


class EdsGenerator:
    type_url = typeurls.ENDPOINT

    def needs_push(self, req: PushRequest) -> bool:
        return affected_by(req, _IGNORED)

    def generate(self, view: ProxyView, names: frozenset[str] | None) -> list[BuiltResource]:
        if names is None:
            return []  # EDS is never wildcard
        push = view.push
        out = []
        for name in sorted(names):
            key = naming.parse_subset_key(name)
            svc = view.scope.service(key.host) if key is not None else None
            subset_key: object = None
            if key is not None and key.subset and svc is not None:
                dr = push.destination_rule(view.namespace, svc, view.labels)
                subset = dr.subset(key.subset) if dr is not None else None
                subset_key = tuple(sorted(subset.labels.items())) if subset is not None else False
            memo_key = (
                "eds",
                name,
                (svc.hostname, svc.namespace, svc.ports) if svc is not None else None,
                subset_key,
                assignment_cache_key(view, name),
            )
            out.append(push.memo(memo_key, partial(_assignment, view, name)))
        return out


def _assignment(view: ProxyView, name: str) -> BuiltResource:
    return BuiltResource.pack(name, build_load_assignment(view, name))
