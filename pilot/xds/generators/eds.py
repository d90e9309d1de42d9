"""EDS generator: one ClusterLoadAssignment per requested cluster name."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from pilot.model.proxy_view import ProxyView
from pilot.model.push_context import PushContext
from pilot.model.push_request import PushRequest
from pilot.networking import locality, naming
from pilot.networking.endpoint import assignment_cache_key, build_load_assignment
from pilot.networking.traffic_policy import mesh_defaults
from pilot.xds.generators.base import affected_by
from pilot.xds.resource_set import EMPTY, ResourceSet
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

    def generate(self, view: ProxyView, names: frozenset[str] | None) -> Sequence[BuiltResource]:
        if names is None:
            return EMPTY  # EDS is never wildcard
        # The answer depends on the names, the scope and namespace (services, rules), the
        # labels when rules select workloads or rank endpoints by labels, and the proxy's
        # locality (locality load balancing): proxies equal in those share one set.
        key = (
            "eds-set",
            names,
            id(view.scope),
            view.namespace,
            _labels_key(view),
            locality.proxy_locality(view),
        )
        return view.push.memo(key, partial(_assignments, view, names))


def _labels_key(view: ProxyView) -> tuple[tuple[str, str], ...]:
    push = view.push
    if push.destination_rules.has_selectors or push.memo(
        ("failover-priority-rules",), partial(_uses_failover_priority, push)
    ):
        return tuple(sorted(view.labels.items()))
    return ()


def _uses_failover_priority(push: PushContext) -> bool:
    mesh_setting = mesh_defaults(push.mesh).locality_lb
    if mesh_setting is not None and mesh_setting.failover_priority:
        return True
    for config in push.list(Kind.DESTINATION_RULE):
        policies = [config.spec.traffic_policy, *(s.traffic_policy for s in config.spec.subsets)]
        for policy in policies:
            if policy is None:
                continue
            ports = policy.port_level_settings
            for lb in (policy.load_balancer, *(p.load_balancer for p in ports)):
                setting = lb.locality_lb_setting if lb is not None else None
                if setting is not None and setting.failover_priority:
                    return True
    return False


def _assignments(view: ProxyView, names: frozenset[str]) -> ResourceSet:
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
    return ResourceSet(out)


def _assignment(view: ProxyView, name: str) -> BuiltResource:
    return BuiltResource.pack(name, build_load_assignment(view, name))
