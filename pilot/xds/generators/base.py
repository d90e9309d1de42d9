"""The generator seam: one per xDS type, pure functions of (proxy view, push request).

`generate(view, names)` returns built resources for the requested names (all of them when
`names` is None, the wildcard). `needs_push(req)` is the cheap filter Istio runs before
generating: a change of a kind that cannot affect this type skips it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from typing import Protocol

from pilot.model.proxy_view import ProxyView
from pilot.model.push_request import PushRequest
from pilot.xds.wire import BuiltResource
from pkg.config.model import Kind


class Generator(Protocol):
    type_url: str

    def needs_push(self, req: PushRequest) -> bool: ...

    def generate(
        self, view: ProxyView, names: frozenset[str] | None
    ) -> Sequence[BuiltResource]: ...


def affected_by(req: PushRequest, ignored: frozenset[Kind]) -> bool:
    """True unless every changed kind is in `ignored` (a forced push affects everything)."""
    if req.forced or not req.configs_updated:
        return True
    return any(k.kind not in ignored for k in req.configs_updated)


def select(resources: Iterable[BuiltResource], names: frozenset[str] | None) -> list[BuiltResource]:
    if names is None:
        return list(resources)
    return [r for r in resources if r.name in names]


# ---- what a proxy's answer depends on, beyond its Sidecar scope and namespace -------------


def rule_labels_key(view: ProxyView) -> tuple[tuple[str, str], ...]:
    """The workload labels, when a DestinationRule selects workloads (then the rule a
    proxy gets depends on them); else () so every workload of the namespace shares."""
    if view.push.destination_rules.has_selectors:
        return tuple(sorted(view.labels.items()))
    return ()


def source_labels_key(view: ProxyView) -> tuple[tuple[str, str], ...]:
    """The workload labels, when a VirtualService of the scope matches on sourceLabels or a
    DestinationRule selects workloads; else ()."""
    if view.push.memo(("uses-source-labels", id(view.scope)), partial(_uses_labels, view)):
        return tuple(sorted(view.labels.items()))
    return ()


def _uses_labels(view: ProxyView) -> bool:
    if view.push.destination_rules.has_selectors:
        return True
    for egress in view.scope.egress:
        for vs in egress.virtual_services:
            spec = vs.spec
            for route in (*spec.http, *spec.tcp, *spec.tls):
                if any(m.source_labels for m in route.match):
                    return True
    return False
