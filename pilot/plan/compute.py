"""The plan of a change: per class of alike proxies, what each xDS type would gain, lose and
change. A pure function of (proxies, PushContext before, PushContext after).

Proxies are grouped by everything the generators read from a proxy (`class_key`): its type,
namespace, interception mode, identity, effective labels and service account, Sidecar scope,
the services it serves, locality, and its IP only where listeners bind it (NONE mode, Sidecar
ingress, gateways). Each class is generated once per side, so a thousand replicas of one
deployment cost one computation; `generator_runs` counts the generator calls made.
Proxyless gRPC clients are not planned (their resources follow their own subscriptions).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pilot.model.proxy import InterceptionMode, NodeType, Proxy
from pilot.model.proxy_view import ProxyView, proxy_view
from pilot.model.push_context import PushContext
from pilot.plan import snapshot
from pilot.plan.diff import TypeDiff, diff_type, resource_json
from pilot.xds.generators.base import Generator


@dataclass(frozen=True, slots=True)
class PlanTarget:
    """A proxy to plan for, and the generators that serve it (its connection's)."""

    proxy: Proxy
    generators: Mapping[str, Generator]


@dataclass(frozen=True, slots=True)
class ClassPlan:
    proxies: tuple[str, ...]  # node ids
    types: tuple[TypeDiff, ...]
    after: snapshot.Snapshot

    @property
    def changed(self) -> bool:
        return any(t.changed for t in self.types)

    @property
    def endpoint_only(self) -> bool:
        """Only EDS changes: istiod would push endpoints alone (an incremental EDS push)."""
        return self.changed and all(t.type == "EDS" for t in self.types if t.changed)

    @property
    def size_change(self) -> int:
        return sum(t.after_bytes - t.before_bytes for t in self.types)

    def as_json(self, resources: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "proxies": [_short(p) for p in self.proxies],
            "proxyIds": list(self.proxies),
            "count": len(self.proxies),
            "changed": self.changed,
            "endpointOnly": self.endpoint_only,
            "sizeChange": self.size_change,
            "types": [t.as_json() for t in self.types],
        }
        if resources:
            out["resources"] = render_after(self)
        return out


@dataclass(frozen=True, slots=True)
class Plan:
    classes: tuple[ClassPlan, ...]
    generator_runs: int
    skipped: tuple[tuple[str, str], ...] = ()  # (node id, why)

    @property
    def changed(self) -> bool:
        return any(c.changed for c in self.classes)


def class_key(proxy: Proxy, views: Sequence[ProxyView]) -> Hashable:
    """Proxies with equal keys get identical resources from the generators."""
    parts: list[Hashable] = [
        proxy.type,
        proxy.namespace,
        proxy.dns_domain,
        proxy.interception_mode,
        proxy.generator,
        proxy.identity,
        proxy.service_account,
        tuple(sorted(proxy.labels.items())),
        proxy.locality,
        proxy.cluster_id,
    ]
    binds_ip = proxy.type is NodeType.ROUTER or proxy.interception_mode is InterceptionMode.NONE
    for view in views:
        workload = view.workload
        parts += [
            tuple(sorted(view.labels.items())),
            view.service_account,
            view.targets,
            id(view.scope),
            workload.locality if workload is not None else None,
        ]
        binds_ip = binds_ip or bool(view.scope.ingress)
    if binds_ip:
        parts.append(proxy.ip_addresses)
    return tuple(parts)


def compute_plan(
    targets: Sequence[PlanTarget], before: PushContext, after: PushContext, group: bool = True
) -> Plan:
    """`group=False` plans every proxy on its own (tests compare it with the grouped plan)."""
    classes: dict[Hashable, list[PlanTarget]] = {}
    skipped: list[tuple[str, str]] = []
    for target in targets:
        proxy = target.proxy
        if proxy.is_proxyless_grpc:
            skipped.append((proxy.id, "proxyless gRPC clients are not planned"))
            continue
        views = (proxy_view(proxy, before), proxy_view(proxy, after))
        key = class_key(proxy, views) if group else proxy.id
        classes.setdefault(key, []).append(target)
    runs = 0
    planned: list[ClassPlan] = []
    for members in classes.values():
        first = members[0]
        old = snapshot.generate(proxy_view(first.proxy, before), first.generators)
        new = snapshot.generate(proxy_view(first.proxy, after), first.generators)
        runs += old.runs + new.runs
        types = tuple(diff_type(name, old.of(name), new.of(name)) for name, _ in snapshot.TYPES)
        ids = tuple(sorted(m.proxy.id for m in members))
        planned.append(ClassPlan(ids, types, new))
    planned.sort(key=lambda c: (not c.changed, c.proxies))
    return Plan(tuple(planned), runs, tuple(skipped))


def render_after(plan: ClassPlan) -> dict[str, Any]:
    """The class's resources after the change, in `python -m pilot.render`'s shape (what
    istioctl's Envoy check loads): proto JSON without the top-level `@type`."""

    def items(type_name: str) -> list[dict[str, Any]]:
        out = []
        for resource in plan.after.of(type_name).values():
            value = resource_json(resource)
            value.pop("@type", None)
            out.append(value)
        return out

    first = plan.proxies[0]
    return {
        "id": first,
        "type": first.split("~", 1)[0],
        "clusters": items("CDS"),
        "endpoints": items("EDS"),
        "listeners": items("LDS"),
        "routes": items("RDS"),
    }


def _short(node_id: str) -> str:
    parts = node_id.split("~")
    return parts[2] if len(parts) == 4 else node_id
