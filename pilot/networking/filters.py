"""Network and HTTP filters: the HTTP connection manager, tcp_proxy, listener filters.

Only upstream Envoy extensions are used (no istio.* filters: plain Envoy NACKs them). The HTTP
filter chain is fault → cors → router, so per-route fault and CORS configuration always has a
filter to act on, as in Istio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from pilot.networking.protos import ads_config_source, to_any

HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
ROUTER = "envoy.filters.http.router"
FAULT = "envoy.filters.http.fault"
CORS = "envoy.filters.http.cors"
ORIGINAL_DST = "envoy.filters.listener.original_dst"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
HTTP_INSPECTOR = "envoy.filters.listener.http_inspector"

# ALPN values that http_inspector reports for plaintext HTTP.
PLAINTEXT_HTTP_ALPNS = ("http/1.0", "http/1.1", "h2c")

# Istio's default access log format (TEXT encoding), so logs read as users expect.
DEFAULT_ACCESS_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)


def access_logs(path: str) -> list[Any]:
    if not path:
        return []
    config = file_pb2.FileAccessLog(path=path)
    config.log_format.text_format_source.inline_string = DEFAULT_ACCESS_LOG_FORMAT
    return [accesslog_pb2.AccessLog(name="envoy.access_loggers.file", typed_config=to_any(config))]


def http_filters(security: Sequence[Any] = ()) -> list[Any]:
    """The HTTP filter chain: `security` filters (authz/authn, in Istio's order) first, then
    fault → cors → router."""
    return [
        *security,
        hcm_pb2.HttpFilter(name=FAULT, typed_config=to_any(fault_pb2.HTTPFault())),
        hcm_pb2.HttpFilter(name=CORS, typed_config=to_any(cors_pb2.Cors())),
        hcm_pb2.HttpFilter(name=ROUTER, typed_config=to_any(router_pb2.Router())),
    ]


def http_connection_manager(
    stat_prefix: str,
    *,
    rds: str = "",
    route_config: Any = None,
    use_remote_address: bool = False,
    forward_client_cert: bool = False,
    http2: bool = False,
    access_log_path: str = "",
    security_filters: Sequence[Any] = (),
) -> Any:
    out = hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
    )
    if rds:
        out.rds.route_config_name = rds
        out.rds.config_source.CopyFrom(ads_config_source())
    elif route_config is not None:
        out.route_config.CopyFrom(route_config)
    out.http_filters.extend(http_filters(security_filters))
    out.use_remote_address.value = use_remote_address
    out.normalize_path.value = True
    out.path_with_escaped_slashes_action = hcm_pb2.HttpConnectionManager.KEEP_UNCHANGED
    out.upgrade_configs.add(upgrade_type="websocket")
    if forward_client_cert:
        out.forward_client_cert_details = hcm_pb2.HttpConnectionManager.APPEND_FORWARD
        details = out.set_current_client_cert_details
        details.subject.value = True
        details.uri = True
        details.dns = True
    if http2:
        out.http2_protocol_options.SetInParent()
    out.access_log.extend(access_logs(access_log_path))
    return out


def hcm_filter(manager: Any) -> Any:
    return listener_components_pb2.Filter(name=HCM, typed_config=to_any(manager))


def tcp_proxy_filter(
    cluster: str, stat_prefix: str = "", weighted: Sequence[tuple[str, int]] = ()
) -> Any:
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix or cluster)
    if weighted:
        for name, weight in weighted:
            proxy.weighted_clusters.clusters.add(name=name, weight=weight)
    else:
        proxy.cluster = cluster
    return listener_components_pb2.Filter(name=TCP_PROXY, typed_config=to_any(proxy))


def original_dst_filter() -> Any:
    return listener_components_pb2.ListenerFilter(
        name=ORIGINAL_DST, typed_config=to_any(original_dst_pb2.OriginalDst())
    )


def tls_inspector_filter() -> Any:
    return listener_components_pb2.ListenerFilter(
        name=TLS_INSPECTOR, typed_config=to_any(tls_inspector_pb2.TlsInspector())
    )


def http_inspector_filter() -> Any:
    return listener_components_pb2.ListenerFilter(
        name=HTTP_INSPECTOR, typed_config=to_any(http_inspector_pb2.HttpInspector())
    )
