"""istiod's secure side, in process: the token and root endpoints, authenticated ADS on the
secure port (identity from the token only), SDS certificates and their renewal, the CSR API,
and the root surviving a restart. Real gRPC over TLS on loopback; certificates checked with
`cryptography`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from aiohttp import ClientSession
from aiohttp.test_utils import make_mocked_request
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from pilot.bootstrap.options import parse_options
from pilot.bootstrap.security_http import SecurityHttp
from pilot.bootstrap.server import Istiod
from pilot.features import Features
from pkg.xds import typeurls
from security.pki.certs import build_csr
from security.server.ca_proto import response_fields
from security.server.ca_service import (
    CREATE_CERTIFICATE,
    IstioCertificateRequest,
    IstioCertificateResponse,
)
from tests.helpers.ads import AdsClient, node

SLEEP_ID = "spiffe://cluster.local/ns/default/sa/sleep"
ISTIOD_SAN = "istiod.istio-system.svc"


@dataclasses.dataclass
class Running:
    istiod: Istiod
    http: str
    secure: str
    plain: str
    root_pem: bytes

    async def token(self, namespace: str, account: str) -> str:
        async with ClientSession() as session:
            body = {"namespace": namespace, "serviceAccount": account}
            async with session.post(f"{self.http}/v1/token", json=body) as response:
                assert response.status == 200, await response.text()
                data = await response.json()
        token: str = data["token"]
        return token

    def secure_channel(self) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(root_certificates=self.root_pem)
        return grpc.aio.secure_channel(
            self.secure, credentials, options=[("grpc.ssl_target_name_override", ISTIOD_SAN)]
        )


async def start_istiod(state: Path, config: Path, **features: Any) -> Running:
    options = parse_options(
        [
            "--config-dir", str(config), "--state-dir", str(state),
            "--grpc-addr", "127.0.0.1:0", "--secure-grpc-addr", "127.0.0.1:0",
            "--http-addr", "127.0.0.1:0", "--monitoring-addr", "", "--webhook-addr", "",
        ]
    )  # fmt: skip
    istiod = Istiod(options, Features(debounce_after=0.01, **features))
    await istiod.start()
    http = f"http://{istiod.bound['http']}"
    async with ClientSession() as session, session.get(f"{http}/v1/root-cert") as response:
        assert response.status == 200
        root = await response.read()
    return Running(istiod, http, istiod.bound["secure-grpc"], istiod.bound["grpc"], root)


@pytest_asyncio.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    (tmp_path / "config").mkdir()
    r = await start_istiod(tmp_path / "state", tmp_path / "config")
    try:
        yield r
    finally:
        await r.istiod.stop()


def secrets_of(response: Any) -> dict[str, Any]:
    out = {}
    for resource in response.resources:
        secret = secret_pb2.Secret()
        resource.Unpack(secret)
        out[secret.name] = secret
    return out


def leaf_of(secret: Any) -> x509.Certificate:
    chain = secret.tls_certificate.certificate_chain.inline_bytes
    return x509.load_pem_x509_certificates(chain)[0]


def uri_sans(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


async def sds_client(r: Running, token: str | None, service_account: str = "sleep") -> AdsClient:
    metadata = [("authorization", f"Bearer {token}")] if token else []
    client = AdsClient("", channel=r.secure_channel(), metadata=metadata)
    await client.sotw(
        typeurls.SECRET,
        ["default", "ROOTCA"],
        node_=node("sleep-1.default", ip="127.0.40.1", service_account=service_account),
    )
    return client


# ---- tokens and root -----------------------------------------------------------------------


async def test_root_endpoint_serves_the_trust_bundle(running: Running) -> None:
    roots = x509.load_pem_x509_certificates(running.root_pem)
    assert len(roots) == 1
    assert roots[0].extensions.get_extension_for_class(x509.BasicConstraints).value.ca


async def test_token_endpoint_refuses_bad_names(running: Running) -> None:
    async with ClientSession() as session:
        body = {"namespace": "Default!", "serviceAccount": "sleep"}
        async with session.post(f"{running.http}/v1/token", json=body) as response:
            assert response.status == 400
            assert "namespace" in (await response.json())["error"]
        async with session.post(f"{running.http}/v1/token", data=b"not json") as response:
            assert response.status == 400


async def test_token_endpoint_refuses_remote_callers_without_admin_credential(
    running: Running,
) -> None:
    security = running.istiod.security
    assert security is not None
    handler = SecurityHttp(security)

    def remote(headers: dict[str, str]) -> Any:
        request = make_mocked_request(
            "POST", "/v1/token", headers=headers, transport=_Transport("10.1.2.3")
        )
        return request

    refused = await handler.token(remote({}))
    assert refused.status == 403
    workload = security.tokens.issue("default", "sleep")
    refused = await handler.token(remote({"Authorization": f"Bearer {workload}"}))
    assert refused.status == 403
    assert "root namespace" in json.loads(refused.text or "{}")["error"]


class _Transport:
    """Just enough of an asyncio transport for aiohttp to report a remote address."""

    def __init__(self, ip: str) -> None:
        self._ip = ip

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self._ip, 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


# ---- secure ADS ------------------------------------------------------------------------------


async def test_secure_stream_gets_the_token_identity_certificate(running: Running) -> None:
    client = await sds_client(running, await running.token("default", "sleep"))
    try:
        secrets = secrets_of(await client.recv())
    finally:
        await client.close()
    assert set(secrets) == {"default", "ROOTCA"}
    leaf = leaf_of(secrets["default"])
    assert uri_sans(leaf) == [SLEEP_ID]
    key = serialization.load_pem_private_key(
        secrets["default"].tls_certificate.private_key.inline_bytes, None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    bundle = secrets["ROOTCA"].validation_context.trusted_ca.inline_bytes
    assert bundle == running.root_pem


async def test_forged_service_account_is_refused(running: Running) -> None:
    # A token for sleep, node metadata claiming the admin service account.
    client = await sds_client(running, await running.token("default", "sleep"), "admin")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await client.recv()
    finally:
        await client.close()
    assert error.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "admin" in (error.value.details() or "")


async def test_missing_or_foreign_token_is_unauthenticated(running: Running) -> None:
    for token in (None, "not-a-jwt"):
        client = await sds_client(running, token)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await client.recv()
        finally:
            await client.close()
        assert error.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_plaintext_port_serves_no_keys(running: Running) -> None:
    client = AdsClient(running.plain)
    await client.sotw(
        typeurls.SECRET, ["default", "ROOTCA"], node_=node("sleep-1.default", ip="127.0.40.1")
    )
    try:
        response = await client.recv()
    finally:
        await client.close()
    assert set(secrets_of(response)) == {"ROOTCA"}  # the bundle is public; keys are not


async def test_certificate_renewed_and_pushed_before_expiry(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    r = await start_istiod(tmp_path / "state", tmp_path / "config", workload_cert_ttl=4.0)
    try:
        client = await sds_client(r, await r.token("default", "sleep"))
        response = await client.recv()
        first = secrets_of(response)
        await client.sotw(  # ACK, as Envoy does
            typeurls.SECRET,
            ["default", "ROOTCA"],
            version=response.version_info,
            nonce=response.nonce,
        )
        serial = leaf_of(first["default"]).serial_number
        # The push comes by itself once half of the 4 s lifetime is left.
        renewed = secrets_of(await client.recv(timeout=10))
        await client.close()
    finally:
        await r.istiod.stop()
    new_leaf = leaf_of(renewed["default"])
    assert new_leaf.serial_number != serial
    assert uri_sans(new_leaf) == [SLEEP_ID]


async def test_restart_keeps_the_root(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    first = await start_istiod(tmp_path / "state", tmp_path / "config")
    await first.istiod.stop()
    second = await start_istiod(tmp_path / "state", tmp_path / "config")
    try:
        assert second.root_pem == first.root_pem
        client = await sds_client(second, await second.token("default", "sleep"))
        leaf = leaf_of(secrets_of(await client.recv())["default"])
        await client.close()
        root = x509.load_pem_x509_certificate(first.root_pem)
        leaf.verify_directly_issued_by(root)
    finally:
        await second.istiod.stop()


# ---- CSR API ----------------------------------------------------------------------------------


async def test_csr_api_on_the_secure_port(running: Running) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = build_csr(key, [SLEEP_ID]).decode()
    request = IstioCertificateRequest(csr=csr, validity_duration=3600)
    token = await running.token("default", "sleep")
    async with running.secure_channel() as channel:
        call = channel.unary_unary(
            CREATE_CERTIFICATE,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=IstioCertificateResponse.FromString,
        )
        response = await call(request, metadata=(("authorization", f"Bearer {token}"),), timeout=10)
    pems = response_fields(response).cert_chain
    chain = [x509.load_pem_x509_certificate(pem.encode()) for pem in pems]
    assert uri_sans(chain[0]) == [SLEEP_ID]
    assert chain[-1] == x509.load_pem_x509_certificate(running.root_pem)
