"""Signing errors by kind, labelled like Istio's `caerror` types in the sign-error metric.

All are `SigningError`s (so callers may catch the base class); the CSR service maps each to
`InvalidArgument` with its reason and counts it under `error_type`.
"""

from __future__ import annotations

from pkg.errors import SigningError


class CSRError(SigningError):
    """The CSR cannot be parsed, its signature is bad, or its key is not acceptable."""

    error_type = "CSR_ERROR"


class TTLError(SigningError):
    """The requested lifetime is above the maximum."""

    error_type = "TTL_ERROR"


class CertGenError(SigningError):
    """The certificate cannot be made (invalid identities, expired signer, …)."""

    error_type = "CERT_GEN_ERROR"


def error_type(error: SigningError) -> str:
    """The metric label of a signing error."""
    return str(getattr(error, "error_type", CertGenError.error_type))
