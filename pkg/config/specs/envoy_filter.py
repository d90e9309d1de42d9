"""EnvoyFilter (networking/v1alpha3/envoy_filter.proto).

Every nested message of `EnvoyFilter` becomes a top-level class under its own name
(`EnvoyFilter.ListenerMatch` → `ListenerMatch`, `EnvoyFilter.Patch.Operation` → `Operation`,
`RouteConfigurationMatch.RouteMatch.Action` → `Action`, ...), except where names clash:
- `RouteConfigurationMatch.RouteMatch` → `RouteConfigurationMatch_RouteMatch`
- `WaypointMatch.RouteMatch` → `WaypointMatch_RouteMatch`
- `ListenerMatch.FilterMatch` → `ListenerMatch_FilterMatch`
- `ListenerMatch.SubFilterMatch` → `ListenerMatch_SubFilterMatch`
- `WaypointMatch.FilterMatch` → `WaypointMatch_FilterMatch`
- `WaypointMatch.FilterMatch.SubFilterMatch` → `WaypointMatch_FilterMatch_SubFilterMatch`

`Patch.value` (a google.protobuf.Struct) holds the raw JSON object of the patch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from pkg.config.fields import PORT_RANGE, mapping, repeated, schema, uint32
from pkg.config.specs.sidecar import WorkloadSelector
from pkg.config.types import PolicyTargetReference


class ApplyTo(StrEnum):
    INVALID = "INVALID"
    LISTENER = "LISTENER"
    FILTER_CHAIN = "FILTER_CHAIN"
    NETWORK_FILTER = "NETWORK_FILTER"
    HTTP_FILTER = "HTTP_FILTER"
    ROUTE_CONFIGURATION = "ROUTE_CONFIGURATION"
    VIRTUAL_HOST = "VIRTUAL_HOST"
    HTTP_ROUTE = "HTTP_ROUTE"
    CLUSTER = "CLUSTER"
    EXTENSION_CONFIG = "EXTENSION_CONFIG"
    BOOTSTRAP = "BOOTSTRAP"
    LISTENER_FILTER = "LISTENER_FILTER"


class PatchContext(StrEnum):
    ANY = "ANY"
    SIDECAR_INBOUND = "SIDECAR_INBOUND"
    SIDECAR_OUTBOUND = "SIDECAR_OUTBOUND"
    GATEWAY = "GATEWAY"
    WAYPOINT = "WAYPOINT"


@dataclass(frozen=True, slots=True)
class ProxyMatch:
    proxy_version: str = ""
    metadata: Mapping[str, str] = mapping()


@dataclass(frozen=True, slots=True)
class ClusterMatch:
    port_number: int = uint32()
    service: str = ""
    subset: str = ""
    name: str = ""


class Action(StrEnum):
    """RouteConfigurationMatch.RouteMatch.Action."""

    ANY = "ANY"
    ROUTE = "ROUTE"
    REDIRECT = "REDIRECT"
    DIRECT_RESPONSE = "DIRECT_RESPONSE"


@dataclass(frozen=True, slots=True)
class RouteConfigurationMatch_RouteMatch:
    name: str = ""
    action: Action = Action.ANY


@dataclass(frozen=True, slots=True)
class VirtualHostMatch:
    name: str = ""
    domain_name: str = ""
    route: RouteConfigurationMatch_RouteMatch | None = None


@dataclass(frozen=True, slots=True)
class RouteConfigurationMatch:
    port_number: int = uint32()
    port_name: str = ""
    gateway: str = ""
    vhost: VirtualHostMatch | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class ListenerMatch_SubFilterMatch:
    name: str = ""


@dataclass(frozen=True, slots=True)
class ListenerMatch_FilterMatch:
    name: str = ""
    sub_filter: ListenerMatch_SubFilterMatch | None = None


@dataclass(frozen=True, slots=True)
class FilterChainMatch:
    """ListenerMatch.FilterChainMatch."""

    name: str = ""
    sni: str = ""
    transport_protocol: str = ""
    application_protocols: str = ""
    filter: ListenerMatch_FilterMatch | None = None
    destination_port: int = uint32()
    transport_socket: str = ""  # newer API (istio/istio CRDs of 2026-08)


@dataclass(frozen=True, slots=True)
class ListenerMatch:
    port_number: int = uint32()
    port_name: str = ""
    filter_chain: FilterChainMatch | None = None
    listener_filter: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class WaypointMatch_RouteMatch:
    name: str = ""


@dataclass(frozen=True, slots=True)
class WaypointMatch_FilterMatch_SubFilterMatch:
    name: str = ""


@dataclass(frozen=True, slots=True)
class WaypointMatch_FilterMatch:
    name: str = ""
    sub_filter: WaypointMatch_FilterMatch_SubFilterMatch | None = None


@dataclass(frozen=True, slots=True)
class WaypointMatch:
    port_number: int = uint32(rules=(PORT_RANGE,))
    route: WaypointMatch_RouteMatch | None = None
    filter: WaypointMatch_FilterMatch | None = None


class Operation(StrEnum):
    """Patch.Operation."""

    INVALID = "INVALID"
    MERGE = "MERGE"
    ADD = "ADD"
    REMOVE = "REMOVE"
    INSERT_BEFORE = "INSERT_BEFORE"
    INSERT_AFTER = "INSERT_AFTER"
    INSERT_FIRST = "INSERT_FIRST"
    REPLACE = "REPLACE"
    MERGE_AND_REPLACE_LIST = "MERGE_AND_REPLACE_LIST"


class FilterClass(StrEnum):
    """Patch.FilterClass."""

    UNSPECIFIED = "UNSPECIFIED"
    AUTHN = "AUTHN"
    AUTHZ = "AUTHZ"
    STATS = "STATS"


@dataclass(frozen=True, slots=True)
class Patch:
    operation: Operation = Operation.INVALID
    value: Any = field(default=None, metadata=schema(fmt="struct"))
    filter_class: FilterClass = FilterClass.UNSPECIFIED


@dataclass(frozen=True, slots=True)
class EnvoyConfigObjectMatch:
    ONEOFS: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("listener", "route_configuration", "cluster", "waypoint"),
    )

    context: PatchContext = PatchContext.ANY
    proxy: ProxyMatch | None = None
    listener: ListenerMatch | None = None
    route_configuration: RouteConfigurationMatch | None = None
    cluster: ClusterMatch | None = None
    waypoint: WaypointMatch | None = None


@dataclass(frozen=True, slots=True)
class EnvoyConfigObjectPatch:
    apply_to: ApplyTo = ApplyTo.INVALID
    match: EnvoyConfigObjectMatch | None = None
    patch: Patch | None = None


@dataclass(frozen=True, slots=True)
class EnvoyFilter:
    workload_selector: WorkloadSelector | None = None
    target_refs: tuple[PolicyTargetReference, ...] = repeated(max_items=16)
    config_patches: tuple[EnvoyConfigObjectPatch, ...] = ()
    priority: int = 0


__all__ = [
    "Action",
    "ApplyTo",
    "ClusterMatch",
    "EnvoyConfigObjectMatch",
    "EnvoyConfigObjectPatch",
    "EnvoyFilter",
    "FilterChainMatch",
    "FilterClass",
    "ListenerMatch",
    "ListenerMatch_FilterMatch",
    "ListenerMatch_SubFilterMatch",
    "Operation",
    "Patch",
    "PatchContext",
    "ProxyMatch",
    "RouteConfigurationMatch",
    "RouteConfigurationMatch_RouteMatch",
    "VirtualHostMatch",
    "WaypointMatch",
    "WaypointMatch_FilterMatch",
    "WaypointMatch_FilterMatch_SubFilterMatch",
    "WaypointMatch_RouteMatch",
]
