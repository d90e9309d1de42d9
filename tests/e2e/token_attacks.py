"""Bad tokens for the tokens-and-keys campaign (test_tokens_keys.py), and gRPC callers of a real
istiod's secure port: the CSR API and an ADS stream, each returning the call's outcome.

Every bad token is built from istiod's own signing key (read from its state directory) or a
stranger's, so each one is wrong in exactly one way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import struct_pb2

from pkg.xds import typeurls
from security.pki.certs import build_csr
from security.server.ca_service import CREATE_CERTIFICATE, IstioCertificateRequest
from security.tokens import TokenIssuer

ISTIOD_SAN = "istiod.istio-system.svc"


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    details: str
    response: Any = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def _shifted(delta: timedelta) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) + delta


def bad_tokens(state_dir: Path, stranger_dir: Path) -> dict[str, tuple[str, str]]:
    """case → (token, a fragment the refusal must name), for `default/sleep`."""
    own = TokenIssuer.load_or_create(state_dir)
    key = own._key
    good = own.issue("default", "sleep")
    claims = _claims(good)
    now = int(time.time())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head_body = _unsigned({"alg": "HS256", "typ": "JWT"}, claims)
    mac = hmac.new(public, head_body.encode(), hashlib.sha256).digest()
    stranger = TokenIssuer.load_or_create(stranger_dir)  # same issuer name, another key
    other_curve = ec.generate_private_key(ec.SECP256R1())
    return {
        "expired": (
            TokenIssuer.load_or_create(state_dir, clock=_shifted(-timedelta(hours=2))).issue(
                "default", "sleep", ttl=timedelta(hours=1)
            ),
            "expired",
        ),
        "nbf-in-future": (
            TokenIssuer.load_or_create(state_dir, clock=_shifted(timedelta(hours=1))).issue(
                "default", "sleep"
            ),
            "not valid before",
        ),
        "iat-in-future": (
            jwt.encode(claims | {"iat": now + 600, "nbf": now - 10}, key, algorithm="ES256"),
            "issued in the future",
        ),
        "exp-out-of-range": (
            jwt.encode(claims | {"exp": 1e300}, key, algorithm="ES256"),
            "not a valid time",
        ),
        "wrong-audience": (own.issue("default", "sleep", audience="not-istio"), "audience"),
        "wrong-key": (stranger.issue("default", "sleep"), "signature is invalid"),
        "wrong-key-same-kid": (
            jwt.encode(claims, other_curve, algorithm="ES256", headers={"kid": own.key_id}),
            "signature is invalid",
        ),
        "alg-none": (_unsigned({"alg": "none", "typ": "JWT"}, claims) + ".", "'none'"),
        "hs256-public-key": (f"{head_body}.{_b64(mac)}", "'HS256'"),
        "malformed": ("eyJhbGciOiJFUzI1NiJ9.not-json-at-all.c2ln", "malformed"),
        "garbage": ("definitely-not-a-jwt", "malformed"),
    }


def secure_channel(address: str, root_pem: bytes) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=root_pem)
    return grpc.secure_channel(
        address, credentials, options=[("grpc.ssl_target_name_override", ISTIOD_SAN)]
    )


def _auth(token: str | None) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")] if token is not None else []


def create_certificate(channel: grpc.Channel, token: str | None) -> Outcome:
    key = ec.generate_private_key(ec.SECP256R1())
    request = IstioCertificateRequest(csr=build_csr(key, []).decode(), validity_duration=3600)
    call = channel.unary_unary(
        CREATE_CERTIFICATE,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=lambda b: b,
    )
    try:
        response = call(request, metadata=_auth(token), timeout=10)
    except grpc.RpcError as err:
        return Outcome(err.code(), err.details() or "")
    return Outcome(grpc.StatusCode.OK, "", response)


def node(name: str, service_account: str) -> base_pb2.Node:
    metadata = struct_pb2.Struct()
    metadata.update({"NAMESPACE": "default", "SERVICE_ACCOUNT": service_account,
                     "INSTANCE_IPS": "127.0.77.1", "INTERCEPTION_MODE": "NONE"})  # fmt: skip
    return base_pb2.Node(id=f"sidecar~127.0.77.1~{name}.default~default.svc.cluster.local",
                         cluster=name, metadata=metadata)  # fmt: skip


class AdsStream:
    """An SDS subscription on the secure ADS port, kept open until `close`."""

    def __init__(self, channel: grpc.Channel, token: str | None, name: str, account: str) -> None:
        self._done = threading.Event()
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        request = discovery_pb2.DiscoveryRequest(
            node=node(name, account), type_url=typeurls.SECRET, resource_names=["default"]
        )
        self._responses = stub.StreamAggregatedResources(
            self._requests(request), metadata=_auth(token), timeout=30
        )

    def _requests(self, first: discovery_pb2.DiscoveryRequest) -> Iterator[Any]:
        yield first
        self._done.wait(30)  # keep the stream open (bounded)

    def first(self) -> Outcome:
        try:
            response = next(self._responses)
        except grpc.RpcError as err:
            return Outcome(err.code(), err.details() or "")
        return Outcome(grpc.StatusCode.OK, "", response)

    def close(self) -> None:
        self._done.set()
        self._responses.cancel()


def ads_outcome(channel: grpc.Channel, token: str | None, account: str = "sleep") -> Outcome:
    stream = AdsStream(channel, token, f"probe-{account}", account)
    try:
        return stream.first()
    finally:
        stream.close()
