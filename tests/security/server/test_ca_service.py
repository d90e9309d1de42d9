"""The CSR API over a real grpc.aio server on loopback: tokens, client certificates, refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from google.protobuf.message import Message

from pkg.credentials import Credential
from pkg.monitoring import REGISTRY
from security import pki
from security.ca.authority import CertificateAuthority
from security.server.authenticate import (
    Authenticator,
    BearerTokenAuthenticator,
    ClientCertAuthenticator,
)
from security.server.ca_proto import request_fields, response_fields
from security.server.ca_service import (
    CREATE_CERTIFICATE,
    IstioCertificateRequest,
    IstioCertificateResponse,
    ca_grpc_handler,
)
from security.tokens import TokenIssuer
from tests.security.util import TRUST_DOMAIN, spiffe, webpki_verify_client


@dataclass
class Server:
    ca: CertificateAuthority
    issuer: TokenIssuer
    address: str


def _metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(f"{name}_total", labels or {}) or 0.0


async def _start(
    ca: CertificateAuthority,
    authenticators: Sequence[Authenticator],
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((ca_grpc_handler(ca, authenticators),))
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, port


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Server]:
    ca = CertificateAuthority.load_or_create(tmp_path / "state", TRUST_DOMAIN)
    issuer = TokenIssuer.load_or_create(tmp_path / "state")
    authenticators: list[Authenticator] = [
        ClientCertAuthenticator([TRUST_DOMAIN]),
        BearerTokenAuthenticator(issuer, TRUST_DOMAIN),
    ]
    server, port = await _start(ca, authenticators)
    try:
        yield Server(ca, issuer, f"127.0.0.1:{port}")
    finally:
        await server.stop(grace=0)


def _request(csr: bytes, validity: int = 0) -> Message:
    request = IstioCertificateRequest(csr=csr.decode(), validity_duration=validity)
    request_fields(request).metadata.update({"ClusterID": "Kubernetes"})
    return request


async def _call(channel: grpc.aio.Channel, request: Message, token: str | None = None) -> list[str]:
    method: grpc.aio.UnaryUnaryMultiCallable[Message, Message] = channel.unary_unary(
        CREATE_CERTIFICATE,
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=IstioCertificateResponse.FromString,
    )
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    response = await method(request, metadata=metadata, timeout=10)
    return list(response_fields(response).cert_chain)


def _csr(identity: str | None = None) -> bytes:
    return pki.build_csr(pki.generate_key(), [identity] if identity else [])


async def test_token_caller_gets_its_identity(served: Server) -> None:
    before = (_metric("citadel_server_csr_count"),
              _metric("citadel_server_success_cert_issuance_count"))  # fmt: skip
    token = served.issuer.issue("shop", "cart")
    async with grpc.aio.insecure_channel(served.address) as channel:
        chain = await _call(channel, _request(_csr(spiffe("shop", "cart")), 3600), token)
    assert len(chain) == 2 and all(pem.endswith("\n") for pem in chain)
    leaf, root = (x509.load_pem_x509_certificate(pem.encode()) for pem in chain)
    assert pki.uri_sans(leaf) == [spiffe("shop", "cart")]
    assert root == served.ca.root_cert
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=1, minutes=2)
    pki.verify_chain(chain[0], chain[1:-1], chain[-1])
    webpki_verify_client(leaf, [], served.ca.trust_bundle())
    assert _metric("citadel_server_csr_count") == before[0] + 1
    assert _metric("citadel_server_success_cert_issuance_count") == before[1] + 1


async def test_csr_without_sans_and_default_ttl(served: Server) -> None:
    async with grpc.aio.insecure_channel(served.address) as channel:
        chain = await _call(channel, _request(_csr()), served.issuer.issue("a", "b"))
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    assert pki.uri_sans(leaf) == [spiffe("a", "b")]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=24, minutes=2)


async def test_csr_naming_someone_else_is_refused(served: Server) -> None:
    token = served.issuer.issue("shop", "cart")
    async with grpc.aio.insecure_channel(served.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _call(channel, _request(_csr(spiffe("kube-system", "admin"))), token)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "spiffe://cluster.local/ns/kube-system/sa/admin" in str(raised.value.details())


@pytest.mark.parametrize("token", [None, "garbage"], ids=["no-token", "invalid-token"])
async def test_unauthenticated(served: Server, token: str | None) -> None:
    before = _metric("citadel_server_authentication_failure_count")
    async with grpc.aio.insecure_channel(served.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _call(channel, _request(_csr()), token)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.details().startswith("request authenticate failure: ")
    assert _metric("citadel_server_authentication_failure_count") == before + 1


async def test_token_from_another_issuer(served: Server, tmp_path: Path) -> None:
    stranger = TokenIssuer.load_or_create(tmp_path / "stranger")
    async with grpc.aio.insecure_channel(served.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _call(channel, _request(_csr()), stranger.issue("a", "b"))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("csr", "validity", "label", "reason"),
    [
        pytest.param(b"not a csr", 0, "CSR_ERROR", "invalid CSR", id="bad-csr"),
        pytest.param(None, 91 * 86400, "TTL_ERROR", "max allowed TTL", id="ttl-too-long"),
    ],
)
async def test_signing_errors_are_invalid_argument(
    served: Server, csr: bytes | None, validity: int, label: str, reason: str
) -> None:
    before = _metric("citadel_server_csr_sign_err_count", {"error": label})
    async with grpc.aio.insecure_channel(served.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _call(channel, _request(csr or _csr(), validity), served.issuer.issue("a", "b"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in str(raised.value.details())
    assert _metric("citadel_server_csr_sign_err_count", {"error": label}) == before + 1


async def test_client_certificate_over_tls(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "state", TRUST_DOMAIN)
    issuer = TokenIssuer.load_or_create(tmp_path / "state")
    serving = ca.serving_credential(["istiod.istio-system.svc"], ["127.0.0.1"])
    server_credentials = grpc.ssl_server_credentials(
        [(serving.key_pem, serving.cert_chain_pem)],
        root_certificates=ca.trust_bundle(),
        require_client_auth=True,
    )
    authenticators: list[Authenticator] = [
        ClientCertAuthenticator([TRUST_DOMAIN]),
        BearerTokenAuthenticator(issuer, TRUST_DOMAIN),
    ]
    server, port = await _start(ca, authenticators, server_credentials)
    client: Credential = ca.issue([spiffe("shop", "cart")])
    channel_credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.trust_bundle(),
        private_key=client.key_pem,
        certificate_chain=client.cert_chain_pem,
    )
    try:
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", channel_credentials) as channel:
            chain = await _call(channel, _request(_csr()))  # no token: the certificate is enough
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await _call(channel, _request(_csr(spiffe("other", "one"))))
    finally:
        await server.stop(grace=0)
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    assert pki.uri_sans(leaf) == [spiffe("shop", "cart")]
    assert leaf.serial_number != client.serial
    pki.verify_chain(chain[0], chain[1:-1], ca.trust_bundle())
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_messages_match_istios_wire_format() -> None:
    request = IstioCertificateRequest(csr="PEM", validity_duration=60)
    # field 1 (string) "PEM", field 3 (varint) 60 — as generated from istio/api ca.proto
    assert request.SerializeToString() == b"\x0a\x03PEM\x18\x3c"
    response = IstioCertificateResponse.FromString(b"\x0a\x01a\x0a\x01b")
    assert list(response_fields(response).cert_chain) == ["a", "b"]
    assert IstioCertificateRequest.DESCRIPTOR.full_name == "istio.v1.auth.IstioCertificateRequest"
