"""WorkloadEntry and WorkloadGroup (networking/v1alpha3/workload_entry.proto,
workload_group.proto).

Renames: `WorkloadGroup.ObjectMeta` → `ObjectMeta` (the template metadata of a group, not the
Kubernetes ObjectMeta). The CRD rules that relate several fields of a WorkloadEntry (an address
or a network is required; a unix socket address takes no ports) are in
`pkg.config.validation.workload_entry` because they differ between a WorkloadEntry, a
ServiceEntry endpoint and a WorkloadGroup template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pkg.config.fields import (
    PORT_RANGE,
    C,
    Rule,
    int32,
    mapping,
    repeated,
    schema,
    string,
    uint32,
)

_PORT_NAME = re.compile(r"^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$")


def _uds_absolute(address: str) -> bool:
    if not address.startswith("unix://"):
        return True
    return address[7:8] in ("/", "@")


def _valid_port_names(ports: Mapping[str, Any]) -> bool:
    return all(len(k) < 63 and _PORT_NAME.match(k) is not None for k in ports)


UDS_ABSOLUTE = Rule(_uds_absolute, "UDS must be an absolute path or abstract socket")
UDS_NOT_DIR = Rule(
    lambda a: not (a.startswith("unix://") and a.endswith("/")), "UDS may not be a dir"
)
PORT_NAMES = Rule(_valid_port_names, "port name must be valid")


@dataclass(frozen=True, slots=True)
class WorkloadEntry:
    address: str = string(max_len=256, rules=(UDS_ABSOLUTE, UDS_NOT_DIR))
    ports: Mapping[str, int] = mapping(
        max_props=128, rules=(PORT_NAMES,), items=C(fmt="uint32", rules=(PORT_RANGE,))
    )
    labels: Mapping[str, str] = mapping(max_props=256)
    network: str = string(max_len=2048)
    locality: str = string(max_len=2048)
    weight: int = uint32()
    service_account: str = string(max_len=253)


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """WorkloadGroup.ObjectMeta: labels and annotations stamped on generated entries."""

    labels: Mapping[str, str] = mapping(max_props=256)
    annotations: Mapping[str, str] = mapping(max_props=256)


@dataclass(frozen=True, slots=True)
class HTTPHeader:
    name: str = string(pattern=r"^[-_A-Za-z0-9]+$")
    value: str = ""


@dataclass(frozen=True, slots=True)
class HTTPHealthCheckConfig:
    path: str = ""
    port: int = uint32(required=True, rules=(PORT_RANGE,))
    host: str = ""
    scheme: str = string(
        rules=(Rule(lambda s: s in ("", "HTTP", "HTTPS"), "scheme must be one of [HTTP, HTTPS]"),)
    )
    http_headers: tuple[HTTPHeader, ...] = ()


@dataclass(frozen=True, slots=True)
class TCPHealthCheckConfig:
    host: str = ""
    port: int = uint32(required=True, rules=(PORT_RANGE,))


@dataclass(frozen=True, slots=True)
class ExecHealthCheckConfig:
    command: tuple[str, ...] = repeated(required=True, items=C(min_len=1))


@dataclass(frozen=True, slots=True)
class GrpcHealthCheckConfig:
    port: int = uint32(rules=(PORT_RANGE,))
    service: str = ""


@dataclass(frozen=True, slots=True)
class ReadinessProbe:
    ONEOFS: ClassVar[tuple[tuple[str, ...], ...]] = (("http_get", "tcp_socket", "exec", "grpc"),)

    initial_delay_seconds: int = int32(minimum=0)
    timeout_seconds: int = int32(minimum=0)
    period_seconds: int = int32(minimum=0)
    success_threshold: int = int32(minimum=0)
    failure_threshold: int = int32(minimum=0)
    http_get: HTTPHealthCheckConfig | None = None
    tcp_socket: TCPHealthCheckConfig | None = None
    exec: ExecHealthCheckConfig | None = None
    grpc: GrpcHealthCheckConfig | None = None


@dataclass(frozen=True, slots=True)
class WorkloadGroup:
    metadata: ObjectMeta | None = None
    template: WorkloadEntry | None = field(default=None, metadata=schema(required=True))
    probe: ReadinessProbe | None = None


__all__ = [
    "ExecHealthCheckConfig",
    "GrpcHealthCheckConfig",
    "HTTPHeader",
    "HTTPHealthCheckConfig",
    "ObjectMeta",
    "ReadinessProbe",
    "TCPHealthCheckConfig",
    "WorkloadEntry",
    "WorkloadGroup",
]
