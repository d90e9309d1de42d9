from __future__ import annotations

import pytest

from tests.pkg.config.support import assert_rejected, assert_valid, warnings_of


def gw(body: str, name: str = "gw") -> str:
    head = f"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\nspec:\n"
    return head + "".join(f"  {line}\n" for line in body.strip("\n").splitlines())


def sidecar(body: str) -> str:
    head = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: sc}\nspec:\n"
    return head + "".join(f"  {line}\n" for line in body.strip("\n").splitlines())


HTTP_SERVER = "- port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['*']"


def test_valid_gateway() -> None:
    config = assert_valid(
        gw(
            """
selector: {istio: ingressgateway}
servers:
- port: {number: 80, name: http, protocol: HTTP}
  hosts: ["bookinfo/*.example.com", "*"]
  tls: {httpsRedirect: true}
- port: {number: 443, name: https, protocol: HTTPS}
  hosts: ["*.example.com"]
  tls: {mode: SIMPLE, credentialName: example-cert, minProtocolVersion: TLSV1_2}
- port: {number: 15443, name: tls, protocol: TLS}
  hosts: ["*.local"]
  tls: {mode: AUTO_PASSTHROUGH}
"""
        )
    )
    assert config.spec.servers[1].tls.credential_name == "example-cert"


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        ("selector: {a: b}", "spec.servers", "at least one server"),
        ("servers:\n- hosts: ['*']", "spec.servers[0].port", "Required value"),
        (
            "servers:\n- port: {number: 80, name: http}\n  hosts: ['*']",
            "spec.servers[0].port.protocol",
            "Required",
        ),
        (
            "servers:\n- port: {number: 80, name: http, protocol: FOO}\n  hosts: ['*']",
            "spec.servers[0].port.protocol",
            "invalid protocol",
        ),
        (
            "servers:\n- port: {number: 0, name: http, protocol: HTTP}\n  hosts: ['*']",
            "spec.servers[0].port.number",
            "1..65535",
        ),
        (
            "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: []",
            "spec.servers[0].hosts",
            "at least one host",
        ),
        (
            "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [foo]",
            "spec.servers[0].hosts[0]",
            "short names",
        ),
        (
            "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['a*.com']",
            "spec.servers[0].hosts[0]",
            "partial wildcard",
        ),
        (
            "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']",
            "spec.servers[0].tls",
            "must have TLS settings",
        ),
        (
            "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n  "
            "tls: {mode: SIMPLE}",
            "spec.servers[0].tls.serverCertificate",
            "requires a server certificate",
        ),
        (
            "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
            "  tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k}",
            "spec.servers[0].tls.caCertificates",
            "client CA bundle",
        ),
        (
            "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
            "  tls: {mode: ISTIO_MUTUAL, credentialName: c}",
            "spec.servers[0].tls.credentialName",
            "ISTIO_MUTUAL TLS cannot have",
        ),
        (
            "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
            "  tls: {mode: SIMPLE, credentialName: a, credentialNames: [b]}",
            "spec.servers[0].tls",
            "only one of credentialName or credentialNames",
        ),
        (
            "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
            "  tls: {mode: SIMPLE, credentialNames: [a, b, c]}",
            "spec.servers[0].tls.credentialNames",
            "at most 2 items",
        ),
        (
            "servers:\n- port: {number: 81, name: tcp, protocol: TCP}\n  hosts: ['*']\n  tls: "
            "{mode: SIMPLE}",
            "spec.servers[0].tls",
            "non HTTPS/TLS ports",
        ),
        (
            f"servers:\n{HTTP_SERVER}\n- port: {{number: 81, name: http, protocol: HTTP}}\n  "
            f"hosts: ['*']",
            "spec.servers[1].port.name",
            "must be unique",
        ),
        (
            "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['*']\n  bind: "
            "not-an-ip",
            "spec.servers[0].bind",
            "not a valid IP",
        ),
    ],
)
def test_gateway_rules(body: str, path: str, fragment: str) -> None:
    assert_rejected(gw(body), path, fragment)


def test_gateway_names_are_dns_labels() -> None:
    assert_rejected(
        gw(f"servers:\n{HTTP_SERVER}", name="my.gateway"), "metadata.name", "gateway name"
    )


def test_https_redirect_on_a_non_http_server_is_a_warning() -> None:
    plain = "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['*']\n"
    assert warnings_of(gw(plain + "  tls: {httpsRedirect: true}")) == []
    secure = (
        "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
        "  tls: {httpsRedirect: true, mode: SIMPLE, credentialName: cert}"
    )
    assert warnings_of(gw(secure)) == [
        (
            "spec.servers[0].tls.httpsRedirect",
            "tls.httpsRedirect should only be used with http servers",
        )
    ]


def test_valid_sidecar() -> None:
    assert_valid(
        sidecar(
            """
workloadSelector: {labels: {app: ratings}}
ingress:
- port: {number: 9080, protocol: HTTP, name: somename}
  defaultEndpoint: 127.0.0.1:8080
  captureMode: NONE
egress:
- port: {number: 3306, protocol: MYSQL, name: mysql}
  bind: 127.0.0.1
  hosts: ["*/mysql.foo.com"]
- hosts: ["./*", "istio-system/*", "~/excluded.com"]
outboundTrafficPolicy:
  mode: ALLOW_ANY
  egressProxy: {host: proxy.example.com, port: {number: 3128}}
"""
        )
    )


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        ("workloadSelector: {labels: {app: a}}", "spec", "empty configuration"),
        ("egress:\n- hosts: [foo.com]", "spec.egress[0].hosts[0]", "namespace/dnsName"),
        ("egress:\n- port: {number: 80}", "spec.egress[0].hosts", "Required value"),
        (
            "egress:\n- hosts: ['*/*']\n- hosts: ['a/b.com']",
            "spec.egress[0].port",
            "should be the last listener",
        ),
        (
            "egress:\n- port: {number: 0, protocol: HTTP}\n  bind: 127.0.0.1\n  hosts: ['*/*']",
            "spec.egress[0].bind",
            "unix domain socket",
        ),
        (
            "egress:\n- port: {number: 80, protocol: HTTP}\n  hosts: ['*/*']\n"
            "- port: {number: 80, protocol: HTTP}\n  hosts: ['*/*']",
            "spec.egress[1].port.number",
            "must be unique",
        ),
        ("ingress:\n- bind: 127.0.0.1", "spec.ingress[0].port", "Required value"),
        (
            "ingress:\n- port: {number: 80, protocol: HTTP}\n  defaultEndpoint: 10.0.0.1:80",
            "spec.ingress[0].defaultEndpoint",
            "must be of form",
        ),
        (
            "ingress:\n- port: {number: 80, protocol: HTTP}\n  tls: {mode: ISTIO_MUTUAL}",
            "spec.ingress[0].tls.mode",
            "cannot set mode",
        ),
        (
            "ingress:\n- port: {number: 80, protocol: BOGUS, name: p}",
            "spec.ingress[0].port.protocol",
            "unsupported protocol",
        ),
        (
            "outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: p.com, port: "
            "{number: 1}}}",
            "spec.outboundTrafficPolicy.egressProxy",
            "only with ALLOW_ANY",
        ),
        (
            "workloadSelector: {labels: {'*': a}}\negress:\n- hosts: ['*/*']",
            "spec.workloadSelector.labels",
            "wildcard",
        ),
    ],
)
def test_sidecar_rules(body: str, path: str, fragment: str) -> None:
    assert_rejected(sidecar(body), path, fragment)
