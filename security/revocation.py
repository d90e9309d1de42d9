"""Revoking service-account tokens: a per-identity cut-off, kept in istiod's state directory.

What revoking means here. Kubernetes invalidates a service account's tokens when the account
is deleted (bound tokens name its UID); standalone istiod has no account objects, so revoking
`system:serviceaccount:<ns>:<sa>` records a cut-off instant for that identity: every token of
that identity issued before the revocation is refused from then on, on the secure xDS port and
the CSR API alike, and tokens issued afterwards are accepted again. This is the response to a
leaked token or a compromised workload: revoke, then re-bootstrap the workload's proxies.
(Rotating the token signing key revokes every token at once; delete `token-signing-key.pem`
and restart istiod for that.)

The cut-off is a whole second, `cutoff`; a token is revoked when its `iat` < `cutoff`.
`revoke` sets `cutoff = max(floor(now) + 1, previous + 1)`, so every token issued before
the call (iat <= floor(issue time) <= floor(now)) and every token issued after an earlier
revocation (iat = its cut-off, see below) is below it; `TokenIssuer.issue` stamps a revoked
identity's new tokens with `iat = max(floor(now), cutoff)` (at most a second ahead of the
clock, within the `iat` skew), so they are not. Whole seconds keep `iat` an integer, as
Kubernetes writes it.

The list is `revoked-service-accounts.json` (0600, written atomically); it is read when
istiod starts and updated by `revoke`. istiods sharing a state directory each see the
revocations made through themselves, plus those on disk when they started.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from pkg.errors import CAError
from security.statefile import PRIVATE_MODE, read_optional, state_lock, write_atomic

log = logging.getLogger(__name__)

REVOCATION_FILE = "revoked-service-accounts.json"


class RevocationList:
    """Subject (`system:serviceaccount:<ns>:<sa>`) → cut-off (epoch seconds). Thread-safe."""

    def __init__(self, cutoffs: Mapping[str, int] | None = None, path: Path | None = None) -> None:
        self._cutoffs: dict[str, int] = dict(cutoffs or {})
        self._path = path
        self._lock = threading.Lock()

    @classmethod
    def load(cls, state_dir: Path) -> RevocationList:
        """The list in `state_dir` (empty when there is none yet); CAError if it is corrupt."""
        path = state_dir / REVOCATION_FILE
        data = read_optional(path)
        if data is None:
            return cls(path=path)
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise CAError(f"{path}: not JSON ({exc})") from exc
        if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in raw.items()
        ):
            raise CAError(f"{path}: expected an object of subject -> epoch seconds")
        return cls(raw, path)

    def cutoff(self, subject: str) -> int | None:
        """Tokens of `subject` with `iat` below this are revoked (None: never revoked)."""
        with self._lock:
            return self._cutoffs.get(subject)

    def revoke(self, subject: str, now: datetime) -> datetime:
        """Revoke every token of `subject` issued up to now; the cut-off, persisted."""
        with self._lock:
            previous = self._cutoffs.get(subject)
            cutoff = math.floor(now.timestamp()) + 1
            if previous is not None:
                cutoff = max(cutoff, previous + 1)
            self._cutoffs[subject] = cutoff
            snapshot = dict(self._cutoffs)
        if self._path is not None:
            data = json.dumps(snapshot, indent=1, sort_keys=True).encode()
            with state_lock(self._path.parent):
                write_atomic(self._path, data, PRIVATE_MODE)
        log.info("revoked the tokens of %s issued before %d", subject, cutoff)
        return datetime.fromtimestamp(cutoff, UTC)
