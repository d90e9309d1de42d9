"""Who called a gRPC method: its text metadata and the URI SANs of its verified certificate.

Shared by the secure xDS server and the CSR service. gRPC Python only asks for a client
certificate when it also requires and verifies one, so a certificate found in the auth context
has been verified against the server's trust roots.
"""

from __future__ import annotations

from typing import Any

import grpc
from cryptography import x509


def request_metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    """The call's text metadata, keys lower-cased (binary `-bin` entries are left out)."""
    metadata: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            metadata.setdefault(key.lower(), value)
    return metadata


def _uri_sans(pem: bytes) -> list[str]:
    try:
        cert = x509.load_pem_x509_certificate(pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def peer_uris(context: grpc.aio.ServicerContext[Any, Any]) -> list[str]:
    """URI SANs of the peer's verified TLS certificate ([] on plaintext or without one)."""
    for pem in context.auth_context().get("x509_pem_cert", ()):
        return _uri_sans(pem if isinstance(pem, bytes) else str(pem).encode())
    return []
