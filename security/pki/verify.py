"""Certificate path validation: does a certificate chain up to one of a set of roots?

A small, deliberate path builder rather than a full WebPKI profile: it checks what matters
for a mesh CA — names chain, signatures verify, every certificate is within its validity
period, every issuer is a CA allowed to sign certificates, and path length constraints hold.
It accepts a CA certificate as the starting point, so it also checks a plugged-in
intermediate (`ca-cert.pem`) against `cert-chain.pem` and `root-cert.pem`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from pkg.errors import CAError
from security.pki.certs import decode_certs_pem

MAX_DEPTH = 8


class ChainError(CAError):
    """A certificate does not chain to the trusted roots."""


def describe(cert: x509.Certificate) -> str:
    subject = cert.subject.rfc4514_string() or "<empty subject>"
    return f"{subject} (serial {cert.serial_number:x})"


def _check_validity(cert: x509.Certificate, at: datetime) -> None:
    if at < cert.not_valid_before_utc:
        raise ChainError(
            f"certificate {describe(cert)} is not valid before {cert.not_valid_before_utc}"
        )
    if at > cert.not_valid_after_utc:
        raise ChainError(f"certificate {describe(cert)} expired at {cert.not_valid_after_utc}")


def check_ca(cert: x509.Certificate) -> int | None:
    """Path length constraint of a CA certificate; ChainError if it may not sign certificates."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise ChainError(f"issuer {describe(cert)} has no BasicConstraints") from None
    if not constraints.ca:
        raise ChainError(f"issuer {describe(cert)} is not a CA")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.key_cert_sign:
        raise ChainError(f"issuer {describe(cert)} may not sign certificates (KeyUsage)")
    return constraints.path_length


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """None when `issuer` signed `cert`, else why not."""
    if cert.issuer != issuer.subject:
        return "issuer name does not match"
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        return f"signature does not verify with the key of {describe(issuer)}"
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"cannot verify against {describe(issuer)}: {exc}"
    return None


def build_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime | None = None,
) -> list[x509.Certificate]:
    """The path [leaf, intermediates…, root] to one of `roots`; ChainError with the reason."""
    when = at or datetime.now(UTC)
    if not roots:
        raise ChainError("no trusted roots")
    _check_validity(leaf, when)
    reasons: list[str] = []

    def extend(path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        current = path[-1]
        if current in roots:
            return path
        if len(path) > MAX_DEPTH:
            reasons.append(f"chain longer than {MAX_DEPTH}")
            return None
        for candidate in [*roots, *intermediates]:
            if candidate in path:
                continue
            why = _issued_by(current, candidate)
            if why is not None:
                if current.issuer == candidate.subject:
                    reasons.append(f"{describe(current)}: {why}")
                continue
            try:
                _check_validity(candidate, when)
                limit = check_ca(candidate)
            except ChainError as exc:
                reasons.append(str(exc))
                continue
            below = sum(1 for cert in path[1:] if cert.subject != cert.issuer)
            if limit is not None and below > limit:
                reasons.append(f"path length constraint of {describe(candidate)} exceeded")
                continue
            found = extend([*path, candidate])
            if found is not None:
                return found
        return None

    path = extend([leaf])
    if path is None:
        detail = "; ".join(dict.fromkeys(reasons)) or (
            f"no issuer found for {leaf.issuer.rfc4514_string() or '<empty issuer>'}"
        )
        raise ChainError(f"certificate {describe(leaf)} does not chain to a trusted root: {detail}")
    return path


def verify_chain(
    leaf_pem: bytes | str,
    chain_pems: Sequence[bytes | str] | bytes | str,
    roots_pem: bytes | str,
    *,
    at: datetime | None = None,
) -> None:
    """Raise ChainError unless the first certificate of `leaf_pem` chains to a root in `roots_pem`.

    `chain_pems` holds the intermediates: one PEM bundle, or a sequence of PEMs (as in
    Istio's CSR response; a root among them is harmless). `at` defaults to now.
    """
    leaf = decode_certs_pem(leaf_pem, what="leaf")[0]
    bundles = [chain_pems] if isinstance(chain_pems, bytes | str) else list(chain_pems)
    intermediates = [cert for pem in bundles if pem for cert in decode_certs_pem(pem)]
    roots = decode_certs_pem(roots_pem, what="roots")
    build_path(leaf, intermediates, roots, at)
