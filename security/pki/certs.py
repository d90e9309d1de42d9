"""Certificates and CSRs: PEM encoding and decoding, subject alternative names, building a CSR.

Identities become SANs the way Istio's `BuildSubjectAltNameExtension` does it: a value with a
scheme (`spiffe://…`) is a URI, a literal IP address is an IP, anything else is a DNS name.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from pkg.errors import CAError
from security.pki.keys import signature_hash

_PEM_CERT_BEGIN = b"-----BEGIN CERTIFICATE-----"

SERIAL_LIMIT = 1 << 128  # Istio: random serial numbers below 2^128


def random_serial() -> int:
    """A random positive serial number below 2^128."""
    return secrets.randbelow(SERIAL_LIMIT - 1) + 1


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


def encode_cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def encode_certs_pem(certs: Iterable[x509.Certificate]) -> bytes:
    return b"".join(encode_cert_pem(cert) for cert in certs)


def decode_certs_pem(data: bytes | str, *, what: str = "certificate") -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (at least one); CAError naming `what` otherwise."""
    raw = _as_bytes(data)
    if _PEM_CERT_BEGIN not in raw:
        raise CAError(f"{what}: no PEM certificate found")
    try:
        return x509.load_pem_x509_certificates(raw)
    except ValueError as exc:
        raise CAError(f"{what}: invalid PEM certificate: {exc}") from exc


def decode_cert_pem(data: bytes | str, *, what: str = "certificate") -> x509.Certificate:
    """The first certificate of a PEM bundle."""
    return decode_certs_pem(data, what=what)[0]


def split_certs_pem(data: bytes | str) -> list[bytes]:
    """A PEM bundle as one PEM (ending in a newline) per certificate."""
    return [encode_cert_pem(cert) for cert in decode_certs_pem(data)]


def decode_csr_pem(data: bytes | str) -> x509.CertificateSigningRequest:
    """A PEM CSR whose signature verifies; CAError with the reason otherwise."""
    raw = _as_bytes(data)
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in raw:
        raise CAError("CSR is not a PEM certificate request")
    try:
        csr = x509.load_pem_x509_csr(raw)
    except ValueError as exc:
        raise CAError(f"CSR cannot be parsed: {exc}") from exc
    if not csr.is_signature_valid:
        raise CAError("CSR signature is invalid")
    return csr


def general_name(identity: str) -> x509.GeneralName:
    """URI for `scheme://…`, IP for an address, DNS otherwise (Istio's rule)."""
    if not identity or identity != identity.strip():
        raise CAError(f"invalid identity {identity!r}")
    if "://" in identity:
        return x509.UniformResourceIdentifier(identity)
    try:
        return x509.IPAddress(ipaddress.ip_address(identity))
    except ValueError:
        return x509.DNSName(identity)


def general_names(identities: Iterable[str]) -> list[x509.GeneralName]:
    names = [general_name(identity) for identity in identities]
    if not names:
        raise CAError("at least one identity is required")
    return names


def _san(
    obj: x509.Certificate | x509.CertificateSigningRequest,
) -> x509.SubjectAlternativeName | None:
    try:
        return obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def uri_sans(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    san = _san(obj)
    return [] if san is None else san.get_values_for_type(x509.UniformResourceIdentifier)


def dns_sans(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    san = _san(obj)
    return [] if san is None else san.get_values_for_type(x509.DNSName)


def build_csr(
    key: CertificateIssuerPrivateKeyTypes, uris: Sequence[str], dns: Sequence[str] = ()
) -> bytes:
    """A PEM CSR with an empty subject and the given URI and DNS SANs, signed by `key`."""
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri) for uri in uris]
    names += [x509.DNSName(name) for name in dns]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=True)
    csr = builder.sign(key, signature_hash(key))
    return csr.public_bytes(serialization.Encoding.PEM)
