"""`proxy-config endpoint`: istioctl's endpoint table from Envoy's live host set
(`clusters/clusters.go`, reading `GET /clusters?format=json`).

Columns `ENDPOINT  STATUS  OUTLIER CHECK  CLUSTER`, padding 5: `ADDRESS:PORT` (a pipe as
`unix://PATH`, an internal address as `envoy://LISTENER/ID`), the EDS health status Envoy
applies, `OK` or `FAILED` (outlier detection), and the cluster. Sorted by address, port, then
cluster. Filters: `--address` (exact, case-insensitive), `--port`, `--cluster` (exact,
case-insensitive), `--status` (a HealthStatus name such as HEALTHY).

Only Envoy has a live host set. For a saved config dump or istiod's view, the host set is the
one the dump's load assignments give (`from_load_assignments`): each endpoint with the health
status it was sent with (UNKNOWN counts as HEALTHY, as Envoy treats it) and outlier check OK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoy.admin.v3 import clusters_pb2
from envoy.config.core.v3 import health_check_pb2

from istioctl.proxyconfig.tabwriter import Table

HEADER = ("ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER")
PADDING = 5
HealthStatus = health_check_pb2.HealthStatus


@dataclass(frozen=True)
class EndpointFilter:
    address: str = ""
    port: int = 0
    cluster: str = ""
    status: str = ""

    def matches(self, address: str, port: int, cluster: str, status: str) -> bool:
        if self.address and address.casefold() != self.address.casefold():
            return False
        if self.port and port != self.port:
            return False
        if self.cluster and cluster.casefold() != self.cluster.casefold():
            return False
        return not self.status or status.casefold() == self.status.casefold()


def host_address(host: Any) -> str:
    addr = host.address
    if addr.HasField("socket_address"):
        return str(addr.socket_address.address)
    if addr.HasField("pipe"):
        return f"unix://{addr.pipe.path}"
    if addr.HasField("envoy_internal_address"):
        internal = addr.envoy_internal_address
        if internal.WhichOneof("address_name_specifier") == "server_listener_name":
            return f"envoy://{internal.server_listener_name}/{internal.endpoint_id}"
    return "unknown"


def host_port(host: Any) -> int:
    addr = host.address
    return int(addr.socket_address.port_value) if addr.HasField("socket_address") else 0


def host_status(host: Any) -> str:
    return str(HealthStatus.Name(host.health_status.eds_health_status))


def _host_matches(flt: EndpointFilter, host: Any, cluster: str) -> bool:
    return flt.matches(host_address(host), host_port(host), cluster, host_status(host))


def selected(statuses: Any, flt: EndpointFilter) -> list[Any]:
    """The ClusterStatuses `-o json|yaml` prints: those with a host the filter selects."""
    return [
        cluster
        for cluster in statuses.cluster_statuses
        if any(_host_matches(flt, h, cluster.name) for h in cluster.host_statuses)
    ]


def table(statuses: Any, flt: EndpointFilter) -> Table:
    entries = []
    for cluster in statuses.cluster_statuses:
        for host in cluster.host_statuses:
            if not _host_matches(flt, host, cluster.name):
                continue
            failed = host.health_status.failed_outlier_check
            entries.append(
                (
                    host_address(host),
                    host_port(host),
                    cluster.name,
                    host_status(host),
                    "FAILED" if failed else "OK",
                )
            )
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    rows = tuple(
        (f"{addr}:{port}" if port else addr, status, outlier, cluster)
        for addr, port, cluster, status, outlier in entries
    )
    return Table(HEADER, rows, PADDING)


def from_load_assignments(assignments: list[Any]) -> Any:
    """The host set `assignments` describe, as Envoy's `/clusters` would list it."""
    out = clusters_pb2.Clusters()
    for assignment in assignments:
        cluster = out.cluster_statuses.add(name=assignment.cluster_name)
        for group in assignment.endpoints:
            for lb in group.lb_endpoints:
                if not lb.HasField("endpoint"):
                    continue
                host = cluster.host_statuses.add()
                host.address.CopyFrom(lb.endpoint.address)
                status = lb.health_status or HealthStatus.HEALTHY
                host.health_status.eds_health_status = status
                host.weight = lb.load_balancing_weight.value or 1
                host.locality.CopyFrom(group.locality)
                if lb.endpoint.hostname:
                    host.hostname = lb.endpoint.hostname
    return out
