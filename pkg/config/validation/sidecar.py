"""Sidecar: ingress and egress listeners, ports, binds, hosts and the outbound policy."""

from __future__ import annotations

from pkg.config.specs.gateway import ServerTLSSettings_TLSmode
from pkg.config.specs.sidecar import (
    CaptureMode,
    IstioEgressListener,
    IstioIngressListener,
    Mode,
    OutboundTrafficPolicy,
    Sidecar,
    SidecarPort,
)
from pkg.config.validation.destination_rule import check_connection_pool
from pkg.config.validation.gateway import UNIX_PREFIX, check_server_tls
from pkg.config.validation.names import (
    check_fqdn,
    check_ip,
    check_namespace_slash_host,
    check_port,
    check_port_name,
    check_protocol,
    check_unix_address,
    is_http,
    is_tls,
    parse_protocol,
)
from pkg.config.validation.policy import check_networking_selector
from pkg.config.validation.report import Report
from pkg.config.validation.routing import check_destination

_LOOPBACK_OR_ANY = ("127.0.0.1", "0.0.0.0", "::1", "::")


def validate_sidecar(sidecar: Sidecar, report: Report) -> None:
    check_networking_selector(report, sidecar.workload_selector, "spec.workloadSelector", "sidecar")
    if (
        not sidecar.egress
        and not sidecar.ingress
        and sidecar.outbound_traffic_policy is None
        and sidecar.inbound_connection_pool is None
    ):
        report.error("spec", "sidecar: empty configuration provided")
        return
    ports: set[int] = set()
    for index, listener in enumerate(sidecar.ingress):
        _check_ingress(report, listener, f"spec.ingress[{index}]", ports)
    check_connection_pool(report, sidecar.inbound_connection_pool, "spec.inboundConnectionPool")
    _check_egress_listeners(report, sidecar)
    _check_outbound_policy(report, sidecar.outbound_traffic_policy, "spec.outboundTrafficPolicy")


def _check_ingress(
    report: Report, listener: IstioIngressListener, path: str, ports: set[int]
) -> None:
    port = listener.port
    if port is None:
        report.error(f"{path}.port", "sidecar: port is required for ingress listeners")
        return
    if port.target_port > 0:
        report.error(f"{path}.port.targetPort", "targetPort has no impact on Sidecars")
    _check_port(report, port, f"{path}.port")
    report.error(f"{path}.port.number", check_port(port.number))
    if listener.bind:
        report.error(f"{path}.bind", check_ip(listener.bind))
    if port.number in ports:
        report.error(f"{path}.port.number", "sidecar: ports on IP bound listeners must be unique")
    ports.add(port.number)
    if listener.default_endpoint:
        _check_default_endpoint(report, listener.default_endpoint, f"{path}.defaultEndpoint")
    if (tls := listener.tls) is not None:
        at = f"{path}.tls"
        for field, present, what in (
            (
                "subjectAltNames",
                tls.subject_alt_names,
                "subjectAltNames is not supported in ingress tls",
            ),
            ("httpsRedirect", tls.https_redirect, "httpsRedirect is not supported"),
            ("credentialName", tls.credential_name, "credentialName is not currently supported"),
            ("credentialNames", tls.credential_names, "credentialNames is not currently supported"),
            (
                "tlsCertificates",
                tls.tls_certificates,
                "tls_certificates is not currently supported",
            ),
        ):
            if present:
                report.error(f"{at}.{field}", f"sidecar: {what}")
        if tls.mode in (
            ServerTLSSettings_TLSmode.ISTIO_MUTUAL,
            ServerTLSSettings_TLSmode.AUTO_PASSTHROUGH,
        ):
            report.error(
                f"{at}.mode",
                f"configuration is invalid: cannot set mode to {tls.mode} in sidecar ingress tls",
            )
        if not is_tls(parse_protocol(port.protocol)):
            report.error(at, "server cannot have TLS settings for non HTTPS/TLS ports")
        check_server_tls(report, tls, at)
    check_connection_pool(report, listener.connection_pool, f"{path}.connectionPool")
    pool = listener.connection_pool
    if pool is not None and pool.http is not None and not is_http(parse_protocol(port.protocol)):
        report.warn(
            f"{path}.connectionPool.http",
            f"sidecar: HTTP connection pool settings are configured for port {port.number} "
            f"({port.name!r}) but its protocol is not HTTP ({port.protocol}); only TCP settings "
            "will apply",
        )


def _check_port(report: Report, port: SidecarPort, path: str) -> None:
    if port.name:
        report.error(f"{path}.name", check_port_name(port.name))
    report.error(f"{path}.protocol", check_protocol(port.protocol))


