"""Telemetry (telemetry/v1alpha1/telemetry.proto; v1 is the same schema).

Renames: `Tracing.TracingSelector` → `TracingSelector`, `Tracing.CustomTag` → `CustomTag`,
`Tracing.Literal` → `Literal`, `Tracing.Environment` → `Environment`, `Tracing.RequestHeader`
→ `RequestHeader`, `Tracing.Formatter` → `Formatter`, `MetricSelector.IstioMetric` →
`IstioMetric`, `MetricsOverrides.TagOverride` → `TagOverride`, `TagOverride.Operation` →
`Operation`, `AccessLogging.LogSelector` → `LogSelector`, `AccessLogging.Filter` → `Filter`.
`WorkloadMode` here is telemetry's own enum (zero value CLIENT_AND_SERVER), not
`pkg.config.types.WorkloadMode`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from pkg.config.fields import mapping, optional, repeated, string, wrapper
from pkg.config.types import Duration, PolicyTargetReference, WorkloadSelector


class WorkloadMode(StrEnum):
    CLIENT_AND_SERVER = "CLIENT_AND_SERVER"
    CLIENT = "CLIENT"
    SERVER = "SERVER"


@dataclass(frozen=True, slots=True)
class ProviderRef:
    name: str = string(required=True, min_len=1)


@dataclass(frozen=True, slots=True)
class TracingSelector:
    mode: WorkloadMode = WorkloadMode.CLIENT_AND_SERVER


@dataclass(frozen=True, slots=True)
class Literal:
    value: str = string(required=True, min_len=1)


@dataclass(frozen=True, slots=True)
class Environment:
    name: str = string(required=True, min_len=1)
    default_value: str = ""


@dataclass(frozen=True, slots=True)
class RequestHeader:
    name: str = string(required=True, min_len=1)
    default_value: str = ""


@dataclass(frozen=True, slots=True)
class Formatter:
    value: str = string(required=True, min_len=1)


@dataclass(frozen=True, slots=True)
class CustomTag:
    ONEOFS: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("literal", "environment", "header", "formatter"),
    )

    literal: Literal | None = None
    environment: Environment | None = None
    header: RequestHeader | None = None
    formatter: Formatter | None = None


@dataclass(frozen=True, slots=True)
class Tracing:
    match: TracingSelector | None = None
    providers: tuple[ProviderRef, ...] = ()
    random_sampling_percentage: float | None = wrapper(minimum=0, maximum=100)
    disable_span_reporting: bool | None = wrapper()
    custom_tags: Mapping[str, CustomTag] = mapping()
    use_request_id_for_trace_sampling: bool | None = wrapper()
    enable_istio_tags: bool | None = wrapper()
    disable_context_propagation: bool | None = wrapper()


class IstioMetric(StrEnum):
    ALL_METRICS = "ALL_METRICS"
    REQUEST_COUNT = "REQUEST_COUNT"
    REQUEST_DURATION = "REQUEST_DURATION"
    REQUEST_SIZE = "REQUEST_SIZE"
    RESPONSE_SIZE = "RESPONSE_SIZE"
    TCP_OPENED_CONNECTIONS = "TCP_OPENED_CONNECTIONS"
    TCP_CLOSED_CONNECTIONS = "TCP_CLOSED_CONNECTIONS"
    TCP_SENT_BYTES = "TCP_SENT_BYTES"
    TCP_RECEIVED_BYTES = "TCP_RECEIVED_BYTES"
    GRPC_REQUEST_MESSAGES = "GRPC_REQUEST_MESSAGES"
    GRPC_RESPONSE_MESSAGES = "GRPC_RESPONSE_MESSAGES"


@dataclass(frozen=True, slots=True)
class MetricSelector:
    ONEOFS: ClassVar[tuple[tuple[str, ...], ...]] = (("metric", "custom_metric"),)

    metric: IstioMetric | None = None
    custom_metric: str | None = optional(min_len=1)
    mode: WorkloadMode = WorkloadMode.CLIENT_AND_SERVER


class Operation(StrEnum):
    """MetricsOverrides.TagOverride.Operation."""

    UPSERT = "UPSERT"
    REMOVE = "REMOVE"


@dataclass(frozen=True, slots=True)
class TagOverride:
    operation: Operation = Operation.UPSERT
    value: str = ""


@dataclass(frozen=True, slots=True)
class MetricsOverrides:
    match: MetricSelector | None = None
    disabled: bool | None = wrapper()
    tag_overrides: Mapping[str, TagOverride] = mapping()


@dataclass(frozen=True, slots=True)
class Metrics:
    providers: tuple[ProviderRef, ...] = ()
    overrides: tuple[MetricsOverrides, ...] = ()
    reporting_interval: Duration | None = None


@dataclass(frozen=True, slots=True)
class LogSelector:
    mode: WorkloadMode = WorkloadMode.CLIENT_AND_SERVER


@dataclass(frozen=True, slots=True)
class Filter:
    expression: str = ""


@dataclass(frozen=True, slots=True)
class AccessLogging:
    match: LogSelector | None = None
    providers: tuple[ProviderRef, ...] = ()
    disabled: bool | None = wrapper()
    filter: Filter | None = None


@dataclass(frozen=True, slots=True)
class Telemetry:
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = repeated(max_items=16)
    tracing: tuple[Tracing, ...] = ()
    metrics: tuple[Metrics, ...] = ()
    access_logging: tuple[AccessLogging, ...] = ()


__all__ = [
    "AccessLogging",
    "CustomTag",
    "Environment",
    "Filter",
    "Formatter",
    "IstioMetric",
    "Literal",
    "LogSelector",
    "MetricSelector",
    "Metrics",
    "MetricsOverrides",
    "Operation",
    "PolicyTargetReference",
    "ProviderRef",
    "RequestHeader",
    "TagOverride",
    "Telemetry",
    "Tracing",
    "TracingSelector",
    "WorkloadMode",
    "WorkloadSelector",
]
