"""SDS generator: who gets which secret. Keys only for proven identities, namespace secrets only
in the proxy's own namespace, the trust bundle for everyone."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from pkg.xds import typeurls
from security.ca.authority import CertificateAuthority
from security.ca.source import WorkloadCredentials
from tests.helpers.xds import FakeDiscovery, ProxySpec, decode_any

GATEWAY_CERT = b"-----BEGIN CERTIFICATE-----\ngateway\n-----END CERTIFICATE-----\n"
GATEWAY_KEY = b"-----BEGIN PRIVATE KEY-----\ngateway\n-----END PRIVATE KEY-----\n"
CLIENT_CA = b"-----BEGIN CERTIFICATE-----\nclient-ca\n-----END CERTIFICATE-----\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SECRETS = f"""
apiVersion: v1
kind: Secret
metadata: {{name: gw-cert, namespace: istio-system}}
type: kubernetes.io/tls
data: {{tls.crt: {_b64(GATEWAY_CERT)}, tls.key: {_b64(GATEWAY_KEY)}, ca.crt: {_b64(CLIENT_CA)}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: other-cert, namespace: default}}
type: kubernetes.io/tls
stringData: {{tls.crt: "x", tls.key: "y"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: client-ca, namespace: istio-system}}
stringData: {{ca.crt: "ca-only"}}
"""

GATEWAY = ProxySpec(type="router", ip="10.0.0.9", name="ingress-1.istio-system",
                    service_account="gateway", authenticated=True)  # fmt: skip


@pytest.fixture
def discovery(tmp_path: Path) -> FakeDiscovery:
    ca = CertificateAuthority.load_or_create(tmp_path / "state", "cluster.local")
    return FakeDiscovery(SECRETS, credentials=WorkloadCredentials(ca))


def secrets(discovery: FakeDiscovery, spec: ProxySpec, *names: str) -> dict[str, Any]:
    built = discovery.generate(discovery.view(spec), typeurls.SECRET, names)
    out: dict[str, Any] = {}
    for resource in built:
        secret = decode_any(resource.unpack())
        assert isinstance(secret, secret_pb2.Secret)
        out[resource.name] = secret
    return out


def test_default_is_the_proven_identity_and_rootca_the_bundle(discovery: FakeDiscovery) -> None:
    spec = ProxySpec(name="sleep-1.default", service_account="sleep", authenticated=True)
    got = secrets(discovery, spec, "default", "ROOTCA")
    chain = got["default"].tls_certificate.certificate_chain.inline_bytes
    leaf = x509.load_pem_x509_certificates(chain)[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/default/sa/sleep"
    ]
    assert got["ROOTCA"].validation_context.trusted_ca.inline_bytes.startswith(b"-----BEGIN")


def test_unauthenticated_proxy_gets_no_keys(discovery: FakeDiscovery) -> None:
    spec = ProxySpec(name="sleep-1.default", service_account="sleep")
    assert set(secrets(discovery, spec, "default", "ROOTCA", "kubernetes://other-cert")) == {
        "ROOTCA"
    }


def test_credential_name_secrets_from_the_proxy_namespace(discovery: FakeDiscovery) -> None:
    got = secrets(discovery, GATEWAY, "kubernetes://gw-cert", "kubernetes://gw-cert-cacert")
    tls = got["kubernetes://gw-cert"].tls_certificate
    assert tls.certificate_chain.inline_bytes == GATEWAY_CERT
    assert tls.private_key.inline_bytes == GATEWAY_KEY
    ca = got["kubernetes://gw-cert-cacert"].validation_context.trusted_ca.inline_bytes
    assert ca == CLIENT_CA


def test_other_namespaces_secrets_are_not_served(discovery: FakeDiscovery) -> None:
    # other-cert lives in default; the gateway is in istio-system, by name or by ns/name.
    names = ("kubernetes://other-cert", "kubernetes://default/other-cert", "kubernetes://nope")
    assert secrets(discovery, GATEWAY, *names) == {}


def test_string_data_secrets(discovery: FakeDiscovery) -> None:
    spec = ProxySpec(name="app-1.default", service_account="app", authenticated=True)
    got = secrets(discovery, spec, "kubernetes://other-cert")
    assert got["kubernetes://other-cert"].tls_certificate.private_key.inline_bytes == b"y"


def test_ca_only_secret_is_a_validation_context(discovery: FakeDiscovery) -> None:
    got = secrets(discovery, GATEWAY, "kubernetes://client-ca")
    assert got["kubernetes://client-ca"].validation_context.trusted_ca.inline_bytes == b"ca-only"
