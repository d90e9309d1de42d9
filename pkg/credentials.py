"""Identities and credentials: the seam between the CA (security/) and what serves them (pilot/).

`Identity` is a SPIFFE identity `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
`Credential` is what a workload (or istiod itself) needs for mutual TLS: its certificate chain,
its private key and the trust bundle. `CredentialSource` issues them; pilot's SDS generator
only sees this Protocol, never the CA.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

SPIFFE_PREFIX = "spiffe://"


@dataclass(frozen=True, slots=True, order=True)
class Identity:
    trust_domain: str
    namespace: str
    service_account: str

    @property
    def spiffe_id(self) -> str:
        return f"{SPIFFE_PREFIX}{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    def __str__(self) -> str:
        return self.spiffe_id

    @classmethod
    def parse(cls, uri: str) -> Identity:
        """Parse `spiffe://td/ns/NS/sa/SA`; ValueError with the reason otherwise."""
        if not uri.startswith(SPIFFE_PREFIX):
            raise ValueError(f"not a SPIFFE id: {uri!r}")
        parts = uri[len(SPIFFE_PREFIX) :].split("/")
        if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa" or not all(parts):
            raise ValueError(f"not a spiffe://<trust-domain>/ns/<ns>/sa/<sa> id: {uri!r}")
        return cls(parts[0], parts[2], parts[4])


@dataclass(frozen=True, slots=True)
class Credential:
    cert_chain_pem: bytes  # leaf first, then intermediates (the root is in roots_pem)
    key_pem: bytes = field(repr=False)
    roots_pem: bytes  # the trust bundle: every root a peer may chain to
    serial: int
    not_before: datetime  # backdated by the CA for clock skew
    not_after: datetime
    # When it was issued (not backdated): renewal is timed against the requested lifetime, so
    # a short-lived certificate is not "half expired" the moment it is made.
    issued_at: datetime | None = None

    def lifetime_fraction_left(self, now: datetime) -> float:
        start = self.issued_at or self.not_before
        total = (self.not_after - start).total_seconds()
        if total <= 0:
            return 0.0
        return max(0.0, (self.not_after - now).total_seconds() / total)


class CredentialSource(Protocol):
    """Issues and renews workload credentials; tells subscribers when one was renewed."""

    def credential(self, identity: Identity) -> Credential: ...

    def trust_bundle(self) -> bytes: ...

    def subscribe(self, callback: Callable[[Identity | None], None]) -> None:
        """`callback(identity)` after a renewal; `callback(None)` when the trust bundle changed."""
        ...
