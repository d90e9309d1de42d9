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

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import address_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from pilot.model.destination_rule_index import MergedDestinationRule
from pilot.model.peer_authentication import MTLSMode
from pilot.model.proxy import InterceptionMode
from pilot.model.proxy_view import ProxyView
from pilot.model.service import Protocol, Resolution, Service, ServicePort
from pilot.networking import naming
from pilot.networking.protos import (
    ads_config_source,
    duration,
    metadata,
    socket_address,
    to_any,
    uint32,
)
from pilot.networking.tls import (
    ALPN_MESH_H2,
    ALPN_MESH_HTTP11,
    ALPN_MESH_TCP,
    auto_mtls_matches,
    istio_mutual_upstream,
    simple_upstream,
    transport_socket,
)
from pilot.networking.traffic_policy import EffectivePolicy, effective_policy

_MAX_UINT32 = 0xFFFFFFFF
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

_SIMPLE_LB = {
    "ROUND_ROBIN": cluster_pb2.Cluster.ROUND_ROBIN,
    "LEAST_REQUEST": cluster_pb2.Cluster.LEAST_REQUEST,
    "LEAST_CONN": cluster_pb2.Cluster.LEAST_REQUEST,
    "RANDOM": cluster_pb2.Cluster.RANDOM,
}


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
    out: list[Any] = []
    dr = view.push.destination_rule(view.namespace, svc, view.labels)
    for port in svc.ports:
        if port.protocol is Protocol.UDP:
            continue
        base_name = naming.outbound_cluster(port.port, "", svc.hostname)
        policy = effective_policy(dr.spec.traffic_policy if dr else None, None, port.port)
        cluster = _outbound_cluster(view, svc, port, base_name, "", policy, dr)
        if cluster is None:
            continue
        out.append(cluster)
        if dr is None:
            continue
        for subset in dr.spec.subsets:
            name = naming.outbound_cluster(port.port, subset.name, svc.hostname)
            sub_policy = effective_policy(dr.spec.traffic_policy, subset.traffic_policy, port.port)
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
        assignment = _dns_load_assignment(view, svc, port, name)
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
    protocol_options = _apply_connection_pool(c, view, policy)
    protocol_options = _apply_upstream_protocol(view, port, protocol_options, policy)
    _apply_load_balancer(c, policy)
    _apply_tls(c, view, svc, port, subset, policy, protocol_options)
    if protocol_options is not None:
        c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(
            to_any(_finish_protocol_options(protocol_options))
        )
    return c


def _mesh_alpn(port: ServicePort, options: Any | None) -> tuple[str, ...]:
    if options is not None and options.WhichOneof("upstream_protocol_options") == (
        "use_downstream_protocol_config"
    ):
        return ("istio-http/1.1", "istio-h2", "istio")
    if port.protocol.is_http2:
        return ALPN_MESH_H2
    if port.protocol.is_http:
        return ALPN_MESH_HTTP11
    return ALPN_MESH_TCP


def _apply_tls(
    c: Any,
    view: ProxyView,
    svc: Service,
    port: ServicePort,
    subset: str,
    policy: EffectivePolicy,
    options: Any | None,
) -> None:
    """DestinationRule TLS, else Istio's auto mTLS (not towards a namespace whose
    PeerAuthentication disables mTLS). A proxy without an identity (plaintext xDS) has no
    certificate to present, so it gets no mesh mTLS at all."""
    tls = policy.tls
    has_identity = view.proxy.identity is not None
    sni = naming.dns_srv_subset_key(port.port, subset, svc.hostname)
    if tls is not None:
        mode = str(tls.mode)
        if mode == "ISTIO_MUTUAL" and has_identity:
            sans = tuple(tls.subject_alt_names) or svc.service_accounts
            context = istio_mutual_upstream(tls.sni or sni, sans, _mesh_alpn(port, options))
            c.transport_socket.CopyFrom(transport_socket(context))
        elif mode in ("SIMPLE", "MUTUAL"):
            sans = tuple(tls.subject_alt_names) or svc.service_accounts
            alpn = ("h2",) if port.protocol.is_http2 else ()
            host_sni = "" if svc.hostname.startswith("*") else svc.hostname
            context = simple_upstream(
                tls.sni or host_sni,
                sans,
                _credential(tls.credential_name),
                mode == "MUTUAL",
                alpn,
                bool(tls.insecure_skip_verify),
            )
            c.transport_socket.CopyFrom(transport_socket(context))
        return
    mesh = view.push.mesh
    if (
        not has_identity
        or not mesh.enable_auto_mtls
        or svc.mesh_external
        or c.type == cluster_pb2.Cluster.ORIGINAL_DST
        or view.push.peer_authentication.namespace_mode(svc.namespace) is MTLSMode.DISABLE
    ):
        return
    context = istio_mutual_upstream(sni, svc.service_accounts, _mesh_alpn(port, options))
    c.transport_socket_matches.extend(auto_mtls_matches(context))


