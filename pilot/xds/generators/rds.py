"""RDS generator: route configurations by name (a port for sidecars, `http.<port>` for
gateways)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from pilot.model.proxy_view import ProxyView
from pilot.model.push_request import PushRequest
from pilot.networking.route_config import build_gateway_route_config, build_sidecar_route_config
from pilot.xds.generators.base import affected_by, source_labels_key
from pilot.xds.resource_set import EMPTY, ResourceSet
from pilot.xds.wire import BuiltResource
from pkg.config.model import Kind
from pkg.xds import typeurls

_IGNORED = frozenset(
    {
        Kind.WORKLOAD_ENTRY,
        Kind.WORKLOAD_GROUP,
        Kind.AUTHORIZATION_POLICY,
        Kind.REQUEST_AUTHENTICATION,
        Kind.PEER_AUTHENTICATION,
        Kind.SECRET,
        Kind.WASM_PLUGIN,
        Kind.TELEMETRY,
        Kind.PROXY_CONFIG,
        Kind.ENDPOINTS,
    }
)


class RdsGenerator:
    type_url = typeurls.ROUTE

    def needs_push(self, req: PushRequest) -> bool:
        return affected_by(req, _IGNORED)

    def generate(self, view: ProxyView, names: frozenset[str] | None) -> Sequence[BuiltResource]:
        if names is None:
            return EMPTY  # RDS is never wildcard
        # Labels only matter when a VirtualService of this scope matches on sourceLabels (or a
        # rule selects workloads); otherwise every workload of the namespace shares one set.
        scope = id(view.gateway) if view.is_router else id(view.scope)
        key = ("rds-set", names, view.is_router, scope, view.namespace, source_labels_key(view))
        return view.push.memo(key, partial(_route_set, view, names))


def _route_set(view: ProxyView, names: frozenset[str]) -> ResourceSet:
    push = view.push
    labels = source_labels_key(view)
    out = []
    for name in sorted(names):
        key: tuple[object, ...]
        if view.is_router:
            key = ("rds-gw", name, id(view.gateway), view.namespace)
            built = push.memo(key, partial(_gateway_route, view, name))
        else:
            key = ("rds", name, id(view.scope), view.namespace, labels)
            built = push.memo(key, partial(_sidecar_route, view, name))
        if built is not None:
            out.append(built)
    return ResourceSet(out)


def _gateway_route(view: ProxyView, name: str) -> BuiltResource | None:
    return _pack(name, build_gateway_route_config(view, name))


def _sidecar_route(view: ProxyView, name: str) -> BuiltResource | None:
    return _pack(name, build_sidecar_route_config(view, name))


def _pack(name: str, config: Any) -> BuiltResource | None:
    return None if config is None else BuiltResource.pack(name, config)
