"""Standalone service-account tokens: what istiod accepts instead of Kubernetes' in standalone mode.

Without an API server there is no TokenReview, so istiod signs its own tokens (ES256, key in
the state directory as `token-signing-key.pem`, 0600) in the shape of a Kubernetes projected
service-account token: `sub: system:serviceaccount:<ns>:<sa>`, audience `istio-ca`, and the
`kubernetes.io` claim. `istioctl bootstrap` fetches one for a proxy; the proxy presents it as
`authorization: Bearer <token>` on the ADS stream and CSR calls.

Verification accepts ES256 only — `alg: none`, HMAC with the public key as secret and every
other algorithm are refused before any key is used — and checks issuer, audience, validity
period (against the issuer's clock) and the claims' shape, each failure with its own reason.
Reasons never quote the token; values taken from it (algorithm, subject) are shortened.

Revocation (security/revocation.py): `revoke(ns, sa)` refuses every token of that identity
issued before the call; tokens issued afterwards are accepted.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from pkg.errors import AuthenticationError, CAError
from security.pki.keys import decode_key_pem, encode_key_pem, generate_key, public_key_der
from security.revocation import RevocationList
from security.statefile import PRIVATE_MODE, read_optional, state_lock, write_atomic

log = logging.getLogger(__name__)

KEY_FILE = "token-signing-key.pem"
DEFAULT_ISSUER = "istiod.pyistio"
DEFAULT_AUDIENCE = "istio-ca"  # TOKEN_AUDIENCES
DEFAULT_TOKEN_TTL = timedelta(days=365)
ALGORITHM = "ES256"
SUBJECT_PREFIX = "system:serviceaccount:"
_REQUIRED = ("iss", "sub", "aud", "iat", "exp", "kubernetes.io")
IAT_SKEW = timedelta(minutes=1)  # how far ahead of our clock a token's `iat` may be
_SHOWN = 64  # at most this many characters of a value taken from a token go into a reason


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    namespace: str
    service_account: str
    expires_at: datetime


def _valid_name(value: object) -> bool:
    return isinstance(value, str) and bool(value) and not any(c in value for c in ":/ ")


def _shown(value: object) -> str:
    """A token-supplied value for an error message: repr'd and cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}...'"


def _subject(namespace: str, service_account: str) -> str:
    return f"{SUBJECT_PREFIX}{namespace}:{service_account}"


def _timestamp(claims: Mapping[str, Any], name: str) -> datetime:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthenticationError(f"token claim {name!r} is not a number")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError) as exc:  # 1e300, NaN, Infinity
        raise AuthenticationError(f"token claim {name!r} is not a valid time") from exc


def signing_key_from_pem(data: bytes, what: str) -> ec.EllipticCurvePrivateKey:
    """An ES256 token-signing key from PEM; CAError naming `what` when it is not one."""
    try:
        loaded = decode_key_pem(data)
    except (CAError, ValueError) as exc:
        raise CAError(f"{what}: {exc}") from exc
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(
        loaded.curve, ec.SECP256R1
    ):
        raise CAError(f"{what} is not an EC private key (ES256 needs P-256)")
    return loaded


def new_signing_key_pem() -> bytes:
    return encode_key_pem(generate_key())


