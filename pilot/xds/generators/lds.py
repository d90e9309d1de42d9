"""LDS generator: sidecar or gateway listeners."""

from __future__ import annotations

from pilot.model.proxy_view import ProxyView
from pilot.model.push_request import PushRequest
from pilot.networking.listener_gateway import build_gateway_listeners
from pilot.networking.listener_sidecar import build_sidecar_listeners
from pilot.xds.generators.base import affected_by, select
from pilot.xds.wire import BuiltResource
from pkg.config.model import Kind
from pkg.xds import typeurls

_IGNORED = frozenset(
    {
        Kind.WORKLOAD_GROUP,
        Kind.SECRET,
        Kind.PROXY_CONFIG,
        Kind.ENDPOINTS,
    }
)


class LdsGenerator:
    type_url = typeurls.LISTENER

    def needs_push(self, req: PushRequest) -> bool:
        return affected_by(req, _IGNORED)

    def generate(self, view: ProxyView, names: frozenset[str] | None) -> list[BuiltResource]:
        listeners = (
            build_gateway_listeners(view) if view.is_router else build_sidecar_listeners(view)
        )
        return select((BuiltResource.pack(lst.name, lst) for lst in listeners), names)
