"""A TLS server with a certificate of its own, and a client that checks whose certificate it got.

`TlsBackend(name, ip, host)` serves TLS on `ip:port` with a fresh self-signed certificate for
`host` (EC P-256, SAN DNS:host), answers one HTTP/1.1 request per connection with its name
(`x-backend` header and body), and counts connections that completed a handshake. Tests
that pass TLS through a proxy use `tls_get` to prove the client ended its handshake with this
very server: the chain is verified against that one certificate, for the SNI asked.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import socketserver
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(host: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a self-signed certificate for `host`."""
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    backend: TlsBackend


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        backend = self.server.backend
        raw: socket.socket = self.request
        raw.settimeout(5.0)
        try:
            with backend.context.wrap_socket(raw, server_side=True) as tls:
                backend.handshake_done()
                data = b""
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                body = backend.name.encode()
                tls.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    + f"x-backend: {backend.name}\r\nContent-Length: {len(body)}\r\n".encode()
                    + b"Connection: close\r\n\r\n"
                    + body
                )
        except (OSError, ssl.SSLError):
            pass


class TlsBackend:
    def __init__(self, name: str, ip: str, host: str, port: int = 0) -> None:
        self.name = name
        self.ip = ip
        self.host = host
        self.certificate_pem, key_pem = self_signed(host)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:
            cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert_file.write_bytes(self.certificate_pem)
            key_file.write_bytes(key_pem)
            self.context.load_cert_chain(cert_file, key_file)
        self._requested_port = port
        self._lock = threading.Lock()
        self._handshakes = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def certificate_der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.certificate_pem.decode())

    def start(self) -> TlsBackend:
        server = _Server((self.ip, self._requested_port), _Handler)
        server.backend = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.name = f"tls-backend-{self.name}"
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"TLS backend {self.name} is not started")
        port: int = self._server.server_address[1]
        return port

    def handshake_done(self) -> None:
        with self._lock:
            self._handshakes += 1

    @property
    def handshakes(self) -> int:
        with self._lock:
            return self._handshakes

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)


@dataclass(frozen=True)
class TlsReply:
    peer_certificate: bytes  # DER, as the client received it
    body: str


def tls_get(ip: str, port: int, sni: str, trusted_pem: bytes, *, timeout: float = 2.0) -> TlsReply:
    """Connect to ip:port with SNI `sni`, verify the server's chain against `trusted_pem`
    (and the name), send one GET, return the certificate seen and the response body."""
    context = ssl.create_default_context(cadata=trusted_pem.decode())
    with (
        socket.create_connection((ip, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        peer = tls.getpeercert(binary_form=True)
        assert peer is not None
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        with contextlib.suppress(ssl.SSLZeroReturnError, ConnectionResetError):
            while chunk := tls.recv(4096):
                chunks.append(chunk)
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"unexpected response from {sni} via {ip}:{port}: {head!r}")
    return TlsReply(peer, body.decode())