def _check_default_endpoint(report: Report, endpoint: str, path: str) -> None:
    """`127.0.0.1:<port>`, `0.0.0.0:<port>`, `[::1]:<port>`, `[::]:<port>` or `unix://path`."""
    if endpoint.startswith(UNIX_PREFIX):
        report.error(path, check_unix_address(endpoint.removeprefix(UNIX_PREFIX)))
        return
    host, colon, port = endpoint.rpartition(":")
    if not colon:
        report.error(path, f"address {endpoint}: missing port in address")
        return
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host and host not in _LOOPBACK_OR_ANY:
        report.error(
            path,
            "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,"
            "[::]:port,unix://filepath or unset",
        )
    if not port.isdigit():
        report.error(path, f"sidecar: defaultEndpoint port ({port}) is not a number")
    else:
        report.error(path, check_port(int(port)))


def _check_egress_listeners(report: Report, sidecar: Sidecar) -> None:
    ports: set[int] = set()
    sockets: set[str] = set()
    catch_all = False
    for index, listener in enumerate(sidecar.egress):
        path = f"spec.egress[{index}]"
        if listener.port is None:
            if catch_all:
                report.error(
                    f"{path}.port", "sidecar: egress can have only one listener with empty port"
                )
                continue
            if index == len(sidecar.egress) - 1:
                catch_all = True
            else:
                report.error(
                    f"{path}.port",
                    "sidecar: the egress listener with empty port should be the last listener in "
                    "the list",
                )
        else:
            _check_egress_port(report, listener, path, ports, sockets)
        _check_egress_hosts(report, listener, path)


def _check_egress_port(
    report: Report, listener: IstioEgressListener, path: str, ports: set[int], sockets: set[str]
) -> None:
    port = listener.port
    assert port is not None
    if port.target_port > 0:
        report.error(f"{path}.port.targetPort", "targetPort has no impact on Sidecars")
    _check_port(report, port, f"{path}.port")
    bind = listener.bind
    if port.number == 0:
        if not bind.startswith(UNIX_PREFIX):
            report.error(
                f"{path}.bind",
                "sidecar: ports with 0 value must have a unix domain socket bind address",
            )
        else:
            report.error(f"{path}.bind", check_unix_address(bind.removeprefix(UNIX_PREFIX)))
        if listener.capture_mode not in (CaptureMode.DEFAULT, CaptureMode.NONE):
            report.error(
                f"{path}.captureMode",
                "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
            )
        if bind in sockets:
            report.error(
                f"{path}.bind", "sidecar: unix domain socket values for listeners must be unique"
            )
        sockets.add(bind)
        return
    report.error(f"{path}.port.number", check_port(port.number))
    if bind:
        report.error(f"{path}.bind", check_ip(bind))
    if port.number in ports:
        report.error(f"{path}.port.number", "sidecar: ports on IP bound listeners must be unique")
    ports.add(port.number)


def _check_egress_hosts(report: Report, listener: IstioEgressListener, path: str) -> None:
    if not listener.hosts:
        report.error(f"{path}.hosts", "sidecar: egress listener must contain at least one host")
        return
    by_namespace: dict[str, set[str]] = {}
    for index, host in enumerate(listener.hosts):
        at = f"{path}.hosts[{index}]"
        namespace, slash, name = host.partition("/")
        if slash and not namespace.startswith("~"):
            namespace = report.namespace if namespace == "." else namespace
            names = by_namespace.setdefault(namespace, set())
            if (name != "*" and (name in names or "*" in names)) or (name == "*" and names):
                report.warn(at, f"duplicated egress host: {host}")
            names.add(name)
        report.errors_at(at, check_namespace_slash_host(host, False, False))
    if "*" in by_namespace.get("*", set()) and len(by_namespace) != 1:
        report.warn(f"{path}.hosts", "`*/*` host select all resources, no other hosts can be added")


def _check_outbound_policy(report: Report, policy: OutboundTrafficPolicy | None, path: str) -> None:
    if policy is None or policy.egress_proxy is None:
        return
    if policy.mode != Mode.ALLOW_ANY:
        report.error(
            f"{path}.egressProxy",
            "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
        )
        return
    proxy = policy.egress_proxy
    report.error(f"{path}.egressProxy.host", check_fqdn(proxy.host))
    if proxy.port is None:
        report.error(f"{path}.egressProxy.port", "sidecar: egress_proxy port must be non-nil")
        return
    check_destination(report, proxy, f"{path}.egressProxy")
