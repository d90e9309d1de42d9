"""DestinationRule and the traffic policies it carries (also used by Sidecar connection pools)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pkg.config.specs.destination_rule import (
    ClientTLSSettings,
    ClientTLSSettings_TLSmode,
    ConnectionPoolSettings,
    DestinationRule,
    H2UpgradePolicy,
    LoadBalancerSettings,
    OutlierDetection,
    PortTrafficPolicy,
    TrafficPolicy,
)
from pkg.config.validation.locality import check_locality_lb, check_zone_aware_lb
from pkg.config.validation.names import (
    check_fqdn,
    check_ip,
    check_labels,
    check_port,
    check_wildcard_domain,
    is_dns1123_label,
)
from pkg.config.validation.policy import check_export_to, check_selector
from pkg.config.validation.report import Report


def validate_destination_rule(rule: DestinationRule, report: Report) -> None:
    report.error("spec.host", check_wildcard_domain(rule.host))
    check_traffic_policy(report, rule.traffic_policy, "spec.trafficPolicy")
    names: set[str] = set()
    for index, subset in enumerate(rule.subsets):
        path = f"spec.subsets[{index}]"
        if subset.name in names:
            report.error(f"{path}.name", f"duplicate subset names: {subset.name}")
        names.add(subset.name)
        if not subset.name:
            report.error(f"{path}.name", "subset name cannot be empty")
        elif not is_dns1123_label(subset.name):
            report.error(f"{path}.name", f"subset name is invalid: {subset.name}")
        report.errors_at(f"{path}.labels", check_labels(subset.labels))
        check_traffic_policy(report, subset.traffic_policy, f"{path}.trafficPolicy")
    check_export_to(
        report, rule.export_to, has_workload_selector=rule.workload_selector is not None
    )
    check_selector(report, rule.workload_selector, "spec.workloadSelector")


def check_traffic_policy(report: Report, policy: TrafficPolicy | None, path: str) -> None:
    if policy is None:
        return
    if policy == TrafficPolicy():
        report.error(path, "traffic policy must have at least one field")
        return
    if policy.tunnel is not None and policy.proxy_protocol is not None:
        report.error(path, "tunnel and proxyProtocol must not be set together")
        return
    _check_outlier(report, policy.outlier_detection, f"{path}.outlierDetection")
    check_connection_pool(report, policy.connection_pool, f"{path}.connectionPool")
    _check_load_balancer(
        report, policy.load_balancer, policy.outlier_detection, f"{path}.loadBalancer"
    )
    check_client_tls(report, policy.tls, f"{path}.tls")
    _check_port_policies(report, policy.port_level_settings, f"{path}.portLevelSettings")
    if (tunnel := policy.tunnel) is not None:
        at = f"{path}.tunnel"
        if tunnel.protocol not in ("", "CONNECT", "POST"):
            report.error(f"{at}.protocol", 'tunnel protocol must be "CONNECT" or "POST"')
        fqdn_problem, ip_problem = check_fqdn(tunnel.target_host), check_ip(tunnel.target_host)
        if fqdn_problem and ip_problem:
            report.error(
                f"{at}.targetHost",
                "tunnel target host must be valid FQDN or IP address: "
                f"{fqdn_problem}; {ip_problem}",
            )
        port_problem = check_port(tunnel.target_port)
        if port_problem:
            report.error(f"{at}.targetPort", f"tunnel target port is invalid: {port_problem}")


def _check_port_policies(report: Report, policies: Sequence[PortTrafficPolicy], path: str) -> None:
    for index, policy in enumerate(policies):
        at = f"{path}[{index}]"
        if policy.port is None:
            report.error(f"{at}.port", "portTrafficPolicy must have valid port")
        if (
            policy.outlier_detection is None
            and policy.connection_pool is None
            and policy.load_balancer is None
            and policy.tls is None
        ):
            report.error(at, "port traffic policy must have at least one field")
            continue
        _check_outlier(report, policy.outlier_detection, f"{at}.outlierDetection")
        check_connection_pool(report, policy.connection_pool, f"{at}.connectionPool")
        _check_load_balancer(
            report, policy.load_balancer, policy.outlier_detection, f"{at}.loadBalancer"
        )
        check_client_tls(report, policy.tls, f"{at}.tls")


def _check_outlier(report: Report, outlier: OutlierDetection | None, path: str) -> None:
    if outlier is None:
        return
    if outlier.consecutive_errors != 0:
        report.warn(
            f"{path}.consecutiveErrors",
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or "
            "consecutive5xxErrors instead",
        )
    if (
        not outlier.split_external_local_origin_errors
        and (outlier.consecutive_local_origin_failures or 0) > 0
    ):
        report.error(
            f"{path}.consecutiveLocalOriginFailures",
            "outlier detection consecutive local origin failures is specified, but split external "
            "local origin errors is set to false",
        )
    for field, value in (
        ("maxEjectionPercent", outlier.max_ejection_percent),
        ("minHealthPercent", outlier.min_health_percent),
    ):
        if not 0 <= value <= 100:
            report.error(f"{path}.{field}", f"percentage {value} is not in range 0..100")


def check_connection_pool(
    report: Report, settings: ConnectionPoolSettings | None, path: str
) -> None:
    if settings is None:
        return
    if settings.http is None and settings.tcp is None:
        report.error(path, "connection pool must have at least one field")
        return
    if (http := settings.http) is not None:
        at = f"{path}.http"
        for field, value, what in (
            (
                "http1MaxPendingRequests",
                http.http1_max_pending_requests,
                "http1 max pending requests",
            ),
            ("http2MaxRequests", http.http2_max_requests, "http2 max requests"),
            (
                "maxRequestsPerConnection",
                http.max_requests_per_connection,
                "max requests per connection",
            ),
            ("maxRetries", http.max_retries, "max retries"),
            ("maxConcurrentStreams", http.max_concurrent_streams, "max concurrent streams"),
        ):
            if value < 0:
                report.error(f"{at}.{field}", f"{what} must be non-negative")
        if http.h2_upgrade_policy == H2UpgradePolicy.UPGRADE and http.use_client_protocol:
            report.error(
                f"{at}.useClientProtocol",
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            )
        if (keepalive := http.http2_keep_alive) is not None:
            if keepalive.interval is None:
                report.error(
                    f"{at}.http2KeepAlive.interval", "http2 keepalive interval is required"
                )
            if keepalive.timeout is None:
                report.error(f"{at}.http2KeepAlive.timeout", "http2 keepalive timeout is required")
    if (tcp := settings.tcp) is not None:
        if tcp.max_connections < 0:
            report.error(f"{path}.tcp.maxConnections", "max connections must be non-negative")
        idle = tcp.idle_timeout
        if idle is not None and idle.total_nanoseconds() != 0:
            report.error(f"{path}.tcp.idleTimeout", _check_duration(idle.total_nanoseconds()))


def _check_duration(nanos: int) -> str | None:
    """Istio's ValidateDuration (for the durations no CRD rule covers)."""
    if nanos < 1_000_000:
        return "duration must be greater than 1ms"
    if nanos % 1_000_000:
        return "only durations to ms precision are supported"
    return None


