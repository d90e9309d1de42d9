"""Services as the registries see them: one `Service` per hostname, whatever its source.

Kubernetes Services and ServiceEntries both become `Service` values (frozen); the networking
builders never look at the source objects. Protocol selection follows Istio
(`pkg/config/protocol`, `pkg/config/kube/conversion.go`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pkg.config.model import ConfigKey


class Protocol(StrEnum):
    GRPC = "GRPC"
    GRPC_WEB = "GRPC-Web"
    HTTP = "HTTP"
    HTTP_PROXY = "HTTP_PROXY"
    HTTP2 = "HTTP2"
    HTTPS = "HTTPS"
    TCP = "TCP"
    TLS = "TLS"
    UDP = "UDP"
    MONGO = "Mongo"
    REDIS = "Redis"
    MYSQL = "MySQL"
    UNSUPPORTED = "UnsupportedProtocol"  # "auto": sniffed by the proxy

    @classmethod
    def parse(cls, value: str) -> Protocol:
        return _BY_LOWER.get(value.lower(), cls.UNSUPPORTED)

    @property
    def is_http(self) -> bool:
        return self in _HTTP

    @property
    def is_http2(self) -> bool:
        return self in (Protocol.HTTP2, Protocol.GRPC, Protocol.GRPC_WEB)

    @property
    def is_tcp(self) -> bool:
        return self in _TCP

    @property
    def is_tls(self) -> bool:
        return self in (Protocol.HTTPS, Protocol.TLS)

    @property
    def is_unsupported(self) -> bool:
        return self is Protocol.UNSUPPORTED

    @property
    def is_http_or_sniffed(self) -> bool:
        return self.is_http or self.is_unsupported


_BY_LOWER = {
    "tcp": Protocol.TCP,
    "udp": Protocol.UDP,
    "grpc": Protocol.GRPC,
    "grpc-web": Protocol.GRPC_WEB,
    "http": Protocol.HTTP,
    "http_proxy": Protocol.HTTP_PROXY,
    "http2": Protocol.HTTP2,
    "https": Protocol.HTTPS,
    "tls": Protocol.TLS,
    "mongo": Protocol.MONGO,
    "redis": Protocol.REDIS,
    "mysql": Protocol.MYSQL,
}
_HTTP = frozenset(
    {Protocol.HTTP, Protocol.HTTP2, Protocol.HTTP_PROXY, Protocol.GRPC, Protocol.GRPC_WEB}
)
_TCP = frozenset(
    {Protocol.TCP, Protocol.HTTPS, Protocol.TLS, Protocol.MONGO, Protocol.REDIS, Protocol.MYSQL}
)
_WELL_KNOWN_TCP_PORTS = frozenset({25, 53, 3306, 27017})


def protocol_from_kube_port(
    port: int, name: str, transport: str = "TCP", app_protocol: str | None = None
) -> Protocol:
    """Istio's protocol selection for a Kubernetes Service port (appProtocol, then name prefix)."""
    if transport.upper() == "UDP":
        return Protocol.UDP
    selector = name
    if app_protocol:
        selector = app_protocol
        special = {
            "kubernetes.io/h2c": Protocol.HTTP2,
            "kubernetes.io/ws": Protocol.HTTP,
            "kubernetes.io/wss": Protocol.HTTPS,
        }.get(selector)
        if special is not None:
            return special
    if selector.lower().startswith("grpc-web"):
        return Protocol.GRPC_WEB
    prefix = selector.split("-", 1)[0]
    proto = Protocol.parse(prefix)
    if proto.is_unsupported and port in _WELL_KNOWN_TCP_PORTS:
        return Protocol.TCP
    return proto


class Resolution(StrEnum):
    """How a proxy reaches a service's endpoints (Istio's model.Resolution)."""

    CLIENT_SIDE_LB = "ClientSideLB"  # EDS
    DNS_LB = "DNSLB"  # STRICT_DNS
    DNS_ROUND_ROBIN_LB = "DNSRoundRobinLB"  # LOGICAL_DNS
    PASSTHROUGH = "Passthrough"  # ORIGINAL_DST


class Registry(StrEnum):
    KUBERNETES = "Kubernetes"
    EXTERNAL = "External"


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    protocol: Protocol
    # The port endpoints listen on when the source names one for every endpoint
    # (ServiceEntry targetPort, Kubernetes numeric targetPort). Endpoints carry their own port too.
    target_port: int = 0


# Visibility values of exportTo.
EXPORT_PUBLIC = "*"
EXPORT_PRIVATE = "."
EXPORT_NONE = "~"


@dataclass(frozen=True, slots=True)
class Service:
    hostname: str
    namespace: str
    name: str  # Kubernetes Service name, or the ServiceEntry host for ServiceEntries
    ports: tuple[ServicePort, ...]
    registry: Registry
    resolution: Resolution = Resolution.CLIENT_SIDE_LB
    # The service VIP ("0.0.0.0" when there is none, as Istio's DefaultAddress).
    address: str = "0.0.0.0"
    extra_addresses: tuple[str, ...] = ()
    mesh_external: bool = False
    # Empty means "the mesh default" (defaultServiceExportTo, normally public).
    export_to: frozenset[str] = frozenset()
    labels: Mapping[str, str] = field(default_factory=dict)
    # Workload selector (Kubernetes selector or ServiceEntry workloadSelector); None: no selector.
    selector: Mapping[str, str] | None = None
    service_accounts: tuple[str, ...] = ()
    external_name: str = ""
    headless: bool = False
    creation_timestamp: float = 0.0
    source: ConfigKey | None = None

    def port_by_number(self, number: int) -> ServicePort | None:
        for p in self.ports:
            if p.port == number:
                return p
        return None

    def port_by_name(self, name: str) -> ServicePort | None:
        for p in self.ports:
            if p.name == name:
                return p
        return None

    @property
    def has_vip(self) -> bool:
        return self.address not in ("", "0.0.0.0", "::")

    @property
    def all_addresses(self) -> tuple[str, ...]:
        return ((self.address,) if self.has_vip else ()) + self.extra_addresses
