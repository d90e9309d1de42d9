"""DestinationRule (networking/v1alpha3/destination_rule.proto).

Nested proto types become top-level classes under their own name (`TrafficPolicy.PortTrafficPolicy`
→ `PortTrafficPolicy`, `LoadBalancerSettings.ConsistentHashLB` → `ConsistentHashLB`,
`ConsistentHashLB.HTTPCookie.Attribute` → `Attribute`, `TrafficPolicy.ProxyProtocol.VERSION`
→ `VERSION`, ...) except where two would clash:
- `ClientTLSSettings.TLSmode` → `ClientTLSSettings_TLSmode` (see `ServerTLSSettings_TLSmode`)
- `LocalityLoadBalancerSetting.Failover` → `LocalityLoadBalancerSetting_Failover`
- `ZoneAwareLoadBalancerSetting.Failover` → `ZoneAwareLoadBalancerSetting_Failover`

`LoadBalancerSettings.backend_utilization` comes from the newer CRDs shipped with istio/istio
(API of 2026-08), not yet in the istio/api protos; its class name is provisional.

`DestinationRule.workload_selector` is the `istio.type.v1beta1` selector
(`pkg.config.types.WorkloadSelector`, with `match_labels`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from pkg.config.fields import (
    C,
    int32,
    mapping,
    repeated,
    schema,
    string,
    uint32,
    uint64,
    wrapper,
)
from pkg.config.specs.virtual_service import PortSelector
from pkg.config.types import Duration, WorkloadSelector


class SimpleLB(StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    LEAST_CONN = "LEAST_CONN"  # deprecated: use LEAST_REQUEST
    RANDOM = "RANDOM"
    PASSTHROUGH = "PASSTHROUGH"
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_REQUEST = "LEAST_REQUEST"


@dataclass(frozen=True, slots=True)
class RingHash:
    minimum_ring_size: int = uint64()


@dataclass(frozen=True, slots=True)
class MagLev:
    table_size: int = uint64()


@dataclass(frozen=True, slots=True)
class Attribute:
    """ConsistentHashLB.HTTPCookie.Attribute."""

    name: str = string(required=True)
    value: str = ""


@dataclass(frozen=True, slots=True)
class HTTPCookie:
    name: str = string(required=True)
    path: str = ""
    ttl: Duration | None = field(default=None, metadata=schema(fmt="any-duration"))
    attributes: tuple[Attribute, ...] = ()


@dataclass(frozen=True, slots=True)
class ConsistentHashLB:
    ONEOFS: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("http_header_name", "http_cookie", "use_source_ip", "http_query_parameter_name"),
        ("ring_hash", "maglev"),
    )

    http_header_name: str | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    ring_hash: RingHash | None = None
    maglev: MagLev | None = None
    minimum_ring_size: int = uint64()  # deprecated: use ring_hash


@dataclass(frozen=True, slots=True)
class Distribute:
    """LocalityLoadBalancerSetting.Distribute."""

    from_: str = ""
    to: Mapping[str, int] = mapping(items=C(fmt="uint32"))


@dataclass(frozen=True, slots=True)
class LocalityLoadBalancerSetting_Failover:
    from_: str = ""
    to: str = ""


@dataclass(frozen=True, slots=True)
class LocalityLoadBalancerSetting:
    distribute: tuple[Distribute, ...] = ()
    failover: tuple[LocalityLoadBalancerSetting_Failover, ...] = ()
    failover_priority: tuple[str, ...] = ()
    enabled: bool | None = wrapper()


@dataclass(frozen=True, slots=True)
class ZoneAwareLoadBalancerSetting_Failover:
    from_: str = ""
    to: str = ""


@dataclass(frozen=True, slots=True)
class ZoneAwareLoadBalancerSetting:
    enabled: bool | None = wrapper()
    failover: tuple[ZoneAwareLoadBalancerSetting_Failover, ...] = ()
    failover_priority: tuple[str, ...] = ()
    min_cluster_size: int | None = wrapper("uint64", minimum=1)


@dataclass(frozen=True, slots=True)
class WarmupConfiguration:
    duration: Duration | None = field(default=None, metadata=schema(required=True))
    minimum_percent: float | None = wrapper(minimum=0, maximum=100)
    aggression: float | None = wrapper(minimum=0)


@dataclass(frozen=True, slots=True)
class BackendUtilization:
    """Client-side weighted round robin on backend utilization (newer API; name provisional)."""

    weight_update_period: Duration | None = field(default=None, metadata=schema(fmt="any-duration"))
    weight_expiration_period: Duration | None = field(
        default=None, metadata=schema(fmt="any-duration")
    )
    weight_stabilization_period: Duration | None = field(
        default=None, metadata=schema(fmt="any-duration")
    )
    error_utilization_penalty_percent: int = uint32()
    metric_names_for_computing_utilization: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LoadBalancerSettings:
    ONEOFS: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("simple", "consistent_hash", "backend_utilization"),
    )

    simple: SimpleLB | None = None
    consistent_hash: ConsistentHashLB | None = None
    backend_utilization: BackendUtilization | None = None
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    zone_aware_lb_setting: ZoneAwareLoadBalancerSetting | None = None
    warmup_duration_secs: Duration | None = None
    warmup: WarmupConfiguration | None = None


@dataclass(frozen=True, slots=True)
class TcpKeepalive:
    """ConnectionPoolSettings.TCPSettings.TcpKeepalive."""

    probes: int = uint32()
    time: Duration | None = None
    interval: Duration | None = None


@dataclass(frozen=True, slots=True)
class TCPSettings:
    max_connections: int = int32()
    connect_timeout: Duration | None = None
    tcp_keepalive: TcpKeepalive | None = None
    max_connection_duration: Duration | None = None
    # No CRD rule: 0s (no idle timeout) is valid; the webhook checks other values.
    idle_timeout: Duration | None = field(default=None, metadata=schema(fmt="any-duration"))


class H2UpgradePolicy(StrEnum):
    DEFAULT = "DEFAULT"
    DO_NOT_UPGRADE = "DO_NOT_UPGRADE"
    UPGRADE = "UPGRADE"


@dataclass(frozen=True, slots=True)
class ConnectionKeepalive:
    """ConnectionPoolSettings.HTTPSettings.ConnectionKeepalive."""

    interval: Duration | None = None
    timeout: Duration | None = None


@dataclass(frozen=True, slots=True)
class HTTPSettings:
    http1_max_pending_requests: int = int32()
    http2_max_requests: int = int32()
    max_requests_per_connection: int = int32()
    max_retries: int = int32()
    idle_timeout: Duration | None = None
    h2_upgrade_policy: H2UpgradePolicy = H2UpgradePolicy.DEFAULT
    use_client_protocol: bool = False
    max_concurrent_streams: int = int32()
    http2_keep_alive: ConnectionKeepalive | None = None


@dataclass(frozen=True, slots=True)
class ConnectionPoolSettings:
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    consecutive_errors: int = int32()  # deprecated
    split_external_local_origin_errors: bool = False
    consecutive_local_origin_failures: int | None = wrapper("uint32")
    consecutive_gateway_errors: int | None = wrapper("uint32")
    consecutive_5xx_errors: int | None = wrapper("uint32")
    interval: Duration | None = None
    base_ejection_time: Duration | None = None
    max_ejection_percent: int = int32()
    min_health_percent: int = int32()
    outlier_detection_http_error_codes: tuple[int, ...] = repeated(
        items=C(fmt="uint32", minimum=100, maximum=599)
    )


class ClientTLSSettings_TLSmode(StrEnum):
    DISABLE = "DISABLE"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"


@dataclass(frozen=True, slots=True)
class ClientTLSSettings:
    mode: ClientTLSSettings_TLSmode = ClientTLSSettings_TLSmode.DISABLE
    client_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    credential_name: str = ""
    subject_alt_names: tuple[str, ...] = ()
    sni: str = ""
    insecure_skip_verify: bool | None = wrapper()
    ca_crl: str = ""


@dataclass(frozen=True, slots=True)
class TunnelSettings:
    protocol: str = ""
    target_host: str = string(required=True)
    target_port: int = uint32(required=True)


class VERSION(StrEnum):
    """TrafficPolicy.ProxyProtocol.VERSION."""

    V1 = "V1"
    V2 = "V2"


@dataclass(frozen=True, slots=True)
class ProxyProtocol:
    version: VERSION = VERSION.V1


@dataclass(frozen=True, slots=True)
class RetryBudget:
    percent: float | None = wrapper(minimum=0, maximum=100)
    min_retry_concurrency: int = uint32()
    budget_interval: Duration | None = field(default=None, metadata=schema(fmt="any-duration"))


@dataclass(frozen=True, slots=True)
class PortTrafficPolicy:
    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


@dataclass(frozen=True, slots=True)
class TrafficPolicy:
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: tuple[PortTrafficPolicy, ...] = repeated(max_items=4096)
    tunnel: TunnelSettings | None = None
    proxy_protocol: ProxyProtocol | None = None
    retry_budget: RetryBudget | None = None


@dataclass(frozen=True, slots=True)
class Subset:
    name: str = string(required=True)
    labels: Mapping[str, str] = mapping()
    traffic_policy: TrafficPolicy | None = None


@dataclass(frozen=True, slots=True)
class DestinationRule:
    host: str = string(required=True)
    traffic_policy: TrafficPolicy | None = None
    subsets: tuple[Subset, ...] = ()
    export_to: tuple[str, ...] = ()
    workload_selector: WorkloadSelector | None = None


__all__ = [
    "VERSION",
    "Attribute",
    "BackendUtilization",
    "ClientTLSSettings",
    "ClientTLSSettings_TLSmode",
    "ConnectionKeepalive",
    "ConnectionPoolSettings",
    "ConsistentHashLB",
    "DestinationRule",
    "Distribute",
    "H2UpgradePolicy",
    "HTTPCookie",
    "HTTPSettings",
    "LoadBalancerSettings",
    "LocalityLoadBalancerSetting",
    "LocalityLoadBalancerSetting_Failover",
    "MagLev",
    "OutlierDetection",
    "PortTrafficPolicy",
    "ProxyProtocol",
    "RetryBudget",
    "RingHash",
    "SimpleLB",
    "Subset",
    "TCPSettings",
    "TcpKeepalive",
    "TrafficPolicy",
    "TunnelSettings",
    "WarmupConfiguration",
    "ZoneAwareLoadBalancerSetting",
    "ZoneAwareLoadBalancerSetting_Failover",
]