def _credential(name: str) -> str:
    """credentialName → SDS resource name (`kubernetes://name`), as Istio normalizes it."""
    if not name or "://" in name:
        return name
    return f"kubernetes://{name}"


def _default_thresholds() -> Any:
    return circuit_breaker_pb2.CircuitBreakers.Thresholds(
        max_connections=uint32(_MAX_UINT32),
        max_pending_requests=uint32(_MAX_UINT32),
        max_requests=uint32(_MAX_UINT32),
        max_retries=uint32(_MAX_UINT32),
        track_remaining=True,
    )


def _apply_connection_pool(c: Any, view: ProxyView, policy: EffectivePolicy) -> Any | None:
    """Circuit breakers and connection settings; returns HttpProtocolOptions when needed."""
    threshold = _default_thresholds()
    pool = policy.connection_pool
    options = None
    if pool is not None:
        http = pool.http
        tcp = pool.tcp
        if http is not None:
            if http.http2_max_requests > 0:
                threshold.max_requests.value = http.http2_max_requests
            if http.http1_max_pending_requests > 0:
                threshold.max_pending_requests.value = http.http1_max_pending_requests
            if http.max_retries > 0:
                threshold.max_retries.value = http.max_retries
            common = protocol_pb2.HttpProtocolOptions()
            touched = False
            if http.idle_timeout is not None:
                common.idle_timeout.CopyFrom(duration(http.idle_timeout))
                touched = True
            if http.max_requests_per_connection > 0:
                common.max_requests_per_connection.value = http.max_requests_per_connection
                touched = True
            if touched:
                options = http_protocol_options_pb2.HttpProtocolOptions()
                options.common_http_protocol_options.CopyFrom(common)
        if tcp is not None:
            if tcp.connect_timeout is not None:
                c.connect_timeout.CopyFrom(duration(tcp.connect_timeout))
            if tcp.max_connections > 0:
                threshold.max_connections.value = tcp.max_connections
    c.circuit_breakers.thresholds.append(threshold)
    return options


def _apply_upstream_protocol(
    view: ProxyView, port: ServicePort, options: Any | None, policy: EffectivePolicy
) -> Any | None:
    """HTTP/2 for HTTP2/gRPC ports; for sniffed ports on sidecars, the downstream protocol
    (HTTP/1.1 in, HTTP/1.1 out; h2 in, h2 out), as Istio does. `useClientProtocol` forces that."""
    use_client = bool(
        policy.connection_pool is not None
        and policy.connection_pool.http is not None
        and policy.connection_pool.http.use_client_protocol
    )
    if port.protocol.is_http2 and not use_client:
        options = options or http_protocol_options_pb2.HttpProtocolOptions()
        options.explicit_http_config.http2_protocol_options.SetInParent()
    elif use_client or (port.protocol.is_unsupported and not view.is_router):
        options = options or http_protocol_options_pb2.HttpProtocolOptions()
        options.use_downstream_protocol_config.http_protocol_options.SetInParent()
        options.use_downstream_protocol_config.http2_protocol_options.SetInParent()
    return options


def _finish_protocol_options(options: Any) -> Any:
    if options.WhichOneof("upstream_protocol_options") is None:
        options.explicit_http_config.http_protocol_options.SetInParent()
    return options


def _apply_load_balancer(c: Any, policy: EffectivePolicy) -> None:
    if c.type == cluster_pb2.Cluster.ORIGINAL_DST:
        c.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
        return
    lb = policy.load_balancer
    simple = str(lb.simple) if lb is not None and lb.simple is not None else ""
    if simple == "PASSTHROUGH":
        c.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
        c.type = cluster_pb2.Cluster.ORIGINAL_DST
        c.ClearField("load_assignment")
        c.ClearField("eds_cluster_config")
        return
    c.lb_policy = _SIMPLE_LB.get(simple, cluster_pb2.Cluster.LEAST_REQUEST)


def _dns_load_assignment(view: ProxyView, svc: Service, port: ServicePort, name: str) -> Any:
    endpoints = [
        ep
        for ep in view.push.service_endpoints(svc)
        if ep.service_port_name == port.name or ep.service_port == port.port
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
    c.circuit_breakers.thresholds.append(_default_thresholds())
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
    c.circuit_breakers.thresholds.append(_default_thresholds())
    if protocol.is_http2:
        options = http_protocol_options_pb2.HttpProtocolOptions()
        options.explicit_http_config.http2_protocol_options.SetInParent()
        c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(to_any(options))
    return c
