"""Which TLS versions a server accepts, asked two ways.

1. `python_handshake`: Python's ssl with `maximum_version` pinned. The local OpenSSL may refuse
   to even offer TLS 1.0/1.1 (its security level, or a build without them): that is reported as
   `ProbeResult.CLIENT_CANNOT_OFFER`, not as a server refusal.
2. `raw_client_hello`: a hand-built ClientHello for a given protocol version, sent over a plain
   socket, and the first record the server answers with: a ServerHello (accepted) or an alert
   (refused, with its description; 70 = protocol_version). This does not depend on what the
   local OpenSSL is willing to send, so it is the proof; the TLS 1.2 hello is its control.
"""

from __future__ import annotations

import enum
import os
import socket
import ssl
import struct
import warnings
from dataclasses import dataclass

TLS1_1 = 0x0302
TLS1_2 = 0x0303
_HANDSHAKE = 0x16
_ALERT = 0x15
_SERVER_HELLO = 0x02
PROTOCOL_VERSION_ALERT = 70

# ECDHE-{ECDSA,RSA} with AES-GCM (TLS 1.2 only) and AES-CBC-SHA (valid in TLS 1.0-1.2).
_CIPHERS = (0xC02B, 0xC02F, 0xC009, 0xC013, 0xC00A, 0xC014, 0x002F, 0x0035)


class ProbeResult(enum.Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    CLIENT_CANNOT_OFFER = "client-cannot-offer"


@dataclass(frozen=True)
class Answer:
    accepted: bool
    record_type: int
    alert: int | None  # the alert description when refused with one


def _extension(kind: int, body: bytes) -> bytes:
    return struct.pack("!HH", kind, len(body)) + body


def client_hello(version: int, server_name: str) -> bytes:
    name = server_name.encode()
    sni = struct.pack("!HBH", len(name) + 3, 0, len(name)) + name
    groups = struct.pack("!H", 4) + struct.pack("!HH", 0x0017, 0x001D)  # P-256, X25519
    # ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256, ecdsa_sha1, rsa_pkcs1_sha1
    algorithms = (0x0403, 0x0804, 0x0401, 0x0203, 0x0201)
    signature_algorithms = struct.pack("!H", 2 * len(algorithms)) + b"".join(
        struct.pack("!H", a) for a in algorithms
    )
    extensions = (
        _extension(0x0000, sni)
        + _extension(0x000A, groups)
        + _extension(0x000B, b"\x01\x00")  # ec_point_formats: uncompressed
        + _extension(0x000D, signature_algorithms)
        + _extension(0x0010, b"\x00\x03\x02h2")  # ALPN h2, as gRPC clients send
    )
    ciphers = b"".join(struct.pack("!H", c) for c in _CIPHERS)
    body = (
        struct.pack("!H", version)
        + os.urandom(32)
        + b"\x00"  # no session id
        + struct.pack("!H", len(ciphers))
        + ciphers
        + b"\x01\x00"  # compression: null
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = struct.pack("!B", 1) + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", _HANDSHAKE, 0x0301, len(handshake)) + handshake


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def raw_client_hello(host: str, port: int, version: int, server_name: str) -> Answer:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(client_hello(version, server_name))
        header = _read_exact(sock, 5)
        if len(header) < 5:
            return Answer(False, -1, None)  # closed without a word: refused
        record_type, _, length = struct.unpack("!BHH", header)
        payload = _read_exact(sock, min(length, 16))
    if record_type == _ALERT and len(payload) >= 2:
        return Answer(False, record_type, payload[1])
    accepted = record_type == _HANDSHAKE and payload[:1] == bytes([_SERVER_HELLO])
    return Answer(accepted, record_type, None)


def python_handshake(
    host: str, port: int, maximum: ssl.TLSVersion, server_name: str
) -> tuple[ProbeResult, str]:
    """A handshake with Python's ssl capped at `maximum` (certificates not checked)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/TLSv1_1 are deprecated
        return _python_handshake(host, port, maximum, server_name)


def _python_handshake(
    host: str, port: int, maximum: ssl.TLSVersion, server_name: str
) -> tuple[ProbeResult, str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        context.minimum_version = min(maximum, ssl.TLSVersion.TLSv1)
        context.maximum_version = maximum
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError) as err:
        return ProbeResult.CLIENT_CANNOT_OFFER, str(err)
    try:
        with (
            socket.create_connection((host, port), timeout=5) as sock,
            context.wrap_socket(sock, server_hostname=server_name) as tls,
        ):
            return ProbeResult.ACCEPTED, str(tls.version())
    except ssl.SSLError as err:
        text = str(err)
        if "NO_PROTOCOLS_AVAILABLE" in text.upper() or "no protocols available" in text:
            return ProbeResult.CLIENT_CANNOT_OFFER, text
        return ProbeResult.REFUSED, text
    except OSError as err:  # reset by the server
        return ProbeResult.REFUSED, str(err)
