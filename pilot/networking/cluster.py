"""CDS: clusters for a proxy, as Istio builds them (pilot/pkg/networking/core/cluster*.go).

Sidecars get one outbound cluster per (service, port) in their scope plus one per
DestinationRule subset, BlackHoleCluster and PassthroughCluster, inbound clusters for the ports
their workload serves (REDIRECT mode) or that their Sidecar `ingress` declares, and
InboundPassthroughCluster. Routers get the outbound clusters of what their namespace sees and
BlackHoleCluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from pilot.model.destination_rule_index import MergedDestinationRule
from pilot.model.proxy import InterceptionMode
from pilot.model.proxy_view import ProxyView
from pilot.model.service import Protocol, Resolution, Service, ServicePort
from pilot.networking import locality, naming
from pilot.networking.cluster_policy import (
    apply_connection_pool,
    apply_outlier_detection,
    apply_proxy_protocol,
    default_thresholds,
    upstream_protocol,
)
from pilot.networking.cluster_tls import apply_tls
from pilot.networking.load_balancer import apply_load_balancer
from pilot.networking.protos import (
    ads_config_source,
    duration,
    metadata,
    socket_address,
    to_any,
)
from pilot.networking.traffic_policy import EffectivePolicy, cluster_policy, mesh_defaults
from pkg.config.labels import is_subset

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def build_clusters(view: ProxyView) -> list[Any]:
    out: list[Any] = []
    for svc in view.scope.services:
        out.extend(build_outbound_clusters(view, svc))
    out.append(blackhole_cluster(view))
    if not view.is_router:
        out.append(passthrough_cluster(view))
        out.extend(build_inbound_clusters(view))
        out.append(inbound_passthrough_cluster(view))
    return _dedupe(out)


def _dedupe(clusters: Iterable[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for c in clusters:
        if c.name not in seen:
            seen.add(c.name)
            out.append(c)
    return out


def _discovery_type(view: ProxyView, svc: Service) -> int:
    res = svc.resolution
    if res is Resolution.CLIENT_SIDE_LB:
        return int(cluster_pb2.Cluster.EDS)
    if res is Resolution.DNS_LB:
        return int(cluster_pb2.Cluster.STRICT_DNS)
    if res is Resolution.DNS_ROUND_ROBIN_LB:
        return int(cluster_pb2.Cluster.LOGICAL_DNS)
    # Passthrough: gateways cannot use original destination clusters.
    if view.is_router:
        return int(cluster_pb2.Cluster.EDS)
    return int(cluster_pb2.Cluster.ORIGINAL_DST)


def _service_metadata(svc: Service) -> dict[str, Any]:
    return {"host": svc.hostname, "name": svc.name, "namespace": svc.namespace}


def build_outbound_clusters(view: ProxyView, svc: Service) -> list[Any]:
    """One cluster per service port, plus one per DestinationRule subset (each with the
    top-level policy overlaid by the subset's, resolved for the port)."""
    out: list[Any] = []
    dr = view.push.destination_rule(view.namespace, svc, view.labels)
    for port in svc.ports:
        if port.protocol is Protocol.UDP:
            continue
        base_name = naming.outbound_cluster(port.port, "", svc.hostname)
        policy = cluster_policy(view.push, dr, "", port.port)
        cluster = _outbound_cluster(view, svc, port, base_name, "", policy, dr)
        if cluster is None:
            continue
        out.append(cluster)
        if dr is None:
            continue
        for subset in dr.spec.subsets:
            name = naming.outbound_cluster(port.port, subset.name, svc.hostname)
            sub_policy = cluster_policy(view.push, dr, subset.name, port.port)
            sub = _outbound_cluster(view, svc, port, name, subset.name, sub_policy, dr)
            if sub is not None:
                out.append(sub)
    return out


def _outbound_cluster(
    view: ProxyView,
    svc: Service,
    port: ServicePort,
    name: str,
    subset: str,
    policy: EffectivePolicy,
    dr: MergedDestinationRule | None,
) -> Any | None:
    mesh = view.push.mesh
    c = cluster_pb2.Cluster(name=name, alt_stat_name=naming.stat_prefix(name))
    c.type = _discovery_type(view, svc)
    c.connect_timeout.CopyFrom(duration(mesh.connect_timeout))
    c.common_lb_config.SetInParent()
    if c.type == cluster_pb2.Cluster.EDS:
        c.eds_cluster_config.service_name = name
        c.eds_cluster_config.eds_config.CopyFrom(ads_config_source())
    elif c.type in (cluster_pb2.Cluster.STRICT_DNS, cluster_pb2.Cluster.LOGICAL_DNS):
        found = dr.subset(subset) if dr is not None and subset else None
        labels = found.labels if found is not None else None
        assignment = _dns_load_assignment(view, svc, port, name, labels)
        if assignment is None:
            return None
        c.load_assignment.CopyFrom(assignment)
        c.dns_lookup_family = cluster_pb2.Cluster.V4_ONLY
        c.dns_refresh_rate.CopyFrom(duration(60.0))
        c.respect_dns_ttl = True
    istio_meta: dict[str, Any] = {"services": [_service_metadata(svc)]}
    if dr is not None:
        key = dr.key
        istio_meta["config"] = naming.destination_rule_config_path(key.namespace, key.name)
    if subset:
        istio_meta["subset"] = subset
    c.metadata.CopyFrom(metadata({"istio": istio_meta}))
    defaults = mesh_defaults(mesh)
    options = upstream_protocol(port, view.is_router)
    options = apply_connection_pool(c, port, defaults, policy, options)
    options = apply_outlier_detection(c, policy.outlier_detection, options)
    setting = locality.effective_setting(view, policy)
    apply_load_balancer(c, policy.load_balancer, setting, policy.outlier_detection is not None)
    has_selector = dr is not None and dr.selector is not None
    options = apply_tls(c, view, svc, port, subset, policy.tls, has_selector, options)
    apply_proxy_protocol(c, policy.proxy_protocol)
    if options is not None:
        if options.WhichOneof("upstream_protocol_options") is None:
            options.explicit_http_config.http_protocol_options.SetInParent()
        c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(to_any(options))
    return c


def _dns_load_assignment(
    view: ProxyView, svc: Service, port: ServicePort, name: str, subset_labels: Any = None
) -> Any:
    """The inline assignment of a DNS cluster (a subset's: its endpoints only, as Istio)."""
    endpoints = [
        ep
        for ep in view.push.service_endpoints(svc)
        if (ep.service_port_name == port.name or ep.service_port == port.port)
        and (subset_labels is None or is_subset(subset_labels, ep.labels))
    ]
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    locality = cla.endpoints.add()
    if endpoints:
        for ep in endpoints:
            lb = locality.lb_endpoints.add()
            lb.endpoint.address.CopyFrom(socket_address(ep.address, ep.port or port.port))
            lb.load_balancing_weight.value = ep.weight or 1
    else:
        lb = locality.lb_endpoints.add()
        target = port.target_port or port.port
        lb.endpoint.address.CopyFrom(socket_address(svc.hostname, target))
        lb.load_balancing_weight.value = 1
    locality.load_balancing_weight.value = sum(
        e.load_balancing_weight.value for e in locality.lb_endpoints
    )
    return cla


def blackhole_cluster(view: ProxyView) -> Any:
    c = cluster_pb2.Cluster(
        name=naming.BLACKHOLE_CLUSTER,
        alt_stat_name=naming.stat_prefix(naming.BLACKHOLE_CLUSTER),
        type=cluster_pb2.Cluster.STATIC,
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
    )
    c.connect_timeout.CopyFrom(duration(view.push.mesh.connect_timeout))
    return c


def passthrough_cluster(view: ProxyView, name: str = naming.PASSTHROUGH_CLUSTER) -> Any:
    c = cluster_pb2.Cluster(
        name=name,
        alt_stat_name=naming.stat_prefix(name),
        type=cluster_pb2.Cluster.ORIGINAL_DST,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
    )
    c.connect_timeout.CopyFrom(duration(view.push.mesh.connect_timeout))
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.use_downstream_protocol_config.http_protocol_options.SetInParent()
    options.use_downstream_protocol_config.http2_protocol_options.SetInParent()
    c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(to_any(options))
    # Mesh baselines: defaultTrafficPolicy's connectionPool caps ALLOW_ANY egress, and the
    # mesh tcpKeepalive applies (Istio's buildDefaultPassthroughCluster).
    defaults = mesh_defaults(view.push.mesh)
    pool = EffectivePolicy(connection_pool=defaults.connection_pool)
    apply_connection_pool(c, None, defaults, pool, None)
    return c


def inbound_passthrough_cluster(view: ProxyView) -> Any:
    c = passthrough_cluster(view, naming.INBOUND_PASSTHROUGH_CLUSTER)
    c.upstream_bind_config.source_address.CopyFrom(
        address_pb2.SocketAddress(address=naming.INBOUND_PASSTHROUGH_BIND_IPV4, port_value=0)
    )
    return c


def build_inbound_clusters(view: ProxyView) -> list[Any]:
    """Inbound clusters: from the Sidecar `ingress` listeners when there are any; otherwise,
    in REDIRECT mode, one per port the workload serves (none in NONE mode, as Istio: the
    workload would clash with listeners bound to its own ports)."""
    ingress = view.scope.ingress
    if ingress:
        return [_inbound_from_ingress(view, listener) for listener in ingress]
    if view.proxy.interception_mode is InterceptionMode.NONE:
        return []
    out = []
    seen: set[int] = set()
    for target in view.targets:
        if target.target_port in seen:
            continue
        seen.add(target.target_port)
        out.append(_inbound_cluster(view, target.target_port, "", 0, target.protocol))
    return out


def parse_default_endpoint(view: ProxyView, value: str) -> tuple[str, int]:
    """Resolve a Sidecar ingress defaultEndpoint: `127.0.0.1:PORT`, `0.0.0.0:PORT` (the
    workload's own IP), `[::1]:PORT`, or `unix:///path`. ("", 0) means original destination."""
    if not value:
        return "", 0
    if value.startswith("unix://"):
        return value[len("unix://") :], 0
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    try:
        number = int(port)
    except ValueError:
        return "", 0
    if host == "0.0.0.0" or host == "::":
        host = view.proxy.ip
    return host, number


def _inbound_from_ingress(view: ProxyView, listener: Any) -> Any:
    address, port = parse_default_endpoint(view, listener.default_endpoint)
    protocol = Protocol.parse(listener.port.protocol)
    return _inbound_cluster(view, int(listener.port.number), address, port, protocol)


def _inbound_cluster(
    view: ProxyView, cluster_port: int, address: str, port: int, protocol: Protocol
) -> Any:
    name = naming.inbound_cluster(cluster_port)
    c = cluster_pb2.Cluster(name=name, alt_stat_name=naming.stat_prefix(name))
    c.connect_timeout.CopyFrom(duration(view.push.mesh.connect_timeout))
    c.common_lb_config.SetInParent()
    if address:
        c.type = cluster_pb2.Cluster.STATIC
        c.lb_policy = cluster_pb2.Cluster.LEAST_REQUEST
        cla = c.load_assignment
        cla.cluster_name = name
        lb = cla.endpoints.add().lb_endpoints.add()
        lb.endpoint.address.CopyFrom(socket_address(address, port))
    else:
        c.type = cluster_pb2.Cluster.ORIGINAL_DST
        c.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
        c.cleanup_interval.seconds = 60 * 60 * 24 * 365 * 100
    if address not in ("127.0.0.1", "::1") and not address.startswith(("/", "@")):
        c.upstream_bind_config.source_address.CopyFrom(
            address_pb2.SocketAddress(address=naming.INBOUND_PASSTHROUGH_BIND_IPV4, port_value=0)
        )
    c.circuit_breakers.thresholds.append(default_thresholds())
    if protocol.is_http2:
        options = http_protocol_options_pb2.HttpProtocolOptions()
        options.explicit_http_config.http2_protocol_options.SetInParent()
        c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(to_any(options))
    return c
