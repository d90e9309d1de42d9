"""Sidecar (networking/v1alpha3/sidecar.proto), and the networking `WorkloadSelector`.

`WorkloadSelector` here is the networking message (field `labels`), used by Sidecar,
ServiceEntry and EnvoyFilter; the `istio.type.v1beta1` one (field `match_labels`) is
`pkg.config.types.WorkloadSelector`. `OutboundTrafficPolicy.Mode` → `Mode`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pkg.config.fields import (
    NO_WILDCARD_SELECTOR_VALUE,
    C,
    mapping,
    repeated,
    schema,
    uint32,
)
from pkg.config.specs.destination_rule import ConnectionPoolSettings
from pkg.config.specs.gateway import ServerTLSSettings
from pkg.config.specs.virtual_service import Destination


@dataclass(frozen=True, slots=True)
class WorkloadSelector:
    """Selects workloads by labels (networking flavour: the field is `labels`)."""

    labels: Mapping[str, str] = mapping(
        max_props=256, items=C(max_len=63, rules=(NO_WILDCARD_SELECTOR_VALUE,))
    )


class CaptureMode(StrEnum):
    DEFAULT = "DEFAULT"
    IPTABLES = "IPTABLES"
    NONE = "NONE"


@dataclass(frozen=True, slots=True)
class SidecarPort:
    number: int = uint32()
    protocol: str = ""
    name: str = ""
    target_port: int = uint32()  # deprecated: has no effect on sidecars


@dataclass(frozen=True, slots=True)
class IstioIngressListener:
    port: SidecarPort | None = field(default=None, metadata=schema(required=True))
    bind: str = ""
    capture_mode: CaptureMode = CaptureMode.DEFAULT
    default_endpoint: str = ""
    tls: ServerTLSSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None


@dataclass(frozen=True, slots=True)
class IstioEgressListener:
    port: SidecarPort | None = None
    bind: str = ""
    capture_mode: CaptureMode = CaptureMode.DEFAULT
    hosts: tuple[str, ...] = repeated(required=True)


class Mode(StrEnum):
    """OutboundTrafficPolicy.Mode."""

    REGISTRY_ONLY = "REGISTRY_ONLY"
    ALLOW_ANY = "ALLOW_ANY"


@dataclass(frozen=True, slots=True)
class OutboundTrafficPolicy:
    mode: Mode = Mode.REGISTRY_ONLY
    egress_proxy: Destination | None = None


@dataclass(frozen=True, slots=True)
class Sidecar:
    workload_selector: WorkloadSelector | None = None
    ingress: tuple[IstioIngressListener, ...] = ()
    egress: tuple[IstioEgressListener, ...] = ()
    inbound_connection_pool: ConnectionPoolSettings | None = None
    outbound_traffic_policy: OutboundTrafficPolicy | None = None


__all__ = [
    "CaptureMode",
    "IstioEgressListener",
    "IstioIngressListener",
    "Mode",
    "OutboundTrafficPolicy",
    "Sidecar",
    "SidecarPort",
    "WorkloadSelector",
]
