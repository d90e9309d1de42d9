"""ServiceEntry (networking/v1alpha3/service_entry.proto).

Renames: `ServiceEntry.Location` → `Location`, `ServiceEntry.Resolution` → `Resolution`.
Endpoints are `WorkloadEntry` messages (`pkg.config.specs.workload_entry`), the selector is the
networking `WorkloadSelector` (`pkg.config.specs.sidecar`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pkg.config.fields import PORT_RANGE, C, Rule, repeated, string, uint32
from pkg.config.specs.sidecar import WorkloadSelector
from pkg.config.specs.workload_entry import WorkloadEntry


class Location(StrEnum):
    MESH_EXTERNAL = "MESH_EXTERNAL"
    MESH_INTERNAL = "MESH_INTERNAL"


class Resolution(StrEnum):
    NONE = "NONE"
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"
    DYNAMIC_DNS = "DYNAMIC_DNS"


@dataclass(frozen=True, slots=True)
class ServicePort:
    number: int = uint32(required=True, rules=(PORT_RANGE,))
    protocol: str = string(max_len=256)
    name: str = string(required=True, max_len=256)
    target_port: int = uint32(rules=(PORT_RANGE,))


def _unique_port_numbers(ports: Sequence[Any]) -> bool:
    numbers = [p.number for p in ports]
    return len(numbers) == len(set(numbers))


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    hosts: tuple[str, ...] = repeated(
        required=True,
        min_items=1,
        max_items=256,
        items=C(rules=(Rule(lambda h: h != "*", "hostname cannot be wildcard"),)),
    )
    addresses: tuple[str, ...] = repeated(max_items=256, items=C(max_len=64))
    ports: tuple[ServicePort, ...] = repeated(
        max_items=256,
        list_key="name",
        rules=(Rule(_unique_port_numbers, "port number cannot be duplicated"),),
    )
    location: Location = Location.MESH_EXTERNAL
    resolution: Resolution = Resolution.NONE
    endpoints: tuple[WorkloadEntry, ...] = repeated(max_items=4096)
    workload_selector: WorkloadSelector | None = None
    export_to: tuple[str, ...] = ()
    subject_alt_names: tuple[str, ...] = ()


__all__ = ["Location", "Resolution", "ServiceEntry", "ServicePort"]
