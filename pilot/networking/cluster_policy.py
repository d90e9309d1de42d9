"""DestinationRule connection settings on an outbound cluster (Istio's cluster_traffic_policy.go):
connectionPool → circuit breakers, connect timeout, TCP keepalive and HTTP protocol options;
h2UpgradePolicy; retryBudget; outlierDetection (and its HTTP error codes); proxyProtocol.

Functions here mutate a Cluster being built and return the HttpProtocolOptions it needs (or
None); cluster.py packs those once everything has had its say.
"""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, outlier_detection_pb2
from envoy.config.common.matcher.v3 import matcher_pb2
from envoy.config.core.v3 import base_pb2, protocol_pb2, proxy_protocol_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.transport_sockets.proxy_protocol.v3 import upstream_proxy_protocol_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import string_pb2
from envoy.type.v3 import percent_pb2

from pilot.model.service import ServicePort
from pilot.networking.protos import duration, to_any, uint32
from pilot.networking.tls import raw_buffer_socket
from pilot.networking.traffic_policy import EffectivePolicy, MeshDefaults
from pkg.config.specs.destination_rule import H2UpgradePolicy

MAX_UINT32 = 0xFFFFFFFF
PROXY_PROTOCOL_TRANSPORT_SOCKET = "envoy.transport_sockets.upstream_proxy_protocol"


def default_thresholds() -> Any:
    """Istio's defaults: every limit at its maximum, so Envoy's own small defaults (1024
    connections, 3 retries) never reject traffic nobody asked to limit."""
    return circuit_breaker_pb2.CircuitBreakers.Thresholds(
        max_connections=uint32(MAX_UINT32),
        max_pending_requests=uint32(MAX_UINT32),
        max_requests=uint32(MAX_UINT32),
        max_retries=uint32(MAX_UINT32),
        track_remaining=True,
    )


def _options(options: Any | None) -> Any:
    return options if options is not None else http_protocol_options_pb2.HttpProtocolOptions()


def set_h2(options: Any | None) -> Any:
    """setH2Options: explicit HTTP/2 unless an upstream protocol is already chosen."""
    options = _options(options)
    if options.WhichOneof("upstream_protocol_options") is None:
        options.explicit_http_config.http2_protocol_options.SetInParent()
    return options


def use_downstream_protocol(options: Any | None) -> Any:
    options = _options(options)
    http1 = protocol_pb2.Http1ProtocolOptions()
    if options.WhichOneof("upstream_protocol_options") == "explicit_http_config":
        http1.CopyFrom(options.explicit_http_config.http_protocol_options)
    options.use_downstream_protocol_config.http_protocol_options.CopyFrom(http1)
    options.use_downstream_protocol_config.http2_protocol_options.SetInParent()
    return options


def upstream_protocol(port: ServicePort, is_router: bool) -> Any | None:
    """Istio's setUpstreamProtocol, before any policy: HTTP/2 for HTTP2/gRPC ports; on
    sidecars a sniffed port follows the downstream protocol."""
    if port.protocol.is_http2:
        return set_h2(None)
    if port.protocol.is_unsupported and not is_router:
        return use_downstream_protocol(None)
    return None


def _should_h2_upgrade(port: ServicePort | None, mesh: MeshDefaults, http: Any) -> bool:
    if http is not None:
        if http.use_client_protocol:
            return False
        if http.h2_upgrade_policy == H2UpgradePolicy.UPGRADE:
            return True
        if http.h2_upgrade_policy == H2UpgradePolicy.DO_NOT_UPGRADE:
            return False
    if port is None or not port.protocol.is_http:
        return False
    return mesh.h2_upgrade


def apply_connection_pool(
    c: Any,
    port: ServicePort | None,
    mesh: MeshDefaults,
    policy: EffectivePolicy,
    options: Any | None,
) -> Any | None:
    """applyH2Upgrade + applyConnectionPool; the connect timeout is already the mesh's. For a
    cluster without a service port (PassthroughCluster) only the limits, connect timeout and
    keepalive count, as in Istio."""
    pool = policy.connection_pool
    http = pool.http if pool is not None else None
    tcp = pool.tcp if pool is not None else None
    if _should_h2_upgrade(port, mesh, http):
        options = set_h2(options)
    threshold = default_thresholds()
    _apply_retry_budget(threshold, policy.retry_budget)
    idle = None
    max_per_connection = max_streams = 0
    keepalive = None
    if http is not None:
        if http.http2_max_requests > 0:
            threshold.max_requests.value = http.http2_max_requests
        if http.http1_max_pending_requests > 0:
            threshold.max_pending_requests.value = http.http1_max_pending_requests
        if http.max_retries > 0:
            threshold.max_retries.value = http.max_retries
        idle = http.idle_timeout
        max_per_connection = http.max_requests_per_connection
        max_streams = http.max_concurrent_streams
        keepalive = http.http2_keep_alive
    max_duration = None
    if tcp is not None:
        if tcp.connect_timeout is not None:
            c.connect_timeout.CopyFrom(duration(tcp.connect_timeout))
        if tcp.max_connections > 0:
            threshold.max_connections.value = tcp.max_connections
        max_duration = tcp.max_connection_duration
        if idle is None:
            idle = tcp.idle_timeout
    _apply_tcp_keepalive(c, mesh.tcp_keepalive)
    _apply_tcp_keepalive(c, tcp.tcp_keepalive if tcp is not None else None)
    c.circuit_breakers.ClearField("thresholds")
    c.circuit_breakers.thresholds.append(threshold)
    wanted = (max_duration, idle, keepalive)
    if any(v is not None for v in wanted) or max_per_connection > 0 or max_streams > 0:
        options = _options(options)
        common = options.common_http_protocol_options
        common.SetInParent()
        if idle is not None:
            common.idle_timeout.CopyFrom(duration(idle))
        if max_per_connection > 0:
            common.max_requests_per_connection.value = max_per_connection
        if max_duration is not None:
            common.max_connection_duration.CopyFrom(duration(max_duration))
        if options.WhichOneof("upstream_protocol_options") == "explicit_http_config" and (
            options.explicit_http_config.HasField("http2_protocol_options")
        ):
            h2 = options.explicit_http_config.http2_protocol_options
            if max_streams > 0:
                h2.max_concurrent_streams.value = max_streams
            if keepalive is not None:
                h2.connection_keepalive.interval.CopyFrom(duration(keepalive.interval))
                h2.connection_keepalive.timeout.CopyFrom(duration(keepalive.timeout))
    if http is not None and http.use_client_protocol:
        options = use_downstream_protocol(options)
    return options


