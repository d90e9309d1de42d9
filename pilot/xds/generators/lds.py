"""LDS generator: sidecar or gateway listeners."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from pilot.model.proxy import InterceptionMode
from pilot.model.proxy_view import ProxyView
from pilot.model.push_request import PushRequest
from pilot.networking.listener_gateway import build_gateway_listeners
from pilot.networking.listener_inbound import build_inbound_listeners
from pilot.networking.listener_sidecar import build_outbound_side
from pilot.xds.generators.base import affected_by, select, source_labels_key
from pilot.xds.resource_set import ResourceSet
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

    def generate(self, view: ProxyView, names: frozenset[str] | None) -> Sequence[BuiltResource]:
        if view.is_router:
            listeners = ResourceSet(_packed(build_gateway_listeners(view)))
            return listeners if names is None else select(listeners, names)
        push = view.push
        mode = view.proxy.interception_mode
        none_mode = mode is InterceptionMode.NONE
        # Outbound: scope, namespace, mode, sourceLabels-dependent routes; the IP only where
        # listeners bind it (NONE mode).
        out_key = (
            "lds-out",
            id(view.scope),
            view.namespace,
            source_labels_key(view),
            mode,
            view.proxy.ip if none_mode else None,
        )
        outbound = push.memo(out_key, partial(_outbound_set, view))
        # Inbound: policies select by namespace and labels, chains need the identity, ports
        # come from the workload's services (or Sidecar ingress, binding the IP).
        in_key = (
            "lds-in",
            id(view.scope),
            view.namespace,
            tuple(sorted(view.labels.items())),
            view.proxy.identity is not None,
            view.targets,
            mode,
            view.proxy.ip if none_mode or view.scope.ingress else None,
        )
        inbound = push.memo(in_key, partial(_inbound_set, view, none_mode))
        if any(outbound.has(r.name) for r in inbound):
            # The workload's own inbound port wins over an outbound listener of that name.
            outbound = ResourceSet(r for r in outbound if not inbound.has(r.name))
        listeners = ResourceSet.join(outbound, inbound)
        return listeners if names is None else select(listeners, names)


def _packed(listeners: list[Any]) -> list[BuiltResource]:
    return [BuiltResource.pack(lst.name, lst) for lst in listeners]


def _outbound_set(view: ProxyView) -> ResourceSet:
    return ResourceSet(_packed(build_outbound_side(view)))


def _inbound_set(view: ProxyView, none_mode: bool) -> ResourceSet:
    return ResourceSet(_packed(build_inbound_listeners(view, none_mode)))
