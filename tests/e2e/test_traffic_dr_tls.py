"""DestinationRule TLS origination through real Envoy: a plaintext client sidecar (NONE mode)
calls services whose backends speak TLS only.

- SIMPLE with `caCertificates`: Envoy verifies the backend against that CA, sends the Host as
  SNI (auto SNI) and checks the certificate names it (auto SAN validation);
- MUTUAL with `clientCertificate` / `privateKey` files and an explicit `sni`: the backend,
  which requires a client certificate, sees Envoy's;
- SIMPLE against a CA that did not sign the backend: the handshake fails (503);
- DISABLE: plaintext to a TLS backend fails too.
"""

from __future__ import annotations

import datetime
import ssl
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from istioctl.bootstrap import BootstrapOptions

from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import SERVICE_PORT, join_docs, proxy_key, wait_synced, write_config
from .net import allocate_ip
from .traffic import BACKEND_HEADER, request

NS = "default"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Pki:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate

    @classmethod
    def create(cls, cn: str) -> Pki:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        ca = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, ca)

    def issue(self, cn: str, dns: str, usage: x509.ObjectIdentifier) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) for `cn`, with DNS SAN `dns`, signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem

    def ca_pem(self) -> bytes:
        return self.ca.public_bytes(serialization.Encoding.PEM)


class TlsBackend:
    """HTTPS server answering with its name, the SNI it was offered and the client
    certificate's CN (when `client_ca` makes it require one)."""

    def __init__(self, name: str, cert: Path, key: Path, client_ca: Path | None = None) -> None:
        self.name = name
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
        self.sni: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

        def remember_sni(sock: Any, name: str | None, _: Any) -> None:
            self.sni[sock] = name or ""

        context.sni_callback = remember_sni
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                sock: Any = self.connection
                peer = sock.getpeercert() or {}
                subject = dict(item[0] for item in peer.get("subject", ()))
                self.send_response(200)
                self.send_header(BACKEND_HEADER, backend.name)
                self.send_header("x-sni", backend.sni.get(sock, ""))
                self.send_header("x-client-cn", subject.get("commonName", ""))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((allocate_ip(), 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.ip: str = self.server.server_address[0]
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _doc(kind: str, name: str, spec: dict[str, Any]) -> str:
    meta = {"name": name, "namespace": NS}
    return yaml.safe_dump(
        {"apiVersion": "networking.istio.io/v1", "kind": kind, "metadata": meta, "spec": spec}
    )


def _service(name: str, backend: TlsBackend, tls: dict[str, Any]) -> list[str]:
    host = f"{name}.{NS}.svc.cluster.local"
    entry = {
        "hosts": [host],
        "location": "MESH_EXTERNAL",
        "resolution": "STATIC",
        "ports": [{"number": SERVICE_PORT, "name": "http", "protocol": "HTTP"}],
        "endpoints": [{"address": backend.ip, "ports": {"http": backend.port}}],
    }
    rule = {"host": host, "trafficPolicy": {"tls": tls}}
    return [_doc("ServiceEntry", name, entry), _doc("DestinationRule", name, rule)]


@dataclass
class TlsMesh:
    ip: str

    def get(self, service: str) -> Any:
        return request(self.ip, SERVICE_PORT, host=f"{service}.{NS}.svc.cluster.local")


@pytest.fixture(scope="module")
def tls_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMesh]:
    root = tmp_path_factory.mktemp("traffic-dr-tls")
    pki, other = Pki.create("backend CA"), Pki.create("unrelated CA")
    files: dict[str, Path] = {}

    def save(name: str, data: bytes) -> Path:
        files[name] = root / name
        files[name].write_bytes(data)
        return files[name]

    server = ExtendedKeyUsageOID.SERVER_AUTH
    secure = pki.issue("secure", f"secure.{NS}.svc.cluster.local", server)
    partner = pki.issue("partner", "api.partner.example.com", server)
    client = pki.issue("envoy-client", "client.example.com", ExtendedKeyUsageOID.CLIENT_AUTH)
    save("ca.pem", pki.ca_pem())
    save("other-ca.pem", other.ca_pem())
    save("client.pem", client[0])
    save("client-key.pem", client[1])
    backends = [
        TlsBackend("secure-1", save("secure.pem", secure[0]), save("secure-key.pem", secure[1])),
        TlsBackend(
            "partner-1",
            save("partner.pem", partner[0]),
            save("partner-key.pem", partner[1]),
            client_ca=files["ca.pem"],
        ),
    ]
    simple = {"mode": "SIMPLE", "caCertificates": str(files["ca.pem"])}
    docs = [
        *_service("secure", backends[0], simple),
        *_service("wrongca", backends[0], {**simple, "caCertificates": str(files["other-ca.pem"])}),
        *_service("plain", backends[0], {"mode": "DISABLE"}),
        *_service(
            "partner",
            backends[1],
            {
                "mode": "MUTUAL",
                "clientCertificate": str(files["client.pem"]),
                "privateKey": str(files["client-key.pem"]),
                "caCertificates": str(files["ca.pem"]),
                "sni": "api.partner.example.com",
                "subjectAltNames": ["api.partner.example.com"],
            },
        ),
    ]
    config = root / "config"
    config.mkdir()
    write_config(config, "services.yaml", join_docs(*docs))
    istiod: IstiodProcess | None = None
    envoy: EnvoyProcess | None = None
    try:
        istiod = IstiodProcess(root / "istiod", config_dirs=[config]).start()
        ip = allocate_ip()
        opts = BootstrapOptions(
            name="tls-client",
            namespace=NS,
            proxy_type="sidecar",
            ip=ip,
            labels={"app": "tls-client"},
            interception_mode="NONE",
            insecure=True,
            istiod=istiod.grpc_addr,
        )
        envoy = EnvoyProcess.for_proxy(opts, root / "envoy").start()
        envoy.wait_live(15.0)
        wait_synced(istiod, proxy_key(opts), timeout=15.0)
        yield TlsMesh(ip)
    finally:
        if envoy is not None:
            envoy.stop()
        if istiod is not None:
            istiod.stop()
        for backend in backends:
            backend.stop()


def test_simple_tls_verifies_the_backend_with_auto_sni(tls_mesh: TlsMesh) -> None:
    resp = tls_mesh.get("secure")
    assert resp.status == 200, resp
    assert resp.headers[BACKEND_HEADER] == "secure-1"
    assert resp.headers["x-sni"] == f"secure.{NS}.svc.cluster.local"  # the Host, as SNI
    assert resp.headers["x-client-cn"] == ""


def test_mutual_tls_presents_the_client_certificate_files(tls_mesh: TlsMesh) -> None:
    resp = tls_mesh.get("partner")
    assert resp.status == 200, resp
    assert resp.headers["x-sni"] == "api.partner.example.com"
    assert resp.headers["x-client-cn"] == "envoy-client"


def test_untrusted_backend_and_plaintext_fail(tls_mesh: TlsMesh) -> None:
    assert tls_mesh.get("wrongca").status == 503
    assert tls_mesh.get("plain").status in (502, 503)