def _apply_tcp_keepalive(c: Any, keepalive: Any) -> None:
    """setKeepAliveSettings: an empty tcp_keepalive turns SO_KEEPALIVE on with the OS
    defaults; probes, time and interval (whole seconds) override them one by one."""
    if keepalive is None:
        return
    out = c.upstream_connection_options.tcp_keepalive
    out.SetInParent()
    if keepalive.probes > 0:
        out.keepalive_probes.value = keepalive.probes
    if keepalive.time is not None:
        out.keepalive_time.value = keepalive.time.seconds
    if keepalive.interval is not None:
        out.keepalive_interval.value = keepalive.interval.seconds


def _apply_retry_budget(threshold: Any, budget: Any) -> None:
    if budget is None:
        return
    out = threshold.retry_budget
    out.budget_percent.value = budget.percent if budget.percent is not None else 20.0
    out.min_retry_concurrency.value = budget.min_retry_concurrency or 3
    # `budgetInterval` has no field in Envoy 1.40's RetryBudget: it is not sent.


def apply_outlier_detection(
    c: Any, outlier: Any, options: Any | None, forces_unhealthy: bool = False
) -> Any | None:
    """applyOutlierDetection: consecutive 5xx / gateway errors enforced at 100 %, success-rate
    ejection off, and the panic threshold set from minHealthPercent (0 by default, so Envoy
    never sends traffic to ejected hosts because too few are left)."""
    if outlier is None:
        return options
    out = outlier_detection_pb2.OutlierDetection()
    out.enforcing_success_rate.value = 0
    if outlier.consecutive_5xx_errors is not None:
        value = outlier.consecutive_5xx_errors
        out.consecutive_5xx.value = value
        out.enforcing_consecutive_5xx.value = 100 if value > 0 else 0
    if outlier.consecutive_gateway_errors is not None:
        value = outlier.consecutive_gateway_errors
        out.consecutive_gateway_failure.value = value
        out.enforcing_consecutive_gateway_failure.value = 100 if value > 0 else 0
    if outlier.interval is not None:
        out.interval.CopyFrom(duration(outlier.interval))
    if outlier.base_ejection_time is not None:
        out.base_ejection_time.CopyFrom(duration(outlier.base_ejection_time))
    if outlier.max_ejection_percent > 0:
        out.max_ejection_percent.value = outlier.max_ejection_percent
    if outlier.split_external_local_origin_errors:
        out.split_external_local_origin_errors = True
        failures = outlier.consecutive_local_origin_failures or 0
        if failures > 0:
            out.consecutive_local_origin_failure.value = failures
            out.enforcing_consecutive_local_origin_failure.value = 100
        out.enforcing_local_origin_success_rate.value = 0
    c.outlier_detection.CopyFrom(out)
    if outlier.min_health_percent >= 0:
        value = 0 if forces_unhealthy else outlier.min_health_percent
        c.common_lb_config.healthy_panic_threshold.CopyFrom(percent_pb2.Percent(value=value))
    codes = outlier.outlier_detection_http_error_codes
    if codes:
        options = _options(options)
        options.outlier_detection.error_matcher.CopyFrom(_status_matcher(codes))
    return options


def _status_matcher(codes: tuple[int, ...]) -> Any:
    """Only these response codes count as outlier failures (an OR of `:status` matches)."""
    rules = []
    for code in codes:
        header = route_components_pb2.HeaderMatcher(
            name=":status", string_match=string_pb2.StringMatcher(exact=str(code))
        )
        rule = matcher_pb2.MatchPredicate()
        rule.http_response_headers_match.headers.append(header)
        rules.append(rule)
    if len(rules) == 1:
        return rules[0]
    out = matcher_pb2.MatchPredicate()
    out.or_match.rules.extend(rules)
    return out


def apply_proxy_protocol(c: Any, proxy_protocol: Any) -> None:
    """Wrap the cluster's transport socket(s) in the upstream PROXY protocol socket."""
    if proxy_protocol is None:
        return
    v2 = str(proxy_protocol.version) == "V2"
    version = (
        proxy_protocol_pb2.ProxyProtocolConfig.V2
        if v2
        else proxy_protocol_pb2.ProxyProtocolConfig.V1
    )

    def wrap(inner: Any | None) -> Any:
        socket = upstream_proxy_protocol_pb2.ProxyProtocolUpstreamTransport()
        socket.config.version = version
        socket.transport_socket.CopyFrom(inner if inner is not None else raw_buffer_socket())
        return base_pb2.TransportSocket(
            name=PROXY_PROTOCOL_TRANSPORT_SOCKET, typed_config=to_any(socket)
        )

    if c.HasField("transport_socket"):
        c.transport_socket.CopyFrom(wrap(c.transport_socket))
    elif not c.transport_socket_matches:
        c.transport_socket.CopyFrom(wrap(None))
    for match in c.transport_socket_matches:
        match.transport_socket.CopyFrom(wrap(match.transport_socket))
