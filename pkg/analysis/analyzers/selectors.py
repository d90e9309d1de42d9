"""Analyzers of workload selectors (Istio's gateway, sidecar and telemetry analyzers, and
pyistio's for PeerAuthentication and RequestAuthentication).

- `gateway.IngressGatewayPortAnalyzer` (selector part): some workload, in any namespace,
  carries the Gateway's selector labels (IST0101 "selector").
- `sidecar.SelectorAnalyzer`: a Sidecar's workloadSelector selects a workload of its namespace
  (IST0101 "selector"); no workload is selected by two Sidecars (IST0110); a namespace has at
  most one Sidecar without a selector (IST0111).
- `telemetry.SelectorAnalyzer` / `telemetry.DefaultSelectorAnalyzer`: the same for Telemetry
  (IST0101, IST0159, IST0160).
- `security.SelectorAnalyzer` (pyistio): a PeerAuthentication's or RequestAuthentication's
  selector selects a workload of its namespace, or of any namespace for the root namespace
  (IST0127, the code Istio gives AuthorizationPolicies selecting nothing).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pkg.analysis import messages as m
from pkg.analysis.analyzers.base import (
    Analyzer,
    first_key,
    message,
    selector_string,
    selects,
    sorted_names,
)
from pkg.analysis.inputs import AnalysisInput
from pkg.analysis.messages import Message, MessageType
from pkg.analysis.resource import Resource, Workload
from pkg.config.model import Kind


def analyze_gateway_selectors(inp: AnalysisInput) -> Iterator[Message]:
    for r, config in inp.of_kind(Kind.GATEWAY):
        selector: Mapping[str, str] = config.spec.selector
        if any(selects(selector, w) for w in inp.workloads):
            continue
        path = f"spec.selector.{first_key(selector)}" if selector else "spec"
        yield message(
            m.REFERENCED_RESOURCE_NOT_FOUND, r, "selector", selector_string(selector), path=path
        )


def _workload_key(w: Workload) -> tuple[str, str]:
    return (w.namespace, w.name)


def _selector_conflicts(
    inp: AnalysisInput,
    selected: list[tuple[Resource, Mapping[str, str], str]],
    conflict: MessageType,
) -> Iterator[Message]:
    """IST0101 for selectors that select nothing in their namespace, and `conflict` for
    workloads that two of them select. `selected`: (resource, labels, path of first label)."""
    by_workload: dict[tuple[str, str], list[Resource]] = {}
    for r, labels, path in selected:
        found = False
        for w in inp.workloads:
            if w.namespace == r.namespace and selects(labels, w):
                found = True
                group = by_workload.setdefault(_workload_key(w), [])
                if r not in group:
                    group.append(r)
        if not found:
            yield message(
                m.REFERENCED_RESOURCE_NOT_FOUND, r, "selector", selector_string(labels), path=path
            )
    for (namespace, workload), group in sorted(by_workload.items()):
        if len(group) < 2:
            continue
        names = sorted_names(group)
        for r in group:
            yield message(conflict, r, names, namespace, workload, path="metadata.name")


def _without_selector(unselected: list[Resource], kind: MessageType) -> Iterator[Message]:
    by_namespace: dict[str, list[Resource]] = {}
    for r in unselected:
        by_namespace.setdefault(r.namespace, []).append(r)
    for namespace, group in sorted(by_namespace.items()):
        if len(group) > 1:
            names = sorted_names(group)
            for r in group:
                yield message(kind, r, names, namespace, path="metadata.name")


def analyze_sidecars(inp: AnalysisInput) -> Iterator[Message]:
    selected: list[tuple[Resource, Mapping[str, str], str]] = []
    unselected: list[Resource] = []
    for r, config in inp.of_kind(Kind.SIDECAR):
        selector = config.spec.workload_selector
        labels: Mapping[str, str] = selector.labels if selector is not None else {}
        if not labels:
            unselected.append(r)
            continue
        selected.append((r, labels, f"spec.workloadSelector.labels.{first_key(labels)}"))
    yield from _selector_conflicts(inp, selected, m.CONFLICTING_SIDECAR_WORKLOAD_SELECTORS)
    yield from _without_selector(unselected, m.MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS)


def analyze_telemetries(inp: AnalysisInput) -> Iterator[Message]:
    selected: list[tuple[Resource, Mapping[str, str], str]] = []
    unselected: list[Resource] = []
    for r, config in inp.of_kind(Kind.TELEMETRY):
        spec: Any = config.spec
        if spec.selector is None:
            if spec.target_ref is None and not spec.target_refs:
                unselected.append(r)
            continue
        labels: Mapping[str, str] = spec.selector.match_labels
        if labels:
            selected.append((r, labels, f"spec.selector.matchLabels.{first_key(labels)}"))
    yield from _selector_conflicts(inp, selected, m.CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS)
    yield from _without_selector(unselected, m.MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS)


def selects_nothing(inp: AnalysisInput, r: Resource, labels: Mapping[str, str]) -> bool:
    """No in-mesh workload of the resource's namespace (any namespace for the root
    namespace) has `labels`."""
    namespace = None if r.namespace == inp.root_namespace else r.namespace
    return not any(selects(labels, w) for w in inp.mesh_workloads(namespace))


def analyze_authn_selectors(inp: AnalysisInput) -> Iterator[Message]:
    for kind in (Kind.PEER_AUTHENTICATION, Kind.REQUEST_AUTHENTICATION):
        for r, config in inp.of_kind(kind):
            selector = config.spec.selector
            labels: Mapping[str, str] = selector.match_labels if selector is not None else {}
            if labels and selects_nothing(inp, r, labels):
                yield message(
                    m.NO_MATCHING_WORKLOADS_FOUND,
                    r,
                    selector_string(labels),
                    path=f"spec.selector.matchLabels.{first_key(labels)}",
                )


ANALYZERS = (
    Analyzer(
        "gateway.IngressGatewayPortAnalyzer",
        "Checks that a gateway's selector matches a workload",
        analyze_gateway_selectors,
    ),
    Analyzer(
        "sidecar.SelectorAnalyzer",
        "Validates that sidecars that define a workload selector match at least one pod, and"
        " that there aren't multiple sidecar resources that select overlapping pods",
        analyze_sidecars,
    ),
    Analyzer(
        "telemetry.SelectorAnalyzer",
        "Validates that telemetries that define a selector match at least one pod, and that"
        " there aren't multiple telemetry resources that select overlapping pods",
        analyze_telemetries,
    ),
    Analyzer(
        "security.SelectorAnalyzer",
        "Checks that PeerAuthentication and RequestAuthentication selectors match a workload",
        analyze_authn_selectors,
    ),
)
