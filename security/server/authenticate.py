"""Who is calling: authenticators for the CSR service and the secure xDS server.

As in Istio (`pilot/pkg/bootstrap/server.go`), a list of authenticators is tried in order and
the first success wins: `ClientCertAuthenticator` (the SPIFFE URI SAN of a peer certificate
the TLS layer has verified against the mesh roots — how a proxy re-authenticates with its
workload certificate) and `BearerTokenAuthenticator` (the standalone stand-in for Istio's
KubeJWTAuthenticator: `authorization: Bearer <token>` checked by our `TokenIssuer`); in
Kubernetes mode also `security.server.kube_token.TokenReviewAuthenticator`.

Two kinds: `Authenticator` (synchronous, no I/O) and `AsyncAuthenticator` (awaited: it may do
I/O, off the event loop). On the event loop, `authenticate_any_async` tries both kinds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from pkg.credentials import Identity
from pkg.errors import AuthenticationError
from security.tokens import DEFAULT_AUDIENCE, TokenIssuer

AUTHORIZATION = "authorization"
_SCHEMES = ("bearer", "istio")  # Istio's HTTP path also accepts "Istio <token>"


@runtime_checkable
class Authenticator(Protocol):
    """Checks credentials without I/O: cheap enough to call on the event loop."""

    def authenticate(self, metadata: Mapping[str, str], peer_uris: Sequence[str]) -> Identity:
        """The caller's identity; AuthenticationError with the reason otherwise.

        `metadata` is the request's (gRPC metadata or HTTP headers); `peer_uris` are the URI
        SANs of the peer's verified TLS certificate ([] without one).
        """
        ...


@runtime_checkable
class AsyncAuthenticator(Protocol):
    """Checks credentials with I/O (e.g. a TokenReview): awaited, never blocks the loop."""

    async def authenticate_async(
        self, metadata: Mapping[str, str], peer_uris: Sequence[str]
    ) -> Identity:
        """As `Authenticator.authenticate`."""
        ...


AnyAuthenticator = Authenticator | AsyncAuthenticator


def bearer_token(metadata: Mapping[str, str]) -> str:
    """The token of an `authorization: Bearer <token>` (or `Istio <token>`) entry."""
    values = [value for key, value in metadata.items() if key.lower() == AUTHORIZATION]
    if not values:
        raise AuthenticationError("no authorization header")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() not in _SCHEMES or not token.strip():
        raise AuthenticationError("authorization header is not 'Bearer <token>'")
    return token.strip()


class BearerTokenAuthenticator:
    """Service-account tokens signed by istiod (standalone mode)."""

    name = "token"

    def __init__(
        self,
        issuer: TokenIssuer,
        trust_domain: str,
        *,
        audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
    ) -> None:
        self._issuer = issuer
        self._trust_domain = trust_domain
        self._audiences = tuple(audiences)

    def authenticate(self, metadata: Mapping[str, str], peer_uris: Sequence[str]) -> Identity:
        found = self._issuer.verify(bearer_token(metadata), self._audiences)
        return Identity(self._trust_domain, found.namespace, found.service_account)


class ClientCertAuthenticator:
    """The SPIFFE identity of a verified client certificate, in one of the trust domains."""

    name = "client-cert"

    def __init__(self, trust_domains: Sequence[str]) -> None:
        self._trust_domains = frozenset(trust_domains)

    def authenticate(self, metadata: Mapping[str, str], peer_uris: Sequence[str]) -> Identity:
        if not peer_uris:
            raise AuthenticationError("no verified client certificate with a URI SAN")
        rejected: list[str] = []
        for uri in peer_uris:
            try:
                identity = Identity.parse(uri)
            except ValueError:
                rejected.append(f"{uri} is not a SPIFFE workload id")
                continue
            if identity.trust_domain in self._trust_domains:
                return identity
            rejected.append(f"{uri} is not in trust domains {sorted(self._trust_domains)}")
        raise AuthenticationError("; ".join(rejected))


def _name(authenticator: object) -> str:
    return str(getattr(authenticator, "name", type(authenticator).__name__))


def authenticate_any(
    authenticators: Sequence[AnyAuthenticator],
    metadata: Mapping[str, str],
    peer_uris: Sequence[str],
) -> Identity:
    """The first authenticator's success; AuthenticationError listing every reason otherwise.

    Synchronous: an `AsyncAuthenticator` (it may block on I/O) is skipped with a reason; on the
    event loop use `authenticate_any_async`, which tries every kind."""
    if not authenticators:
        raise AuthenticationError("no authenticators configured")
    reasons: list[str] = []
    for authenticator in authenticators:
        if not isinstance(authenticator, Authenticator):
            reasons.append(f"{_name(authenticator)}: needs authenticate_any_async")
            continue
        try:
            return authenticator.authenticate(metadata, peer_uris)
        except AuthenticationError as exc:
            reasons.append(f"{_name(authenticator)}: {exc}")
    raise AuthenticationError("; ".join(reasons))


async def authenticate_any_async(
    authenticators: Sequence[AnyAuthenticator],
    metadata: Mapping[str, str],
    peer_uris: Sequence[str],
) -> Identity:
    """`authenticate_any` for the event loop: synchronous authenticators (cheap, no I/O) are
    called inline, async ones (e.g. TokenReview, which runs its client off the loop) awaited."""
    if not authenticators:
        raise AuthenticationError("no authenticators configured")
    reasons: list[str] = []
    for authenticator in authenticators:
        try:
            if isinstance(authenticator, AsyncAuthenticator):
                return await authenticator.authenticate_async(metadata, peer_uris)
            return authenticator.authenticate(metadata, peer_uris)
        except AuthenticationError as exc:
            reasons.append(f"{_name(authenticator)}: {exc}")
    raise AuthenticationError("; ".join(reasons))
