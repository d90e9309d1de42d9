"""Fixtures for istioctl tests: a fake istiod HTTP API (token and root) and test certificates.

`FakeIstiod` is a real HTTP server on 127.0.0.1 (an ephemeral port) in a thread, serving
`GET /v1/root-cert` and `POST /v1/token` as istiod does; each test sets what it answers and
reads back what it was asked.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Looks like a JWT (header.payload.signature); what matters is that it is never echoed.
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmUifQ.c2VjcmV0LXNpZ25hdHVyZQ"


@dataclass(frozen=True)
class Pki:
    """A certificate and its key, PEM."""

    cert_pem: str
    key_pem: str
    cert: x509.Certificate = field(repr=False)
    key: ec.EllipticCurvePrivateKey = field(repr=False)


def make_ca(common_name: str = "pyistio test root") -> Pki:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cluster.local"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pki(cert, key)


def make_server_cert(ca: Pki, dns_names: list[str]) -> Pki:
    """A serving certificate for `dns_names` (and 127.0.0.1), signed by `ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "istiod")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return _pki(cert, key)


def _pki(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pki:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return Pki(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem, cert, key)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeIstiod:
    """istiod's `/v1/root-cert` and `/v1/token`, answering what the test sets.

    By default: the root is `root_pem`; a token request gets 200 with TOKEN and the SPIFFE
    identity of the namespace/service account asked for. `token_answer` (status, body) or
    `root_answer` (status, body) override the answers.
    """

    url: str = ""
    root_pem: str = ""
    root_answer: tuple[int, bytes] | None = None
    token_answer: tuple[int, bytes] | None = None
    trust_domain: str = "cluster.local"
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def token_requests(self) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.path == "/v1/token"]

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        if method == "GET" and path == "/v1/root-cert":
            if self.root_answer is not None:
                return _split(self.root_answer, "text/plain")
            return 200, "text/plain", self.root_pem.encode()
        if method == "POST" and path == "/v1/token":
            if self.token_answer is not None:
                return _split(self.token_answer, "application/json")
            try:
                req = json.loads(body)
                ns, sa = req["namespace"], req["serviceAccount"]
            except (ValueError, KeyError, TypeError):
                return 400, "application/json", b'{"error": "bad request body"}'
            reply = {
                "token": TOKEN,
                "expiresAt": "2030-01-01T00:00:00Z",
                "identity": f"spiffe://{self.trust_domain}/ns/{ns}/sa/{sa}",
            }
            return 200, "application/json", json.dumps(reply).encode()
        return 404, "application/json", b'{"error": "not found"}'


def _split(answer: tuple[int, bytes], content_type: str) -> tuple[int, str, bytes]:
    return answer[0], content_type, answer[1]


def _handler(fake: FakeIstiod) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            with fake.lock:
                fake.requests.append(Recorded(self.command, self.path, headers, body))
            status, content_type, payload = fake.answer(self.command, self.path, body)
            self.send_response(status)
            if status in (301, 302, 307, 308):
                self.send_header("Location", f"{fake.url}/elsewhere")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


@pytest.fixture(scope="session")
def mesh_root() -> Pki:
    return make_ca()


@pytest.fixture
def fake_istiod(mesh_root: Pki) -> Iterator[FakeIstiod]:
    fake = FakeIstiod(root_pem=mesh_root.cert_pem)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-istiod", daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A 127.0.0.1 port held by a bound socket that does not listen: connects are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A 127.0.0.1 port that accepts connections (in the kernel) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()
