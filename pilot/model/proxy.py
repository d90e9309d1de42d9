"""The identity of a connected proxy, parsed once from the first request's node.

`Proxy` is frozen and holds only what the node said plus what the workload lookup found; state
derived from a PushContext (service targets, Sidecar scope, gateways) lives in `ProxyView`
(`pilot.model.proxy_view`), recomputed per push.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pkg.credentials import Identity
from pkg.errors import ConfigError


class NodeType(StrEnum):
    SIDECAR = "sidecar"
    ROUTER = "router"


class InterceptionMode(StrEnum):
    REDIRECT = "REDIRECT"
    TPROXY = "TPROXY"
    NONE = "NONE"


# Node metadata GENERATOR value of proxyless gRPC clients (pilot-agent's gRPC bootstrap writes
# it); such a proxy gets Istio's gRPC resources (ApiListeners per `host:port`) instead of Envoy's.
GRPC_GENERATOR = "grpc"


class InvalidNodeError(ConfigError):
    """The node id or metadata cannot describe a proxy (gRPC InvalidArgument)."""


@dataclass(frozen=True, slots=True)
class Proxy:
    id: str  # the full node id
    type: NodeType
    ip_addresses: tuple[str, ...]
    name: str  # the middle part of the node id: NAME.NS
    dns_domain: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = ""
    interception_mode: InterceptionMode = InterceptionMode.REDIRECT
    cluster_id: str = "Kubernetes"
    istio_version: str = ""
    workload_name: str = ""
    locality: str = ""
    # Node metadata GENERATOR: which generator set serves this proxy ("" = Envoy's,
    # "grpc" = proxyless gRPC), as Istio's Proxy.Metadata.Generator.
    generator: str = ""
    # The identity proven by the stream's credentials (secure port); None on the plaintext port.
    # Never taken from node metadata.
    identity: Identity | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ip(self) -> str:
        return self.ip_addresses[0]

    @property
    def is_proxyless_grpc(self) -> bool:
        """A gRPC client with its own xDS client (Istio's IsProxylessGrpc)."""
        return self.generator == GRPC_GENERATOR

    @property
    def short_name(self) -> str:
        """`name.namespace`, as istioctl shows proxies."""
        return self.name


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def parse_node(node_id: str, metadata: Mapping[str, Any], locality: str = "") -> Proxy:
    """Istio's ParseServiceNodeWithMetadata: `<type>~<ip>~<name>.<ns>~<ns>.svc.<domain>`."""
    if not node_id:
        raise InvalidNodeError("missing node information: empty node id")
    _check_metadata_types(metadata)
    parts = node_id.split("~")
    if len(parts) != 4:
        raise InvalidNodeError(f"missing parts in the service node {node_id!r}")
    try:
        node_type = NodeType(parts[0])
    except ValueError:
        valid = ", ".join(t.value for t in NodeType)
        raise InvalidNodeError(
            f"invalid node type (valid types: {valid}) in the service node {node_id!r}"
        ) from None
    raw_ips = metadata.get("INSTANCE_IPS", "")
    ips: tuple[str, ...] = ()
    if isinstance(raw_ips, str) and raw_ips:
        candidates = tuple(ip.strip() for ip in raw_ips.split(",") if ip.strip())
        if candidates and all(_valid_ip(ip) for ip in candidates):
            ips = candidates
    if not ips and _valid_ip(parts[1]):
        ips = (parts[1],)
    if not ips:
        raise InvalidNodeError("no valid IP address in the service node id or metadata")
    name, dns_domain = parts[2], parts[3]
    if not name:
        raise InvalidNodeError(f"empty proxy name in the service node {node_id!r}")
    namespace = _str(metadata.get("NAMESPACE"))
    if not namespace:
        domain_parts = dns_domain.split(".")
        if len(domain_parts) > 1:
            namespace = domain_parts[0]
        elif "." in name:
            namespace = name.rsplit(".", 1)[1]
    if not namespace:
        raise InvalidNodeError(f"cannot tell the namespace of the service node {node_id!r}")
    labels_raw = metadata.get("LABELS") or {}
    labels = (
        {str(k): str(v) for k, v in labels_raw.items()} if isinstance(labels_raw, Mapping) else {}
    )
    mode_raw = _str(metadata.get("INTERCEPTION_MODE")) or InterceptionMode.REDIRECT.value
    try:
        mode = InterceptionMode(mode_raw.upper())
    except ValueError:
        raise InvalidNodeError(f"invalid INTERCEPTION_MODE {mode_raw!r}") from None
    return Proxy(
        id=node_id,
        type=node_type,
        ip_addresses=ips,
        name=name,
        dns_domain=dns_domain,
        namespace=namespace,
        labels=labels,
        service_account=_str(metadata.get("SERVICE_ACCOUNT")),
        interception_mode=mode,
        cluster_id=_str(metadata.get("CLUSTER_ID")) or "Kubernetes",
        istio_version=_str(metadata.get("ISTIO_VERSION")),
        workload_name=_str(metadata.get("WORKLOAD_NAME")),
        locality=locality,
        generator=_str(metadata.get("GENERATOR")),
        metadata=dict(metadata),
    )


# Metadata fields Istio decodes as strings (NodeMetadata); any other JSON type fails its decode.
_STRING_FIELDS = (
    "NAMESPACE",
    "SERVICE_ACCOUNT",
    "INTERCEPTION_MODE",
    "CLUSTER_ID",
    "ISTIO_VERSION",
    "WORKLOAD_NAME",
    "GENERATOR",
    "INSTANCE_IPS",
)


def _check_metadata_types(metadata: Mapping[str, Any]) -> None:
    """Istio refuses node metadata that does not decode into its NodeMetadata (InvalidArgument):
    a known field of the wrong JSON type is an error naming the field, never silently dropped."""
    for name in _STRING_FIELDS:
        value = metadata.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidNodeError(
                f"invalid node metadata {name}: expected a string, got {_json_type(value)}"
            )
    labels = metadata.get("LABELS")
    if labels is None:
        return
    if not isinstance(labels, Mapping):
        raise InvalidNodeError(
            f"invalid node metadata LABELS: expected a map of strings, got {_json_type(labels)}"
        )
    for key, value in labels.items():
        if not isinstance(value, str):
            raise InvalidNodeError(
                f"invalid node metadata LABELS[{key!r}]: expected a string, got {_json_type(value)}"
            )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""