def _check_load_balancer(
    report: Report,
    settings: LoadBalancerSettings | None,
    outlier: OutlierDetection | None,
    path: str,
) -> None:
    if settings is None:
        return
    if (ch := settings.consistent_hash) is not None:
        at = f"{path}.consistentHash"
        if ch.http_cookie is not None:
            names: set[str] = set()
            for index, attribute in enumerate(ch.http_cookie.attributes):
                attr_path = f"{at}.httpCookie.attributes[{index}].name"
                if not attribute.name:
                    report.error(attr_path, "cookie attribute name cannot be empty")
                elif attribute.name in names:
                    report.error(attr_path, f"duplicate cookie attribute name: {attribute.name}")
                names.add(attribute.name)
        if ch.minimum_ring_size != 0:
            report.warn(
                f"{at}.minimumRingSize",
                "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash "
                "configuration instead",
            )
            if ch.ring_hash is not None or ch.maglev is not None:
                report.error(
                    f"{at}.minimumRingSize",
                    "only one of MinimumRingSize or Maglev/Ringhash can be specified",
                )
        if ch.maglev is not None:
            size = ch.maglev.table_size
            if size == 0:
                report.error(f"{at}.maglev.tableSize", "tableSize must be set for maglev")
            if size >= 5000011:
                report.error(
                    f"{at}.maglev.tableSize", "tableSize must be less than 5000011 for maglev"
                )
            if not _is_prime(size):
                report.error(
                    f"{at}.maglev.tableSize", "tableSize must be a prime number for maglev"
                )
    if settings.locality_lb_setting is not None and settings.zone_aware_lb_setting is not None:
        report.error(path, "only one of localityLbSetting and zoneAwareLbSetting can be set")
    check_locality_lb(report, settings.locality_lb_setting, outlier, f"{path}.localityLbSetting")
    check_zone_aware_lb(
        report, settings.zone_aware_lb_setting, outlier, f"{path}.zoneAwareLbSetting"
    )
    if (warmup := settings.warmup) is not None:
        if warmup.minimum_percent is not None and warmup.minimum_percent > 100:
            report.error(
                f"{path}.warmup.minimumPercent",
                "minimumPercent value should be less than or equal to 100",
            )
        if warmup.aggression is not None and warmup.aggression <= 0:
            report.error(f"{path}.warmup.aggression", "aggression should be greater than 0")


def _is_prime(value: int) -> bool:
    """Envoy's primality test for maglev table sizes (0 is not prime, 1..3 are)."""
    if value != 0 and value < 4:
        return True
    if value % 2 == 0:
        return False
    return all(value % factor for factor in range(3, math.isqrt(value) + 1, 2))


def check_client_tls(report: Report, tls: ClientTLSSettings | None, path: str) -> None:
    if tls is None:
        return
    if tls.credential_name.startswith("configmap://"):
        reference = tls.credential_name.removeprefix("configmap://")
        namespace = reference.split("/", 1)[0] if "/" in reference else report.namespace
        if namespace != report.namespace or not report.namespace:
            report.error(
                f"{path}.credentialName",
                "invalid configmap:// credentialName: namespace must match the configuration "
                f"namespace {report.namespace!r}",
            )
    mode = tls.mode
    simple, mutual = ClientTLSSettings_TLSmode.SIMPLE, ClientTLSSettings_TLSmode.MUTUAL
    if tls.insecure_skip_verify:
        if mode == simple and (tls.ca_certificates or tls.credential_name or tls.subject_alt_names):
            report.error(
                path,
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when "
                "InsecureSkipVerify is set true",
            )
        if mode == mutual and (tls.ca_certificates or tls.subject_alt_names):
            report.error(
                path,
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set "
                "true",
            )
    if mode in (simple, mutual) and tls.credential_name:
        if tls.client_certificate or tls.ca_certificates or tls.private_key or tls.ca_crl:
            report.error(
                path,
                "cannot specify client certificates or CA certificate or CA CRL If credentialName "
                "is set",
            )
        return
    if mode == mutual:
        if not tls.client_certificate:
            report.error(f"{path}.clientCertificate", "client certificate required for mutual tls")
        if not tls.private_key:
            report.error(f"{path}.privateKey", "private key required for mutual tls")
