"""EDS: ClusterLoadAssignments for `outbound|port|subset|host` clusters.

Endpoints are those of the service the proxy sees for `host`, serving `port`, and — for a
subset — carrying the subset's labels (Istio filters subsets in the control plane, not with
Envoy's lb_subset_config). Endpoints are grouped by locality; each gets weight 1 unless it has
its own, and the locality weight is their sum (gRPC clients drop localities without one).
Locality load balancing then sets this proxy's priorities and weights (locality.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from pilot.model.endpoint import HealthStatus, IstioEndpoint, TlsMode
from pilot.model.proxy_view import ProxyView
from pilot.model.service import Service
from pilot.networking import locality, naming
from pilot.networking.protos import socket_address, to_struct
from pilot.networking.traffic_policy import cluster_policy
from pkg.config.labels import is_subset

_HEALTH = {
    HealthStatus.HEALTHY: health_check_pb2.HEALTHY,
    HealthStatus.UNHEALTHY: health_check_pb2.UNHEALTHY,
    HealthStatus.DRAINING: health_check_pb2.DRAINING,
}


def _sendable(ep: IstioEndpoint) -> bool:
    """Istio leaves out terminating endpoints, and unhealthy ones unless the service sends
    unhealthy endpoints (PILOT_SEND_UNHEALTHY_ENDPOINTS)."""
    if ep.health is HealthStatus.TERMINATING:
        return False
    return ep.health is not HealthStatus.UNHEALTHY or ep.send_unhealthy


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
    dr = view.push.destination_rule(view.namespace, svc, view.labels)
    if key.subset:
        subset = dr.subset(key.subset) if dr is not None else None
        if subset is None:
            return cla
        subset_labels = subset.labels
    endpoints = [
        ep
        for ep in view.push.service_endpoints(svc)
        if _serves(ep, port.name, port.port)
        and _sendable(ep)
        and (subset_labels is None or is_subset(subset_labels, ep.labels))
    ]
    if naming.is_dns_srv_subset_key(cluster_name):
        # SNI-DNAT clusters of AUTO_PASSTHROUGH gateways reach mTLS-capable endpoints only.
        endpoints = [ep for ep in endpoints if ep.tls_mode is TlsMode.ISTIO]
    groups = fill_assignment(cla, svc, endpoints, port.port)
    policy = cluster_policy(view.push, dr, key.subset, port.port)
    locality.apply(view, policy, cla, groups)
    return cla


def _serves(ep: IstioEndpoint, port_name: str, port_number: int) -> bool:
    if ep.service_port_name:
        return ep.service_port_name == port_name
    return ep.service_port == port_number


def fill_assignment(
    cla: Any, svc: Service, endpoints: list[IstioEndpoint], service_port: int
) -> list[locality.Group]:
    """Group `endpoints` by locality into `cla`; returns the groups with their endpoints."""
    groups: list[locality.Group] = []
    by_locality: dict[str, list[IstioEndpoint]] = {}
    for ep in endpoints:
        by_locality.setdefault(ep.locality, []).append(ep)
    for name in sorted(by_locality):
        group = cla.endpoints.add()
        region, _, rest = name.partition("/")
        zone, _, sub_zone = rest.partition("/")
        if region or zone or sub_zone:
            group.locality.region = region
            group.locality.zone = zone
            group.locality.sub_zone = sub_zone
        total = 0
        members = sorted(by_locality[name], key=lambda e: (e.address, e.port))
        for ep in members:
            lb = group.lb_endpoints.add()
            lb.endpoint.address.CopyFrom(socket_address(ep.address, ep.port or service_port))
            lb.health_status = _HEALTH[ep.health]
            weight = ep.weight or 1
            lb.load_balancing_weight.value = weight
            total += weight
            lb.metadata.CopyFrom(_endpoint_metadata(svc, ep))
        group.load_balancing_weight.value = total
        groups.append(locality.Group(group, members))
    return groups


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


def assignment_cache_key(view: ProxyView, cluster_name: str) -> object:
    """What the assignment of `cluster_name` depends on besides the cluster, the service and
    the subset's labels: the DestinationRule objects in force and, when locality load
    balancing applies, the proxy's locality. Cheap on the shared path: the rule-dependent
    part is computed once per push and proxy namespace (per proxy when rules select
    workloads)."""
    push = view.push
    per_proxy = id(view) if push.destination_rules.has_selectors else None
    key = ("eds-deps", cluster_name, view.namespace, per_proxy)
    sources, labels = push.memo(key, lambda: _rule_dependencies(view, cluster_name))
    if labels is None:
        return sources
    return (sources, locality.proxy_key(view, labels))


def _rule_dependencies(view: ProxyView, cluster_name: str) -> tuple[object, Any]:
    """(the rule's sources, the failoverPriority label names when locality applies to the
    cluster, else None)."""
    key = naming.parse_subset_key(cluster_name)
    svc = view.scope.service(key.host) if key is not None else None
    if key is None or svc is None:
        return None, None
    dr = view.push.destination_rule(view.namespace, svc, view.labels)
    policy = cluster_policy(view.push, dr, key.subset, key.port)
    return (dr.sources if dr is not None else None), locality.dependency(view, policy)
