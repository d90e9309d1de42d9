"""Gateway: servers, ports, binds, hosts and server TLS settings (also used by Sidecar ingress)."""

from __future__ import annotations

from pkg.config.specs.gateway import (
    Gateway,
    Port,
    Server,
    ServerTLSSettings,
    ServerTLSSettings_TLSmode,
    TLSProtocol,
)
from pkg.config.validation.names import (
    UNSUPPORTED,
    check_ip,
    check_namespace_slash_host,
    check_port,
    check_unix_address,
    is_dns1123_label,
    is_http,
    is_tls,
    parse_protocol,
)
from pkg.config.validation.report import Report

GATEWAY_SEMANTICS = "internal.istio.io/gateway-semantics"
UNIX_PREFIX = "unix://"
# The cipher suites Envoy's BoringSSL accepts in Gateway TLS settings.
VALID_CIPHER_SUITES = frozenset(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
        "DES-CBC3-SHA",
    )
)


def validate_gateway(gateway: Gateway, report: Report) -> None:
    semantics = report.meta.annotations.get(GATEWAY_SEMANTICS) == "gateway"
    if not is_dns1123_label(report.meta.name) and not semantics:
        report.error("metadata.name", f"invalid gateway name: {report.meta.name!r}")
    if not gateway.servers:
        report.error("spec.servers", "gateway must have at least one server")
    port_names: set[str] = set()
    for index, server in enumerate(gateway.servers):
        path = f"spec.servers[{index}]"
        _check_server(report, server, path, semantics)
        if server.port is None:
            continue
        if server.port.name in port_names:
            report.error(
                f"{path}.port.name",
                f"port names in servers must be unique: duplicate name {server.port.name}",
            )
        port_names.add(server.port.name)
        redirect = server.tls is not None and server.tls.https_redirect
        if redirect and not is_http(parse_protocol(server.port.protocol)):
            report.warn(
                f"{path}.tls.httpsRedirect",
                "tls.httpsRedirect should only be used with http servers",
            )


def _check_server(report: Report, server: Server, path: str, semantics: bool) -> None:
    if not server.hosts:
        report.error(f"{path}.hosts", "server config must contain at least one host")
    for index, host in enumerate(server.hosts):
        report.errors_at(
            f"{path}.hosts[{index}]", check_namespace_slash_host(host, True, semantics)
        )
    port_ok = _check_server_port(report, server.port, server.bind, f"{path}.port")
    _check_bind(report, server.port, server.bind, f"{path}.bind")
    check_server_tls(report, server.tls, f"{path}.tls")
    if port_ok and server.port is not None:
        protocol = parse_protocol(server.port.protocol)
        if is_tls(protocol) and server.tls is None:
            report.error(f"{path}.tls", "server must have TLS settings for HTTPS/TLS protocols")
        elif not is_tls(protocol) and server.tls is not None:
            tls = server.tls
            if is_http(protocol):
                passthrough = tls.mode == ServerTLSSettings_TLSmode.PASSTHROUGH
                redirect_only = passthrough and not (
                    tls.ca_certificates or tls.private_key or tls.server_certificate
                )
                if not redirect_only:
                    report.error(
                        f"{path}.tls", "server cannot have TLS settings for plain text HTTP ports"
                    )
            else:
                report.error(
                    f"{path}.tls", "server cannot have TLS settings for non HTTPS/TLS ports"
                )


def _check_server_port(report: Report, port: Port | None, bind: str, path: str) -> bool:
    if port is None:
        report.error(path, "port is required")
        return False
    before = len(report.errors)
    if parse_protocol(port.protocol) == UNSUPPORTED:
        report.error(
            f"{path}.protocol",
            f"invalid protocol {port.protocol!r}, supported protocols are HTTP, HTTP2, GRPC, "
            "GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
        )
    if port.number > 0 or not bind.startswith(UNIX_PREFIX):
        report.error(f"{path}.number", check_port(port.number))
    if port.target_port > 0:
        report.error(f"{path}.targetPort", "targetPort has no impact on Gateways")
    if not port.name:
        report.error(f"{path}.name", "port name must be set")
    return len(report.errors) == before


def _check_bind(report: Report, port: Port | None, bind: str, path: str) -> None:
    if bind.startswith(UNIX_PREFIX):
        report.error(path, check_unix_address(bind.removeprefix(UNIX_PREFIX)))
        if port is not None and port.number != 0:
            report.error(path, "port number must be 0 for unix domain socket")
    elif bind:
        report.error(path, check_ip(bind))


