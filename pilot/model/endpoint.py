"""Endpoints of services, and the immutable endpoint index the EDS generator reads.

Registries publish every endpoint of a service as one tuple under `(hostname, namespace)`. An
endpoint-only change replaces one entry of the index (a new mapping, the rest shared) and a new
PushContext is made with `PushContext.with_endpoints`, so EDS stays a pure function of
(proxy, PushContext) and nothing else is rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

TLS_MODE_LABEL = "security.istio.io/tlsMode"


class TlsMode(StrEnum):
    ISTIO = "istio"
    DISABLED = "disabled"


class HealthStatus(StrEnum):
    """As Istio's model.HealthStatus. EDS never sends TERMINATING endpoints, and UNHEALTHY
    ones only with `send_unhealthy` (PILOT_SEND_UNHEALTHY_ENDPOINTS)."""

    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    DRAINING = "DRAINING"
    TERMINATING = "TERMINATING"


@dataclass(frozen=True, slots=True)
class IstioEndpoint:
    address: str
    port: int  # the port the workload listens on (the target port); 0 for unix sockets
    service_port_name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    # The SPIFFE identity of the workload (spiffe://td/ns/x/sa/y), "" when unknown.
    service_account: str = ""
    namespace: str = ""
    workload_name: str = ""
    locality: str = ""  # region/zone/subzone
    tls_mode: TlsMode = TlsMode.DISABLED
    health: HealthStatus = HealthStatus.HEALTHY
    weight: int = 0  # 0: unset (Envoy's default of 1)
    network: str = ""
    # The service port this endpoint serves (ServiceEntry ports may map several names to one
    # target port); kept so EDS can pick endpoints per service port number.
    service_port: int = 0
    # Istio's SendUnhealthyEndpoints: send this endpoint to proxies even when UNHEALTHY (with
    # that health status) instead of leaving it out.
    send_unhealthy: bool = False

    @property
    def is_unix(self) -> bool:
        return self.address.startswith("/") or self.address.startswith("@")


EndpointKey = tuple[str, str]  # (hostname, namespace)


@dataclass(frozen=True, slots=True)
class EndpointIndex:
    """An immutable map (hostname, namespace) → endpoints, plus per-entry versions."""

    _entries: Mapping[EndpointKey, tuple[IstioEndpoint, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def get(self, hostname: str, namespace: str) -> tuple[IstioEndpoint, ...]:
        return self._entries.get((hostname, namespace), ())

    def keys(self) -> Iterable[EndpointKey]:
        return self._entries.keys()

    def __len__(self) -> int:
        return len(self._entries)

    def replace(
        self, updates: Mapping[EndpointKey, tuple[IstioEndpoint, ...] | None]
    ) -> EndpointIndex:
        """A new index with `updates` applied (None removes the entry)."""
        merged = dict(self._entries)
        for key, value in updates.items():
            if value:
                merged[key] = value
            else:
                merged.pop(key, None)
        return EndpointIndex(MappingProxyType(merged))

    @classmethod
    def of(cls, entries: Mapping[EndpointKey, tuple[IstioEndpoint, ...]]) -> EndpointIndex:
        return cls(MappingProxyType({k: v for k, v in entries.items() if v}))
