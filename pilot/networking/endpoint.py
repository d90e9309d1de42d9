"""EDS: ClusterLoadAssignments for `outbound|port|subset|host` clusters.

Endpoints are those of the service the proxy sees for `host`, serving `port`, and — for a
subset — carrying the subset's labels (Istio filters subsets in the control plane, not with
Envoy's lb_subset_config). Endpoints are grouped by locality; each gets weight 1 unless it has
its own, and the locality weight is their sum (gRPC clients drop localities without one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from pilot.model.endpoint import HealthStatus, IstioEndpoint, TlsMode
from pilot.model.proxy_view import ProxyView
from pilot.model.service import Service
from pilot.networking import naming
from pilot.networking.protos import socket_address, to_struct
from pkg.config.labels import is_subset

_HEALTH = {
    HealthStatus.HEALTHY: health_check_pb2.HEALTHY,
    HealthStatus.UNHEALTHY: health_check_pb2.UNHEALTHY,
    HealthStatus.DRAINING: health_check_pb2.DRAINING,
}


def build_load_assignment(view: ProxyView, cluster_name: str) -> Any:
    """The assignment for one cluster; empty (but present) when nothing is known, so a
    warming cluster completes instead of waiting."""
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name)
    key = naming.parse_subset_key(cluster_name)
    if key is None or key.direction != naming.Direction.OUTBOUND:
        return cla
    svc = view.scope.service(key.host)
    if svc is None:
        return cla
    port = svc.port_by_number(key.port)
    if port is None:
        return cla
    subset_labels: Mapping[str, str] | None = None
    if key.subset:
        dr = view.push.destination_rule(view.namespace, svc, view.labels)
        subset = dr.subset(key.subset) if dr is not None else None
        if subset is None:
            return cla
        subset_labels = subset.labels
    endpoints = [
        ep
        for ep in view.push.service_endpoints(svc)
        if _serves(ep, port.name, port.port)
        and (subset_labels is None or is_subset(subset_labels, ep.labels))
    ]
    _fill(cla, svc, endpoints, port.port)
    return cla


def _serves(ep: IstioEndpoint, port_name: str, port_number: int) -> bool:
    if ep.service_port_name:
        return ep.service_port_name == port_name
    return ep.service_port == port_number


def _fill(cla: Any, svc: Service, endpoints: list[IstioEndpoint], service_port: int) -> None:
    by_locality: dict[str, list[IstioEndpoint]] = {}
    for ep in endpoints:
        by_locality.setdefault(ep.locality, []).append(ep)
    for locality in sorted(by_locality):
        group = cla.endpoints.add()
        region, _, rest = locality.partition("/")
        zone, _, sub_zone = rest.partition("/")
        if region or zone or sub_zone:
            group.locality.region = region
            group.locality.zone = zone
            group.locality.sub_zone = sub_zone
        total = 0
        members = sorted(by_locality[locality], key=lambda e: (e.address, e.port))
        for ep in members:
            lb = group.lb_endpoints.add()
            lb.endpoint.address.CopyFrom(socket_address(ep.address, ep.port or service_port))
            lb.health_status = _HEALTH[ep.health]
            weight = ep.weight or 1
            lb.load_balancing_weight.value = weight
            total += weight
            lb.metadata.CopyFrom(_endpoint_metadata(svc, ep))
        group.load_balancing_weight.value = total


def _endpoint_metadata(svc: Service, ep: IstioEndpoint) -> Any:
    meta = base_pb2.Metadata()
    if ep.tls_mode is TlsMode.ISTIO:
        meta.filter_metadata["envoy.transport_socket_match"].CopyFrom(
            to_struct({"tlsMode": "istio"})
        )
    canonical = ep.labels.get("service.istio.io/canonical-name") or ep.labels.get("app") or svc.name
    revision = ep.labels.get("service.istio.io/canonical-revision") or ep.labels.get(
        "version", "latest"
    )
    workload = ";".join(
        (ep.workload_name, ep.namespace or svc.namespace, canonical, revision, "Kubernetes")
    )
    meta.filter_metadata["istio"].CopyFrom(to_struct({"workload": workload}))
    return meta
