"""`proxy-config eds`: istioctl's table of the load assignments Envoy was sent
(`configdump/endpoint.go`, reading `/config_dump?include_eds`).

Columns `NAME  STATUS  LOCALITY  CLUSTER`, padding 5: the endpoint's addresses (`IP:PORT`, a
pipe path, `envoy://LISTENER/ID`; additional addresses joined by `,`), the health status it
was sent with, its locality `region/zone/subzone`, and the assignment's cluster name.
Assignments are sorted as clusters are (FQDN, subset, port, direction); those with no
selected endpoint are left out. Filters as `endpoint`'s (`--address` matches any
`IP:PORT` of the endpoint).
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from istioctl.proxyconfig.configdump import ConfigDump, NothingToShow
from istioctl.proxyconfig.endpoints import EndpointFilter
from istioctl.proxyconfig.names import sort_key
from istioctl.proxyconfig.tabwriter import Table

HEADER = ("NAME", "STATUS", "LOCALITY", "CLUSTER")
PADDING = 5


class NoEndpointsSection(NothingToShow):
    def __str__(self) -> str:
        return (
            "the config dump has no endpoints section (Envoy adds it for /config_dump?include_eds)"
        )


def endpoint_addresses(lb: Any) -> list[str]:
    addrs = [lb.endpoint.address, *(a.address for a in lb.endpoint.additional_addresses)]
    out = []
    for addr in addrs:
        if addr.HasField("socket_address"):
            out.append(f"{addr.socket_address.address}:{addr.socket_address.port_value}")
        elif addr.HasField("pipe"):
            out.append(str(addr.pipe.path))
        elif (
            addr.HasField("envoy_internal_address")
            and addr.envoy_internal_address.WhichOneof("address_name_specifier")
            == "server_listener_name"
        ):
            internal = addr.envoy_internal_address
            out.append(f"envoy://{internal.server_listener_name}/{internal.endpoint_id}")
        else:
            out.append("unknown")
    return out


def _matches(flt: EndpointFilter, lb: Any, cluster: str) -> bool:
    status = health_check_pb2.HealthStatus.Name(lb.health_status)
    port = int(lb.endpoint.address.socket_address.port_value)
    if flt.address and not any(
        a.casefold() == flt.address.casefold() for a in endpoint_addresses(lb)
    ):
        return False
    return EndpointFilter(port=flt.port, cluster=flt.cluster, status=flt.status).matches(
        "", port, cluster, status
    )


def selected(dump: ConfigDump, flt: EndpointFilter) -> list[Any]:
    """Filtered copies of the load assignments (only selected endpoints kept), sorted."""
    assignments = dump.load_assignments()
    if assignments is None:
        raise NoEndpointsSection()
    out = []
    for assignment in assignments:
        kept = endpoint_pb2.ClusterLoadAssignment()
        kept.CopyFrom(assignment)
        count = 0
        for group in kept.endpoints:
            lbs = [lb for lb in group.lb_endpoints if _matches(flt, lb, kept.cluster_name)]
            del group.lb_endpoints[:]
            group.lb_endpoints.extend(lbs)
            count += len(lbs)
        if count:
            out.append(kept)
    out.sort(key=lambda a: sort_key(a.cluster_name))
    return out


def locality(value: Any) -> str:
    """Istio's LocalityToString: `region[/zone[/subzone]]`."""
    text = str(value.region)
    if not value.zone:
        return text
    text += f"/{value.zone}"
    return text + f"/{value.sub_zone}" if value.sub_zone else text


def table(dump: ConfigDump, flt: EndpointFilter, *, with_name: bool = False) -> Table:
    rows = []
    for assignment in selected(dump, flt):
        for group in assignment.endpoints:
            for lb in group.lb_endpoints:
                addr = ",".join(endpoint_addresses(lb))
                rows.append(
                    (
                        f"endpoint/{addr}" if with_name else addr,
                        health_check_pb2.HealthStatus.Name(lb.health_status),
                        locality(group.locality),
                        assignment.cluster_name,
                    )
                )
    return Table(HEADER, tuple(rows), PADDING)
