"""Kubernetes service-account tokens checked with TokenReview (Istio's KubeJWTAuthenticator).

The bearer token of a proxy (secure ADS) or CSR caller is sent to the API server in an
`authentication.k8s.io/v1` TokenReview with audiences TOKEN_AUDIENCES (`istio-ca`); the
answer must say authenticated, the user must be in group `system:serviceaccounts`, and the
username `system:serviceaccount:<ns>:<sa>` gives the identity (Istio's
security/pkg/k8s/tokenreview). Reasons are Istio's words, and never quote the token.

The client blocks, so reviews run in worker threads, never on the event loop. A successful
review is cached for a short time (`cache_ttl`, and never past the token's own `exp`), keyed by
the SHA-256 of the token, in a bounded LRU map; concurrent requests with the same token share
one review. Failures are not cached: a token registered a moment later works at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from pkg.credentials import Identity
from pkg.errors import AuthenticationError
from pkg.kube.client import KubeClient, status_of
from security.server.authenticate import bearer_token

log = logging.getLogger(__name__)

SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
USER_PREFIX = "system:serviceaccount:"
DEFAULT_CACHE_TTL = 30.0  # seconds a positive review is trusted without asking again
DEFAULT_CACHE_SIZE = 4096

Review = Callable[[str, Sequence[str]], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class _Cached:
    identity: Identity
    until: float  # monotonic


def review_identity(status: Mapping[str, Any], audiences: Sequence[str]) -> tuple[str, str]:
    """(namespace, service account) from a TokenReview `status`; AuthenticationError."""
    error = status.get("error")
    if error:
        raise AuthenticationError(
            f"the service account authentication returns an error: {str(error)[:300]}"
        )
    if not status.get("authenticated"):
        raise AuthenticationError("the token is not authenticated")
    granted = status.get("audiences")
    if granted is not None and not set(granted) & set(audiences):
        raise AuthenticationError(f"the token is not valid for audiences {list(audiences)}")
    user = status.get("user") or {}
    if SERVICE_ACCOUNTS_GROUP not in (user.get("groups") or ()):
        raise AuthenticationError("the token is not a service account")
    username = str(user.get("username") or "")
    parts = username.split(":")
    if not username.startswith(USER_PREFIX) or len(parts) != 4 or not all(parts[2:]):
        raise AuthenticationError("invalid username field in the token review result")
    return parts[2], parts[3]


def _token_expiry(token: str) -> float | None:
    """The token's `exp` as a time.time() value, read without verifying (only to bound the
    cache: the API server has verified the token)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class TokenReviewAuthenticator:
    """An async authenticator (`authenticate_async`) backed by the API server's TokenReview."""

    name = "kube-token"

    def __init__(
        self,
        kube: KubeClient,
        trust_domain: str,
        *,
        audiences: Sequence[str] = ("istio-ca",),
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        review: Review | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._trust_domain = trust_domain
        self._audiences = tuple(audiences)
        self._cache_ttl = cache_ttl
        self._cache_size = max(1, cache_size)
        self._review = review or self._create_review
        self._clock = clock
        self._cache: OrderedDict[bytes, _Cached] = OrderedDict()
        self._inflight: dict[bytes, asyncio.Future[Identity]] = {}  # reviews running
        self.reviews = 0  # TokenReviews sent (tests, metrics)

    def __len__(self) -> int:
        return len(self._cache)

    async def authenticate_async(
        self, metadata: Mapping[str, str], peer_uris: Sequence[str]
    ) -> Identity:
        token = bearer_token(metadata)
        digest = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None:
            if now < cached.until:
                self._cache.move_to_end(digest)
                return cached.identity
            del self._cache[digest]
        review = self._inflight.get(digest)
        if review is None:  # one review per token at a time, whoever asks
            review = asyncio.ensure_future(self._review_and_remember(digest, token))
            self._inflight[digest] = review
            review.add_done_callback(lambda done: self._review_done(digest, done))
        # A caller that goes away (cancelled) does not cancel the review others wait for.
        return await asyncio.shield(review)

    async def _review_and_remember(self, digest: bytes, token: str) -> Identity:
        identity = await asyncio.to_thread(self._check, token)
        self._remember(digest, identity, token)
        return identity

    def _review_done(self, digest: bytes, review: asyncio.Future[Identity]) -> None:
        self._inflight.pop(digest, None)
        if not review.cancelled():
            review.exception()  # retrieved: no "never retrieved" warning when nobody waits

    def _remember(self, digest: bytes, identity: Identity, token: str) -> None:
        until = self._clock() + self._cache_ttl
        expiry = _token_expiry(token)
        if expiry is not None:
            until = min(until, self._clock() + (expiry - time.time()))
        self._cache[digest] = _Cached(identity, until)
        self._cache.move_to_end(digest)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    # ---- in a worker thread ----------------------------------------------------------------

    def _check(self, token: str) -> Identity:
        self.reviews += 1
        try:
            answer = self._review(token, self._audiences)
        except AuthenticationError:
            raise
        except Exception as exc:
            status = status_of(exc)
            if status == 403:
                reason = "istiod may not create TokenReviews (RBAC)"
            elif status is not None:
                reason = f"the API server answered {status}"
            else:
                reason = f"the API server is unreachable ({type(exc).__name__})"
            log.warning("TokenReview failed: %s: %s", reason, exc)
            raise AuthenticationError(f"cannot review the token: {reason}") from exc
        namespace, account = review_identity(answer.get("status") or {}, self._audiences)
        return Identity(self._trust_domain, namespace, account)

    def _create_review(self, token: str, audiences: Sequence[str]) -> Mapping[str, Any]:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": list(audiences)},
        }
        resp = self._kube.authentication().create_token_review(body, _preload_content=False)
        answer: Mapping[str, Any] = json.loads(resp.data)
        return answer
