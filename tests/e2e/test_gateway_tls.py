"""An ingress gateway terminating TLS with a credentialName certificate, with real Envoy.

istiod (standalone) watches a config dir holding a `kubernetes.io/tls` Secret `bookinfo-cert`
in istio-system (a server certificate for bookinfo.example.com signed by this test's CA), a
Gateway with an HTTPS SIMPLE server on 8443 using it (plus an HTTP server on 8080 that
redirects to HTTPS) and a VirtualService routing to productpage. The gateway Envoy connects
over the secure xDS port with a token for its service account, so istiod serves it the Secret
over SDS as `kubernetes://bookinfo-cert`. A real TLS client then talks HTTPS to the gateway.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import socket
import ssl
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from istioctl.bootstrap import build_bootstrap

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import Bookinfo, gateway_options, join_docs, write_config
from .net import wait_until
from .traffic import BACKEND_HEADER, Response, request

HOST = "bookinfo.example.com"
HTTPS_PORT = 8443
HTTP_PORT = 8080
NAMESPACE = "istio-system"
SERVICE_ACCOUNT = "istio-ingressgateway-service-account"
ISTIOD_SAN = "istiod.istio-system.svc"  # the name on istiod's serving certificate

GATEWAY = f"""
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {{name: bookinfo-gateway, namespace: {NAMESPACE}}}
    spec:
      selector: {{istio: ingressgateway}}
      servers:
      - port: {{number: {HTTPS_PORT}, name: https, protocol: HTTPS}}
        hosts: [{HOST}]
        tls: {{mode: SIMPLE, credentialName: bookinfo-cert}}
      - port: {{number: {HTTP_PORT}, name: http, protocol: HTTP}}
        hosts: [{HOST}]
        tls: {{httpsRedirect: true}}
    """

VIRTUAL_SERVICE = f"""
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {{name: bookinfo, namespace: default}}
    spec:
      hosts: [{HOST}]
      gateways: [{NAMESPACE}/bookinfo-gateway]
      http:
      - route:
        - destination: {{host: productpage, port: {{number: 9080}}}}
    """


# -- certificates ----------------------------------------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def make_certificates(host: str) -> tuple[bytes, bytes, bytes]:
    """(CA certificate, server certificate for `host` signed by it, server key), PEM."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyistio gateway test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return ca.public_bytes(pem), cert.public_bytes(pem), _pem_key(key)


def tls_secret(name: str, namespace: str, cert: bytes, key: bytes) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"""
    apiVersion: v1
    kind: Secret
    metadata: {{name: {name}, namespace: {namespace}}}
    type: kubernetes.io/tls
    data:
      tls.crt: {b64(cert)}
      tls.key: {b64(key)}
    """


# -- a secure gateway bootstrap -----------------------------------------------------------------


def _http_json(url: str, payload: dict[str, Any] | None = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5.0) as resp:
        body = resp.read()
    return body if payload is None else json.loads(body)


def secure_gateway_bootstrap(istiod: IstiodProcess, ip: str) -> dict[str, Any]:
    """`istioctl bootstrap --type router`'s bootstrap, made secure: ADS over TLS to istiod's
    secure-grpc port (istiod verified against the mesh root) with the gateway's bearer token."""
    opts = gateway_options(istiod, "istio-ingressgateway", ip, "delta", namespace=NAMESPACE)
    opts = replace(opts, service_account=SERVICE_ACCOUNT, admin_port=0)
    bootstrap = build_bootstrap(replace(opts, istiod=istiod.secure_grpc_addr))
    root = _http_json(f"{istiod.http_url}/v1/root-cert").decode()
    token = _http_json(
        f"{istiod.http_url}/v1/token", {"namespace": NAMESPACE, "serviceAccount": SERVICE_ACCOUNT}
    )["token"]
    [xds] = bootstrap["static_resources"]["clusters"]
    xds["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3"
            ".UpstreamTlsContext",
            "sni": ISTIOD_SAN,
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "validation_context": {
                    "trusted_ca": {"inline_string": root},
                    "match_typed_subject_alt_names": [
                        {"san_type": "DNS", "matcher": {"exact": ISTIOD_SAN}}
                    ],
                },
            },
        },
    }
    [grpc_service] = bootstrap["dynamic_resources"]["ads_config"]["grpc_services"]
    grpc_service["initial_metadata"] = [{"key": "authorization", "value": f"Bearer {token}"}]
    return bootstrap


# -- a TLS client ----------------------------------------------------------------------------


def https_request(ip: str, port: int, sni: str, ca_pem: bytes, path: str = "/") -> Response:
    """GET `path` over TLS to ip:port with this SNI (and Host), trusting only `ca_pem`; the
    certificate must name `sni`."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.set_alpn_protocols(["http/1.1"])
    with (
        socket.create_connection((ip, port), timeout=2.0) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        conn = http.client.HTTPConnection(sni, port, timeout=2.0)
        conn.sock = tls  # already connected: the request goes over this TLS socket
        conn.request("GET", path, headers={"Host": sni})
        resp = conn.getresponse()
        body = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return Response(resp.status, body, headers)


def test_gateway_terminates_tls_with_credential_name_secret(
    tmp_path: Path,
    istiod_factory: Callable[..., IstiodProcess],
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
    loopback_ip: str,
) -> None:
    ca_pem, cert_pem, key_pem = make_certificates(HOST)
    app = Bookinfo.start(backend_factory, ("productpage-v1",))
    config = tmp_path / "config"
    config.mkdir()
    write_config(config, "productpage.yaml", app.kube_service("productpage"))
    secret = tls_secret("bookinfo-cert", NAMESPACE, cert_pem, key_pem)
    write_config(config, "bookinfo-cert.yaml", secret)
    write_config(config, "gateway.yaml", join_docs(GATEWAY, VIRTUAL_SERVICE))
    istiod = istiod_factory(config, required=("grpc", "secure-grpc", "http"))

    gw = loopback_ip
    # LIVE only once the 8443 listener has warmed, i.e. holds the secret from SDS.
    gateway = envoy_factory(secure_gateway_bootstrap(istiod, gw), name="gateway", live_timeout=15.0)

    def through_gateway() -> Response | None:
        resp = https_request(gw, HTTPS_PORT, HOST, ca_pem, "/productpage")
        return resp if resp.status == 200 else None

    resp = wait_until(through_gateway, 10.0, 0.05, "HTTPS through the gateway → productpage")
    assert resp is not None
    assert resp.headers[BACKEND_HEADER] == "productpage-v1"
    assert resp.json()["path"] == "/productpage"
    assert resp.json()["host"] == HOST
    secrets = gateway.config_dump(resource="dynamic_active_secrets")
    assert "kubernetes://bookinfo-cert" in {e.get("name") for e in secrets.get("configs", [])}

    # Another SNI matches no filter chain: Envoy closes the connection during the handshake.
    stat = f"listener.{gw}_{HTTPS_PORT}.no_filter_chain_match"
    before = gateway.stat(stat) or 0
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_request(gw, HTTPS_PORT, "other.example.com", ca_pem)
    gateway.wait_for(lambda: (gateway.stat(stat) or 0) > before, 5.0, f"{stat} > {before}")

    # Plain-text HTTP on the redirecting server: 301 to https.
    redirect = request(gw, HTTP_PORT, path="/productpage", host=HOST)
    assert redirect.status == 301, redirect
    assert redirect.headers["location"].startswith(f"https://{HOST}"), redirect.headers