class TokenIssuer:
    """Issues and verifies ES256 service-account tokens. Build with `load_or_create`."""

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        issuer: str = DEFAULT_ISSUER,
        *,
        clock: Callable[[], datetime] | None = None,
        revocations: RevocationList | None = None,
    ) -> None:
        self.issuer = issuer
        self._clock = clock or (lambda: datetime.now(UTC))
        self._revocations = revocations if revocations is not None else RevocationList()
        self.set_key(key)

    @classmethod
    def load_or_create(
        cls,
        state_dir: Path,
        issuer: str = DEFAULT_ISSUER,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> TokenIssuer:
        """The issuer whose key is `state_dir/token-signing-key.pem`, created once (0600)."""
        path = state_dir / KEY_FILE
        with state_lock(state_dir):
            data = read_optional(path)
            if data is None:
                key = generate_key()
                write_atomic(path, encode_key_pem(key), PRIVATE_MODE)
                log.info("created token signing key path=%s", path)
            else:
                key = signing_key_from_pem(data, str(path))
            revocations = RevocationList.load(state_dir)
        return cls(key, issuer, clock=clock, revocations=revocations)

    @property
    def key_pem(self) -> bytes:
        """The signing key (PEM), for sharing it between replicas (Kubernetes mode)."""
        return encode_key_pem(self._key)

    def set_key(self, key: ec.EllipticCurvePrivateKey) -> None:
        """Sign and verify with `key` from now on (another replica's, in Kubernetes mode):
        tokens signed with the previous key are refused from now on."""
        if not isinstance(key.curve, ec.SECP256R1):
            raise CAError(f"ES256 needs a P-256 key, not {key.curve.name}")
        self._key = key
        self._public = key.public_key()
        digest = hashlib.sha256(public_key_der(self._public)).digest()
        self.key_id = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(
        self,
        namespace: str,
        service_account: str,
        audience: str = DEFAULT_AUDIENCE,
        ttl: timedelta = DEFAULT_TOKEN_TTL,
    ) -> str:
        """A token for `system:serviceaccount:<namespace>:<service_account>`."""
        if not _valid_name(namespace) or not _valid_name(service_account):
            raise ValueError(f"invalid namespace/service account {namespace!r}/{service_account!r}")
        now = int(self._clock().timestamp())
        subject = _subject(namespace, service_account)
        cutoff = self._revocations.cutoff(subject)
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": [audience],
            # A revoked identity's new tokens are stamped at (or after) its cut-off.
            "iat": now if cutoff is None else max(now, cutoff),
            "nbf": now,
            "exp": now + int(ttl.total_seconds()),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": service_account}},
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})

    def verify(self, token: str, audiences: Sequence[str] = (DEFAULT_AUDIENCE,)) -> TokenIdentity:
        """The identity in `token`; AuthenticationError with the reason if it is not acceptable."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"malformed token: {exc}") from exc
        algorithm = header.get("alg")
        if algorithm != ALGORITHM:
            raise AuthenticationError(
                f"token algorithm {_shown(algorithm)} is not allowed (only ES256)"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=list(audiences),
                issuer=self.issuer,
                options={"require": list(_REQUIRED), "verify_exp": False, "verify_nbf": False,
                         "verify_iat": False},
            )  # fmt: skip
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationError("token signature is invalid (wrong key?)") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"token is missing the {exc.claim!r} claim") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationError(f"token audience is not one of {list(audiences)}") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError(f"token issuer is not {self.issuer!r}") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"invalid token: {exc}") from exc
        return self._identity(claims)

    def _identity(self, claims: Mapping[str, Any]) -> TokenIdentity:
        now = self._clock()
        expires_at = _timestamp(claims, "exp")
        if now >= expires_at:
            raise AuthenticationError(f"token expired at {expires_at.isoformat()}")
        if "nbf" in claims and now < _timestamp(claims, "nbf"):
            raise AuthenticationError(
                f"token is not valid before {_timestamp(claims, 'nbf').isoformat()}"
            )
        issued_at = _timestamp(claims, "iat")
        if now < issued_at - IAT_SKEW:
            raise AuthenticationError(f"token was issued in the future ({issued_at.isoformat()})")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.startswith(SUBJECT_PREFIX):
            raise AuthenticationError(f"token subject {_shown(subject)} is not a service account")
        parts = subject[len(SUBJECT_PREFIX) :].split(":")
        if len(parts) != 2 or not all(_valid_name(part) for part in parts):
            raise AuthenticationError(f"token subject {_shown(subject)} is not a service account")
        namespace, service_account = parts
        kube = claims["kubernetes.io"]
        account = kube.get("serviceaccount") if isinstance(kube, dict) else None
        if (
            not isinstance(account, dict)
            or kube.get("namespace") != namespace
            or account.get("name") != service_account
        ):
            raise AuthenticationError("token kubernetes.io claim does not match its subject")
        cutoff = self._revocations.cutoff(subject)
        if cutoff is not None and issued_at.timestamp() < cutoff:
            revoked = datetime.fromtimestamp(cutoff, UTC).isoformat()
            raise AuthenticationError(
                f"token was revoked: the tokens of {subject} issued before {revoked} are refused"
            )
        return TokenIdentity(namespace, service_account, expires_at)

    def revoke(self, namespace: str, service_account: str) -> datetime:
        """Refuse every token of this identity issued until now; the cut-off instant."""
        if not _valid_name(namespace) or not _valid_name(service_account):
            raise ValueError(f"invalid namespace/service account {namespace!r}/{service_account!r}")
        return self._revocations.revoke(_subject(namespace, service_account), self._clock())