def check_server_tls(report: Report, tls: ServerTLSSettings | None, path: str) -> None:
    """ServerTLSSettings: the CRD's credential rules and the webhook's mode rules."""
    if tls is None:
        return
    _check_tls_crd_rules(report, tls, path)
    mode = tls.mode
    if (
        tls.min_protocol_version in (TLSProtocol.TLSV1_0, TLSProtocol.TLSV1_1)
        and not tls.cipher_suites
    ):
        report.warn(
            f"{path}.minProtocolVersion",
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no "
            "longer include compatible ciphers.",
        )
    _check_ciphers(report, tls, path)
    if mode == ServerTLSSettings_TLSmode.ISTIO_MUTUAL:
        for field, present, what in (
            ("serverCertificate", tls.server_certificate, "server certificate"),
            ("privateKey", tls.private_key, "private key"),
            ("caCertificates", tls.ca_certificates, "CA bundle"),
            ("tlsCertificates", tls.tls_certificates, "tlsCertificates"),
            ("credentialName", tls.credential_name, "credentialName"),
            ("credentialNames", tls.credential_names, "credentialNames"),
        ):
            if present:
                report.error(f"{path}.{field}", f"ISTIO_MUTUAL TLS cannot have associated {what}")
        return
    has_certs = bool(
        tls.ca_crl
        or tls.server_certificate
        or tls.private_key
        or tls.ca_certificates
        or tls.tls_certificates
        or tls.credential_name
        or tls.credential_names
    )
    passthrough = (
        ServerTLSSettings_TLSmode.PASSTHROUGH,
        ServerTLSSettings_TLSmode.AUTO_PASSTHROUGH,
    )
    if mode in passthrough and has_certs:
        report.warn(path, f"{mode} mode does not use certificates, they will be ignored")
    sources = sum(
        (
            bool(tls.server_certificate and tls.private_key),
            bool(tls.credential_name),
            bool(tls.credential_names),
            bool(tls.tls_certificates),
        )
    )
    if sources > 1:
        report.error(
            path,
            "only one of credential_name, credential_names, server_certificate/private_key, "
            "tls_certificates should be specified",
        )
    terminating = (
        ServerTLSSettings_TLSmode.SIMPLE,
        ServerTLSSettings_TLSmode.MUTUAL,
        ServerTLSSettings_TLSmode.OPTIONAL_MUTUAL,
    )
    if mode in terminating and (tls.credential_name or tls.credential_names):
        return  # certificates come from the credential
    if mode in terminating:
        prefix = "SIMPLE TLS" if mode == ServerTLSSettings_TLSmode.SIMPLE else "MUTUAL TLS"
        if mode != ServerTLSSettings_TLSmode.SIMPLE and not tls.ca_certificates:
            report.error(f"{path}.caCertificates", f"{prefix} requires a client CA bundle")
        if len(tls.tls_certificates) > 2:
            report.warn(
                f"{path}.tlsCertificates", f"{prefix} can support up to 2 server certificates"
            )
        certs = [(c.server_certificate, c.private_key) for c in tls.tls_certificates] or [
            (tls.server_certificate, tls.private_key)
        ]
        for certificate, key in certs:
            if not certificate:
                report.error(f"{path}.serverCertificate", f"{prefix} requires a server certificate")
            if not key:
                report.error(f"{path}.privateKey", f"{prefix} requires a private key")
    if tls.ca_crl:
        if tls.credential_name:
            report.error(
                f"{path}.caCrl",
                "CRL is not supported with credentialName. CRL has to be specified in the "
                "credential",
            )
        if mode == ServerTLSSettings_TLSmode.SIMPLE:
            report.error(f"{path}.caCrl", "CRL is not supported with SIMPLE TLS")


def _check_tls_crd_rules(report: Report, tls: ServerTLSSettings, path: str) -> None:
    if tls.credential_names and tls.tls_certificates:
        report.error(path, "only one of credentialNames or tlsCertificates can be set")
    if tls.credential_name and tls.credential_names:
        report.error(path, "only one of credentialName or credentialNames can be set")


def _check_ciphers(report: Report, tls: ServerTLSSettings, path: str) -> None:
    invalid, seen, duplicate = set(), set(), set()
    for suite in tls.cipher_suites:
        # Empty, ALL and expressions starting with an operator (`-`, `+`, `!`) are passed through.
        if suite and suite != "ALL" and suite[0].isalnum() and suite not in VALID_CIPHER_SUITES:
            invalid.add(suite)
        elif suite in seen:
            duplicate.add(suite)
        seen.add(suite)
    if invalid:
        report.warn(f"{path}.cipherSuites", f"ignoring invalid cipher suites: {sorted(invalid)}")
    if duplicate:
        report.warn(
            f"{path}.cipherSuites", f"ignoring duplicate cipher suites: {sorted(duplicate)}"
        )
