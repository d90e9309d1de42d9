"""The config object model shared by every part of pyistio.

A `Config` is one Kubernetes-style object: `Meta` (kind, name, namespace, labels, ...) plus a
typed, frozen `spec` parsed once at ingestion (see `pkg.config.schema`). `ConfigKey` names an
object without its content and is the currency of change: push requests carry sets of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar


class Kind(StrEnum):
    """Every kind pyistio reads, plus the pseudo-kinds used in change events."""

    # networking.istio.io
    VIRTUAL_SERVICE = "VirtualService"
    DESTINATION_RULE = "DestinationRule"
    GATEWAY = "Gateway"
    SERVICE_ENTRY = "ServiceEntry"
    WORKLOAD_ENTRY = "WorkloadEntry"
    WORKLOAD_GROUP = "WorkloadGroup"
    SIDECAR = "Sidecar"
    ENVOY_FILTER = "EnvoyFilter"
    PROXY_CONFIG = "ProxyConfig"
    # security.istio.io
    AUTHORIZATION_POLICY = "AuthorizationPolicy"
    PEER_AUTHENTICATION = "PeerAuthentication"
    REQUEST_AUTHENTICATION = "RequestAuthentication"
    # telemetry.istio.io, extensions.istio.io
    TELEMETRY = "Telemetry"
    WASM_PLUGIN = "WasmPlugin"
    # Kubernetes
    SERVICE = "Service"
    ENDPOINT_SLICE = "EndpointSlice"
    SECRET = "Secret"
    NAMESPACE = "Namespace"
    POD = "Pod"
    NODE = "Node"
    # pseudo-kinds: never stored, only used in ConfigKeys of push requests
    ENDPOINTS = "Endpoints"
    MESH_CONFIG = "MeshConfig"


@dataclass(frozen=True, slots=True)
class GroupVersionKind:
    group: str
    version: str
    kind: Kind

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass(frozen=True, slots=True, order=True)
class ConfigKey:
    """Names one object (or, for pseudo-kinds, one service's endpoints)."""

    kind: Kind
    name: str
    namespace: str = ""

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Meta:
    kind: Kind
    name: str
    namespace: str
    api_version: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    resource_version: str = ""
    generation: int = 0
    # Seconds since the epoch. Istio orders competing objects by creation time, then name.
    # The file store stamps the time an object was first seen when the document has none.
    creation_timestamp: float = 0.0
    # Seconds since the epoch when deletion was requested (a terminating Pod); 0 = not deleting.
    deletion_timestamp: float = 0.0

    @property
    def key(self) -> ConfigKey:
        return ConfigKey(self.kind, self.name, self.namespace)


S = TypeVar("S", covariant=True)


@dataclass(frozen=True, slots=True)
class Config(Generic[S]):
    """One parsed, validated object. `raw` is the document as written (for debug output)."""

    meta: Meta
    spec: S
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> ConfigKey:
        return self.meta.key

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def namespace(self) -> str:
        return self.meta.namespace
