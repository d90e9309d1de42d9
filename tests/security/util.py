"""Helpers for the security tests: a settable clock, SPIFFE ids, a plugged-in CA on disk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store

TRUST_DOMAIN = "cluster.local"
START = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def spiffe(namespace: str = "default", service_account: str = "app") -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def load_certs(pem: bytes | str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode() if isinstance(pem, str) else pem)


def webpki_verify_client(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots_pem: bytes | str,
    at: datetime | None = None,
) -> list[x509.Certificate]:
    """Independent check with cryptography's WebPKI verifier (a client certificate profile)."""
    builder = PolicyBuilder().store(Store(load_certs(roots_pem)))
    if at is not None:
        builder = builder.time(at)
    return builder.build_client_verifier().verify(leaf, intermediates).chain


def key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _ca_cert(
    subject: str,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    not_before: datetime,
    days: int,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Istio"),
                      x509.NameAttribute(NameOID.COMMON_NAME, subject)])  # fmt: skip
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
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
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class PluggedCA:
    """An Istio `cacerts` directory: a root, an intermediate signer, and the four files."""

    directory: Path
    root: x509.Certificate
    root_key: rsa.RSAPrivateKey
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey


def write_plugged_ca(
    directory: Path,
    *,
    not_before: datetime = START - timedelta(days=1),
    intermediate_days: int = 365,
) -> PluggedCA:
    """Like Istio's tools/certs Makefile: root-cert.pem, ca-cert.pem, ca-key.pem, cert-chain.pem."""
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = _ca_cert("Root CA", root_key, None, root_key, not_before, 3650)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _ca_cert("Intermediate CA", inter_key, root, root_key, not_before, intermediate_days)
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    (directory / "root-cert.pem").write_bytes(root.public_bytes(pem))
    (directory / "ca-cert.pem").write_bytes(inter.public_bytes(pem))
    (directory / "ca-key.pem").write_bytes(key_pem(inter_key))
    (directory / "cert-chain.pem").write_bytes(inter.public_bytes(pem) + root.public_bytes(pem))
    return PluggedCA(directory, root, root_key, inter, inter_key)


def install_cacerts(directory: Path, signer: PluggedCA, roots: list[x509.Certificate]) -> None:
    """Point the cacerts `directory` at `signer` (its intermediate, key and chain) with
    root-cert.pem = `roots`: each file replaced atomically, the chain and key before ca-cert.pem,
    root-cert.pem first, as an operator rotating roots by Istio's procedure would."""
    pem = serialization.Encoding.PEM
    files = {
        "root-cert.pem": b"".join(root.public_bytes(pem) for root in roots),
        "cert-chain.pem": signer.intermediate.public_bytes(pem) + signer.root.public_bytes(pem),
        "ca-key.pem": key_pem(signer.intermediate_key),
        "ca-cert.pem": signer.intermediate.public_bytes(pem),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        temp = directory / f".{name}.tmp"
        temp.write_bytes(data)
        temp.replace(directory / name)


def renew_intermediate(ca: PluggedCA) -> PluggedCA:
    """A new intermediate (new key) under the same root: an intermediate-only rotation."""
    key = ec.generate_private_key(ec.SECP256R1())
    not_before = ca.intermediate.not_valid_before_utc
    inter = _ca_cert("Intermediate CA 2", key, ca.root, ca.root_key, not_before, 365)
    return PluggedCA(ca.directory, ca.root, ca.root_key, inter, key)
