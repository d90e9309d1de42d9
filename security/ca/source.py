"""Workload credentials for SDS: one cached key and certificate per identity, renewed in time.

`WorkloadCredentials` is the `pkg.credentials.CredentialSource` istiod hands to pilot's SDS
generator. Envoy connects straight to istiod (there is no agent), so istiod makes each
workload's key itself and renews its certificate when less than `grace_ratio` of its lifetime
is left (Istio's SECRET_GRACE_PERIOD_RATIO, 0.5), then tells subscribers so they push the new
`default` secret. It also polls the CA for root rotation (self-signed) and for edited cacerts
files (plugged-in, every pass) and announces a changed trust bundle with `callback(None)`; when
the signer itself changed, every cached certificate is re-issued by the new one at once.
Identities nobody asked for in a while (twice the TTL) are forgotten.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pkg.credentials import Credential, Identity
from pkg.errors import CAError
from security.ca.authority import CertificateAuthority

log = logging.getLogger(__name__)

DEFAULT_GRACE_RATIO = 0.5  # SECRET_GRACE_PERIOD_RATIO
DEFAULT_ROOT_CHECK_INTERVAL = 3600.0  # CITADEL_SELF_SIGNED_ROOT_CERT_CHECK_INTERVAL, seconds
IDLE_TTLS = 2  # forget an identity not requested for this many TTLs

Subscriber = Callable[[Identity | None], None]


@dataclass(frozen=True, slots=True)
class _Entry:
    credential: Credential
    last_requested: datetime


def _same_signer(a: x509.Certificate, b: x509.Certificate) -> bool:
    """Whether leaves signed by `b` are signed by `a` as well: the same certificate, or a
    self-signed root re-issued with the same key and subject (they verify under both)."""
    if a == b:
        return True
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return a.subject == b.subject and a.public_key().public_bytes(
        der, spki
    ) == b.public_key().public_bytes(der, spki)


class WorkloadCredentials:
    """A `CredentialSource` backed by a `CertificateAuthority`."""

    def __init__(
        self,
        ca: CertificateAuthority,
        *,
        ttl: timedelta | None = None,
        grace_ratio: float = DEFAULT_GRACE_RATIO,
        root_check_interval: float = DEFAULT_ROOT_CHECK_INTERVAL,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not 0 < grace_ratio < 1:
            raise ValueError(f"grace_ratio must be between 0 and 1, not {grace_ratio}")
        self._ca = ca
        self._ttl = ttl or ca.default_ttl
        self._grace_ratio = grace_ratio
        self._root_check_interval = root_check_interval
        self._clock = clock or ca.now
        self._entries: dict[Identity, _Entry] = {}
        self._subscribers: list[Subscriber] = []

    @property
    def ttl(self) -> timedelta:
        return self._ttl

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, identity: object) -> bool:
        return identity in self._entries

    # -- CredentialSource ------------------------------------------------------------------

    def credential(self, identity: Identity) -> Credential:
        """The cached credential of `identity`, issued (or renewed) here when due."""
        now = self._clock()
        entry = self._entries.get(identity)
        if entry is not None and not self._due(entry.credential, now):
            self._entries[identity] = _Entry(entry.credential, now)
            return entry.credential
        credential = self._issue(identity)
        self._entries[identity] = _Entry(credential, now)
        if entry is not None:
            # Others serving this identity hold the old one: tell them, but not from inside the
            # caller (typically a generator in the middle of a push).
            self._notify_soon(identity)
        return credential

    def trust_bundle(self) -> bytes:
        return self._ca.trust_bundle()

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    # -- renewal ---------------------------------------------------------------------------

    def refresh(self, *, check_root: bool = False) -> list[Identity | None]:
        """One pass: root check (if asked), renewals, forgetting idle identities.

        Subscribers are called (None first when the trust bundle changed); the list of what
        was announced is returned.
        """
        announced: list[Identity | None] = []
        signer = self._ca.signer_cert
        rotated = check_root and self._ca.check_root_rotation()
        if self._ca.reload_plugged() or rotated:
            announced.append(None)
            if _same_signer(self._ca.signer_cert, signer):  # only the bundle is new
                roots = self._ca.trust_bundle()
                for identity, entry in self._entries.items():
                    renewed = dataclasses.replace(entry.credential, roots_pem=roots)
                    self._entries[identity] = _Entry(renewed, entry.last_requested)
            else:  # a new signer (plugged-in rotation): everyone moves to it now
                announced.extend(self._reissue_all())
        now = self._clock()
        idle_after = self._ttl * IDLE_TTLS
        for identity, entry in list(self._entries.items()):
            if now - entry.last_requested > idle_after:
                log.debug("forgetting idle identity=%s", identity)
                del self._entries[identity]
            elif self._due(entry.credential, now):
                try:
                    renewed = self._issue(identity)
                except CAError as exc:  # keep serving the old one; retried on the next pass
                    log.error("cannot renew credential identity=%s: %s", identity, exc)
                    continue
                self._entries[identity] = _Entry(renewed, entry.last_requested)
                announced.append(identity)
        for item in announced:
            self._notify(item)
        return announced

    async def run(self, interval: float = 1.0) -> None:
        """Renew due credentials every `interval` s and check the root every root_check_interval."""
        last_root_check = time.monotonic()
        while True:
            check_root = time.monotonic() - last_root_check >= self._root_check_interval
            if check_root:
                last_root_check = time.monotonic()
            try:
                self.refresh(check_root=check_root)
            except Exception:
                log.exception("credential refresh failed")
            await asyncio.sleep(interval)

    # -- internals -------------------------------------------------------------------------

    def _reissue_all(self) -> list[Identity]:
        reissued = []
        for identity, entry in list(self._entries.items()):
            try:
                credential = self._issue(identity)
            except CAError as exc:  # keep the old one; renewed when due
                log.error("cannot re-issue credential identity=%s: %s", identity, exc)
                continue
            self._entries[identity] = _Entry(credential, entry.last_requested)
            reissued.append(identity)
        return reissued

    def _due(self, credential: Credential, now: datetime) -> bool:
        return credential.lifetime_fraction_left(now) < self._grace_ratio

    def _issue(self, identity: Identity) -> Credential:
        return self._ca.issue([identity.spiffe_id], self._ttl)

    def _notify(self, identity: Identity | None) -> None:
        for callback in list(self._subscribers):
            try:
                callback(identity)
            except Exception:
                log.exception("credential subscriber failed identity=%s", identity)

    def _notify_soon(self, identity: Identity) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._notify(identity)
        else:
            loop.call_soon(self._notify, identity)
