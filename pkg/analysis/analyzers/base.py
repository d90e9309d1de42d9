"""What every analyzer shares: its descriptor, message construction and selector strings."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from pkg.analysis.inputs import AnalysisInput
from pkg.analysis.messages import Message, MessageType, Param
from pkg.analysis.resource import Resource, Workload
from pkg.config.labels import selector_matches

MESH_GATEWAY = "mesh"


@dataclass(frozen=True, slots=True)
class Analyzer:
    """One named check (Istio's analyzer names, e.g. `virtualservice.GatewayAnalyzer`)."""

    name: str
    description: str
    run: Callable[[AnalysisInput], Iterable[Message]]


def message(
    kind: MessageType, resource: Resource, *params: Param, path: str | None = None
) -> Message:
    """A message about `resource`, pointing at the field at `path` when it is in the file."""
    line = resource.line_of(path) if path else 0
    return Message(kind, tuple(params), resource.ref, line)


def selector_string(labels: Mapping[str, str]) -> str:
    """Kubernetes' labels.SelectorFromSet(...).String(): `k1=v1,k2=v2`, sorted by key."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def first_key(labels: Mapping[str, str]) -> str:
    """The label Istio points at for a selector (the first in sorted order)."""
    return min(labels) if labels else ""


def selects(selector: Mapping[str, str], workload: Workload) -> bool:
    return selector_matches(selector, workload.labels)


def sorted_names(resources: Iterable[Resource]) -> list[str]:
    return sorted({r.name for r in resources})
