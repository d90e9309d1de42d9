"""The process's Prometheus registry (not the library's global one), shared by istiod's parts,
and its text exposition with Istio's metric names.

Each istiod has one registry; tests that build several servers in one interpreter share it,
which is fine for counters they read as deltas.

Istio exports counters without the `_total` suffix (its OpenTelemetry exporter runs with
`WithoutCounterSuffixes`): `pilot_xds_pushes{type="cds"} 12`, `citadel_server_csr_count 3`.
prometheus_client always adds `_total` (and `_created` samples), so `exposition()` writes
the text format itself and names counters as Istio does; dashboards and alerts written for
Istio keep working.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _metric_lines(metric: Metric) -> Iterable[str]:
    kind = metric.type
    if kind == "counter":
        yield f"# HELP {metric.name} {_escape_help(metric.documentation)}"
        yield f"# TYPE {metric.name} counter"
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                value = _value(sample.value)
                yield f"{metric.name}{_labels(sample.labels)} {value}"
        return
    if kind == "unknown":
        kind = "untyped"
    yield f"# HELP {metric.name} {_escape_help(metric.documentation)}"
    yield f"# TYPE {metric.name} {kind}"
    for sample in metric.samples:
        if sample.name.endswith("_created"):
            continue
        yield f"{sample.name}{_labels(sample.labels)} {_value(sample.value)}"


def exposition(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The registry in Prometheus text format 0.0.4, counters named without `_total`."""
    lines: list[str] = []
    for metric in registry.collect():
        lines.extend(_metric_lines(metric))
    return ("\n".join(lines) + "\n").encode()
