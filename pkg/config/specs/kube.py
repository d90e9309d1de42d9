"""The Kubernetes documents pyistio reads: Service, EndpointSlice, Secret, Namespace, Pod, Node,
and the ObjectMeta every document carries.

Shapes follow the Kubernetes Go types (core/v1, discovery/v1) with their JSON names. The spec
of a Service is `ServiceSpec` and of a Namespace `NamespaceSpec`; EndpointSlice and Secret keep
their content at the top level of the document, so their "spec" classes (`EndpointSlice`,
`Secret`) are decoded from those top-level fields. An EndpointSlice belongs to the Service named
by its `kubernetes.io/service-name` label (`SERVICE_NAME_LABEL`). As Kubernetes reads them, a
`null` value means "not set" (`creationTimestamp: null` in generated manifests).

Pods and Nodes are observed state, not configuration: their classes (`IGNORE_UNKNOWN`) decode
only the fields pyistio uses and skip every other field, so a Pod or Node as a real API server
returns it (managedFields, volumes, status.containerStatuses, ...) is never rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from pkg.config.fields import C, int32, int64, mapping, repeated, schema, string

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


# ---- metadata -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OwnerReference:
    NULL_IS_ABSENT: ClassVar[bool] = True

    api_version: str = string(required=True)
    kind: str = string(required=True)
    name: str = string(required=True)
    uid: str = string(required=True)
    controller: bool | None = None
    block_owner_deletion: bool | None = None


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """metav1.ObjectMeta. Timestamps stay RFC 3339 text here; `Meta` carries epoch seconds."""

    NULL_IS_ABSENT: ClassVar[bool] = True

    name: str = ""
    generate_name: str = ""
    namespace: str = ""
    self_link: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = int64()
    creation_timestamp: str = ""
    deletion_timestamp: str = ""
    deletion_grace_period_seconds: int | None = None
    labels: Mapping[str, str] = mapping()
    annotations: Mapping[str, str] = mapping()
    owner_references: tuple[OwnerReference, ...] = ()
    finalizers: tuple[str, ...] = ()
    managed_fields: tuple[Any, ...] = ()


# ---- Service (core/v1) ----------------------------------------------------------------------


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"
    EXTERNAL_NAME = "ExternalName"


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class SessionAffinity(StrEnum):
    NONE = "None"
    CLIENT_IP = "ClientIP"


class TrafficPolicyType(StrEnum):
    """ServiceExternalTrafficPolicy / ServiceInternalTrafficPolicy."""

    CLUSTER = "Cluster"
    LOCAL = "Local"


class IPFamily(StrEnum):
    IPV4 = "IPv4"
    IPV6 = "IPv6"


class IPFamilyPolicy(StrEnum):
    SINGLE_STACK = "SingleStack"
    PREFER_DUAL_STACK = "PreferDualStack"
    REQUIRE_DUAL_STACK = "RequireDualStack"


@dataclass(frozen=True, slots=True)
class ServicePort:
    NULL_IS_ABSENT: ClassVar[bool] = True

    name: str = ""
    protocol: Protocol = Protocol.TCP
    app_protocol: str = ""
    port: int = int32(required=True)
    # An int-or-string: a port number, or the name of a container port. 0/"" = same as `port`.
    target_port: int | str = 0
    node_port: int = int32()


@dataclass(frozen=True, slots=True)
class ClientIPConfig:
    NULL_IS_ABSENT: ClassVar[bool] = True

    timeout_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class SessionAffinityConfig:
    NULL_IS_ABSENT: ClassVar[bool] = True

    client_ip: ClientIPConfig | None = field(default=None, metadata=schema(json="clientIP"))


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    NULL_IS_ABSENT: ClassVar[bool] = True

    ports: tuple[ServicePort, ...] = ()
    selector: Mapping[str, str] = mapping()
    cluster_ip: str = string(json="clusterIP")
    cluster_ips: tuple[str, ...] = repeated(json="clusterIPs")
    type: ServiceType = ServiceType.CLUSTER_IP
    external_ips: tuple[str, ...] = repeated(json="externalIPs")
    session_affinity: SessionAffinity = SessionAffinity.NONE
    load_balancer_ip: str = string(json="loadBalancerIP")
    load_balancer_source_ranges: tuple[str, ...] = ()
    external_name: str = ""
    external_traffic_policy: TrafficPolicyType | None = None
    health_check_node_port: int = int32()
    publish_not_ready_addresses: bool = False
    session_affinity_config: SessionAffinityConfig | None = None
    ip_families: tuple[IPFamily, ...] = ()
    ip_family_policy: IPFamilyPolicy | None = None
    allocate_load_balancer_node_ports: bool | None = None
    load_balancer_class: str | None = None
    internal_traffic_policy: TrafficPolicyType | None = None
    traffic_distribution: str | None = None


# ---- EndpointSlice (discovery/v1) -----------------------------------------------------------


class AddressType(StrEnum):
    IPV4 = "IPv4"
    IPV6 = "IPv6"
    FQDN = "FQDN"


@dataclass(frozen=True, slots=True)
class EndpointConditions:
    """`None` means unknown; consumers treat an unknown `ready` as ready, as Kubernetes does."""

    NULL_IS_ABSENT: ClassVar[bool] = True

    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


@dataclass(frozen=True, slots=True)
class ObjectReference:
    NULL_IS_ABSENT: ClassVar[bool] = True

    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    api_version: str = ""
    resource_version: str = ""
    field_path: str = ""


@dataclass(frozen=True, slots=True)
class ForZone:
    NULL_IS_ABSENT: ClassVar[bool] = True

    name: str = ""


@dataclass(frozen=True, slots=True)
class ForNode:
    NULL_IS_ABSENT: ClassVar[bool] = True

    name: str = ""


@dataclass(frozen=True, slots=True)
class EndpointHints:
    NULL_IS_ABSENT: ClassVar[bool] = True

    for_zones: tuple[ForZone, ...] = ()
    for_nodes: tuple[ForNode, ...] = ()


@dataclass(frozen=True, slots=True)
class Endpoint:
    NULL_IS_ABSENT: ClassVar[bool] = True

    addresses: tuple[str, ...] = repeated(required=True, min_items=1, max_items=100)
    conditions: EndpointConditions | None = None
    hostname: str = ""
    target_ref: ObjectReference | None = None
    deprecated_topology: Mapping[str, str] = mapping()
    node_name: str = ""
    zone: str = ""
    hints: EndpointHints | None = None


@dataclass(frozen=True, slots=True)
class EndpointPort:
    NULL_IS_ABSENT: ClassVar[bool] = True

    name: str = ""
    protocol: Protocol = Protocol.TCP
    port: int | None = None  # None: all ports
    app_protocol: str = ""


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    """The top-level fields of an EndpointSlice document (it has no `spec`)."""

    NULL_IS_ABSENT: ClassVar[bool] = True

    address_type: AddressType = field(default=AddressType.IPV4, metadata=schema(required=True))
    endpoints: tuple[Endpoint, ...] = repeated(max_items=1000)
    ports: tuple[EndpointPort, ...] = repeated(max_items=100)


# ---- Pod and Node (core/v1): observed state, only the fields pyistio reads ------------------


@dataclass(frozen=True, slots=True)
class ContainerPort:
    NULL_IS_ABSENT: ClassVar[bool] = True
    IGNORE_UNKNOWN: ClassVar[bool] = True

    name: str = ""
    container_port: int = int32()
    protocol: Protocol = Protocol.TCP


@dataclass(frozen=True, slots=True)
class Container:
    NULL_IS_ABSENT: ClassVar[bool] = True
    IGNORE_UNKNOWN: ClassVar[bool] = True

    name: str = ""
    ports: tuple[ContainerPort, ...] = ()


@dataclass(frozen=True, slots=True)
class PodSpec:
    NULL_IS_ABSENT: ClassVar[bool] = True
    IGNORE_UNKNOWN: ClassVar[bool] = True

    service_account_name: str = ""
    node_name: str = ""
    host_network: bool = False
    hostname: str = ""
    subdomain: str = ""
    containers: tuple[Container, ...] = ()


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class PodCondition:
    NULL_IS_ABSENT: ClassVar[bool] = True
    IGNORE_UNKNOWN: ClassVar[bool] = True

    type: str = ""
    status: str = ""  # "True", "False" or "Unknown"


@dataclass(frozen=True, slots=True)
class PodIP:
    NULL_IS_ABSENT: ClassVar[bool] = True
    IGNORE_UNKNOWN: ClassVar[bool] = True

    ip: str = ""


@dataclass(frozen=True, slots=True)
class PodStatus:
    NULL_IS_ABSENT: ClassVar[bool] = True
    IGNORE_UNKNOWN: ClassVar[bool] = True

    # Free text rather than PodPhase: an unknown future phase must not reject the pod.
    phase: str = ""
    pod_ip: str = string(json="podIP")
    pod_ips: tuple[PodIP, ...] = repeated(json="podIPs")
    conditions: tuple[PodCondition, ...] = ()

    @property
    def ready(self) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in self.conditions)

    @property
    def ips(self) -> tuple[str, ...]:
        """Every IP of the pod, podIP first."""
        out = [self.pod_ip] if self.pod_ip else []
        out.extend(p.ip for p in self.pod_ips if p.ip and p.ip not in out)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Pod:
    """The top-level `spec` and `status` of a Pod document (what pyistio reads of them)."""

    NULL_IS_ABSENT: ClassVar[bool] = True
    IGNORE_UNKNOWN: ClassVar[bool] = True

    spec: PodSpec = field(default_factory=PodSpec)
    status: PodStatus = field(default_factory=PodStatus)


@dataclass(frozen=True, slots=True)
class Node:
    """A Node: pyistio reads only its labels (locality); `spec` and `status` are skipped."""

    NULL_IS_ABSENT: ClassVar[bool] = True
    IGNORE_UNKNOWN: ClassVar[bool] = True


# ---- Secret and Namespace (core/v1) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Secret:
    """The top-level fields of a Secret document. `data` values are decoded from base64."""

    NULL_IS_ABSENT: ClassVar[bool] = True

    type: str = "Opaque"
    data: Mapping[str, bytes] = mapping(items=C(fmt="bytes"))
    string_data: Mapping[str, str] = mapping()
    immutable: bool | None = None

    def get(self, key: str) -> bytes | None:
        """The value of `key` as the API server stores it (`stringData` wins over `data`)."""
        text = self.string_data.get(key)
        if text is not None:
            return text.encode()
        return self.data.get(key)


@dataclass(frozen=True, slots=True)
class NamespaceSpec:
    NULL_IS_ABSENT: ClassVar[bool] = True

    finalizers: tuple[str, ...] = ()


__all__ = [
    "SERVICE_NAME_LABEL",
    "AddressType",
    "ClientIPConfig",
    "Container",
    "ContainerPort",
    "Endpoint",
    "EndpointConditions",
    "EndpointHints",
    "EndpointPort",
    "EndpointSlice",
    "ForNode",
    "ForZone",
    "IPFamily",
    "IPFamilyPolicy",
    "NamespaceSpec",
    "Node",
    "ObjectMeta",
    "ObjectReference",
    "OwnerReference",
    "Pod",
    "PodCondition",
    "PodIP",
    "PodPhase",
    "PodSpec",
    "PodStatus",
    "Protocol",
    "Secret",
    "ServicePort",
    "ServiceSpec",
    "ServiceType",
    "SessionAffinity",
    "SessionAffinityConfig",
    "TrafficPolicyType",
]
