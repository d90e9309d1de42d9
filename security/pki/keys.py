"""Private keys: generation and PEM encoding.

Workload keys are EC P-256 (istiod makes them for every proxy, and EC keys cost microseconds
where RSA 2048 costs tens of milliseconds); the self-signed root is RSA 2048 as in Istio
(CITADEL_SELF_SIGNED_CA_RSA_KEY_SIZE). Keys are written as unencrypted PKCS#8 PEM, which Envoy,
gRPC, Go and OpenSSL all read; any PEM private key is accepted on input.
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
    PublicKeyTypes,
)

from pkg.errors import CAError

MIN_RSA_BITS = 2048


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A new EC P-256 key (workload and serving certificates, token signing)."""
    return ec.generate_private_key(ec.SECP256R1())


def generate_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    if bits < MIN_RSA_BITS:
        raise ValueError(f"RSA keys shorter than {MIN_RSA_BITS} bits are not allowed: {bits}")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def encode_key_pem(key: PrivateKeyTypes) -> bytes:
    """PKCS#8 PEM, unencrypted (`-----BEGIN PRIVATE KEY-----`)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def decode_key_pem(data: bytes) -> PrivateKeyTypes:
    """Any unencrypted PEM private key (PKCS#8, PKCS#1, SEC1); CAError with the reason."""
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CAError(f"cannot read private key: {exc}") from exc


def signing_key(key: PrivateKeyTypes) -> CertificateIssuerPrivateKeyTypes:
    """`key` narrowed to a type that can sign certificates; CAError otherwise."""
    if isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        return key
    raise CAError(f"a {type(key).__name__} cannot sign certificates")


def signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384 | None:
    """The digest to sign with: SHA-256, SHA-384 for P-384 and larger curves, none for EdDSA."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def public_key_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_matches(key: PrivateKeyTypes, public_key: CertificatePublicKeyTypes) -> bool:
    """Whether `key` is the private half of `public_key`."""
    return public_key_der(key.public_key()) == public_key_der(public_key)


def check_leaf_public_key(key: CertificatePublicKeyTypes) -> None:
    """Accept the key types a workload certificate may carry; CAError with the reason otherwise."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CAError(f"RSA key of {key.key_size} bits is too short (minimum {MIN_RSA_BITS})")
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise CAError(f"unsupported elliptic curve {key.curve.name}")
        return
    if isinstance(key, ed25519.Ed25519PublicKey):
        return
    raise CAError(f"unsupported public key type {type(key).__name__}")
