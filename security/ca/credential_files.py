"""Workload credentials that survive an istiod restart.

Envoy connects straight to istiod (there is no agent holding its certificate), so an istiod
that forgot every credential it issued would, on restart, mint a new key and certificate for
every reconnecting proxy and push each of them a new `default` secret: a signing storm, and
an update to proxies that changed nothing. `PersistentCredentials` keeps each issued credential
in the state directory (`workload-credentials/<sha256 of the SPIFFE id>.pem`: the chain, then
the key; mode 0600, written atomically) and, the first time an identity is asked for after a
start, serves the stored one if it is still good. A reconnecting proxy then presents exactly
the secret it would be sent and is sent nothing.

"Still good": readable, for exactly this identity, its key matching its certificate, issued by
the CA's current signer and chaining to the current trust bundle, and not yet due for renewal
(SECRET_GRACE_PERIOD_RATIO). Anything else is ignored (logged, without the file's content) and
a new credential issued and stored over it. The state directory already holds the mesh root's
private key (0600), which can mint any of these identities; storing workload keys next to it
adds no new trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from pkg.credentials import Credential, Identity
from pkg.errors import CAError
from security.ca.authority import CertificateAuthority
from security.ca.source import DEFAULT_GRACE_RATIO, WorkloadCredentials
from security.pki.certs import decode_certs_pem, uri_sans
from security.pki.issue import CLOCK_SKEW_GRACE
from security.pki.keys import decode_key_pem, key_matches
from security.pki.verify import build_path
from security.statefile import PRIVATE_MODE, ensure_dir, read_optional, write_atomic

log = logging.getLogger(__name__)

CREDENTIALS_DIR = "workload-credentials"


class CredentialFiles:
    """One file per identity under `directory` (created 0700 on first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, identity: Identity) -> Path:
        digest = hashlib.sha256(identity.spiffe_id.encode()).hexdigest()[:32]
        return self.directory / f"{digest}.pem"

    def save(self, identity: Identity, credential: Credential) -> None:
        """Store `credential` (chain, then key); a failure is logged, never raised."""
        try:
            ensure_dir(self.directory)
            data = credential.cert_chain_pem + credential.key_pem
            write_atomic(self.path(identity), data, PRIVATE_MODE)
        except OSError as exc:
            log.error("cannot store credential identity=%s: %s", identity, exc)

    def load(self, identity: Identity, ca: CertificateAuthority, now: datetime) -> Credential:
        """The stored credential of `identity`, checked against `ca` (CAError: why not)."""
        path = self.path(identity)
        try:
            data = read_optional(path)
        except OSError as exc:
            raise CAError(f"cannot read {path}: {exc}") from exc
        if data is None:
            raise CAError("none stored")
        certs = decode_certs_pem(data, what=str(path))
        if not certs:
            raise CAError(f"{path} holds no certificate")
        leaf = certs[0]
        if uri_sans(leaf) != [identity.spiffe_id]:
            raise CAError(f"{path} is for {uri_sans(leaf)}, not {identity.spiffe_id}")
        key_pem = data[data.index(b"-----BEGIN", data.rindex(b"-----END CERTIFICATE-----")) :]
        if not key_matches(decode_key_pem(key_pem), leaf.public_key()):
            raise CAError(f"{path}: the key does not match the certificate")
        signer = ca.signer_cert
        if leaf.issuer != signer.subject:
            raise CAError(f"{path} was not issued by the current signer")
        try:
            leaf.verify_directly_issued_by(signer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CAError(f"{path} was not issued by the current signer: {exc}") from exc
        roots = decode_certs_pem(ca.trust_bundle(), what="trust bundle")
        build_path(leaf, certs[1:], roots, now)
        chain_end = data.index(key_pem)
        return Credential(
            cert_chain_pem=data[:chain_end],
            key_pem=key_pem,
            roots_pem=ca.trust_bundle(),
            serial=leaf.serial_number,
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
            issued_at=leaf.not_valid_before_utc + CLOCK_SKEW_GRACE,
        )

    def remove(self, identity: Identity) -> None:
        with contextlib.suppress(OSError):
            self.path(identity).unlink()


class PersistentCredentials(WorkloadCredentials):
    """`WorkloadCredentials` whose issued credentials are kept in `state_dir` and served
    again, when still good, the first time an identity is asked for after a restart."""

    def __init__(
        self,
        ca: CertificateAuthority,
        state_dir: Path,
        *,
        ttl: timedelta | None = None,
        grace_ratio: float = DEFAULT_GRACE_RATIO,
        root_check_interval: float = 3600.0,
    ) -> None:
        super().__init__(
            ca, ttl=ttl, grace_ratio=grace_ratio, root_check_interval=root_check_interval
        )
        self.files = CredentialFiles(state_dir / CREDENTIALS_DIR)
        self._looked_up: set[Identity] = set()

    def _issue(self, identity: Identity) -> Credential:
        if identity not in self._looked_up:  # the first time since this istiod started
            self._looked_up.add(identity)
            now = self._clock()
            try:
                stored = self.files.load(identity, self._ca, now)
            except (CAError, ValueError) as exc:
                log.debug("not reusing stored credential identity=%s: %s", identity, exc)
            else:
                if not self._due(stored, now):
                    log.info("reusing stored credential identity=%s serial=%x not_after=%s",
                             identity, stored.serial, stored.not_after.isoformat())  # fmt: skip
                    return stored
        credential = super()._issue(identity)
        self.files.save(identity, credential)
        return credential


__all__ = ["CREDENTIALS_DIR", "CredentialFiles", "PersistentCredentials"]
