"""TokenReview authentication (security/server/kube_token.py) against the fake API server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jwt
import pytest

from pkg.credentials import Identity
from pkg.errors import AuthenticationError
from pkg.kube.client import KubeClient
from security.server.authenticate import (
    BearerTokenAuthenticator,
    authenticate_any,
    authenticate_any_async,
)
from security.server.kube_token import TokenReviewAuthenticator, review_identity
from security.tokens import TokenIssuer
from tests.helpers.aio import eventually
from tests.helpers.kube.fake_apiserver import FakeApiServer

TD = "cluster.local"


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def client(api: FakeApiServer) -> Iterator[KubeClient]:
    kube_client = api.client()
    yield kube_client
    kube_client.close()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reviewer(client: KubeClient) -> TokenReviewAuthenticator:
    return TokenReviewAuthenticator(client, TD)


async def test_a_registered_token_is_its_service_account(
    api: FakeApiServer, reviewer: TokenReviewAuthenticator
) -> None:
    api.register_token("t1", "shop", "cart", ("istio-ca",))
    found = await reviewer.authenticate_async(bearer("t1"), [])
    assert found == Identity(TD, "shop", "cart")


@pytest.mark.parametrize(
    ("audiences", "token", "reason"),
    [
        (("api",), "t2", "is invalid for the target audiences"),
        (("istio-ca",), "unknown", "token lookup failed"),
    ],
)
async def test_refusals_name_the_reason_never_the_token(
    api: FakeApiServer,
    reviewer: TokenReviewAuthenticator,
    audiences: tuple[str, ...],
    token: str,
    reason: str,
) -> None:
    api.register_token("t2", "shop", "cart", audiences)
    with pytest.raises(AuthenticationError) as info:
        await reviewer.authenticate_async(bearer(token), [])
    assert "the service account authentication returns an error" in str(info.value)
    assert reason in str(info.value)
    assert token not in str(info.value).replace("token lookup", "")


async def test_positive_reviews_are_cached_briefly_and_by_hash(
    api: FakeApiServer, client: KubeClient
) -> None:
    clock = Clock()
    reviewer = TokenReviewAuthenticator(client, TD, cache_ttl=10.0, cache_size=2, clock=clock)
    for name in ("a", "b", "c"):
        api.register_token(f"tok-{name}", "ns", name, ("istio-ca",))
    await reviewer.authenticate_async(bearer("tok-a"), [])
    await reviewer.authenticate_async(bearer("tok-a"), [])
    assert reviewer.reviews == 1
    assert all(b"tok-a" not in key for key in reviewer._cache)  # keyed by a hash
    clock.now += 10.5  # expired: asked again
    await reviewer.authenticate_async(bearer("tok-a"), [])
    assert reviewer.reviews == 2
    await reviewer.authenticate_async(bearer("tok-b"), [])
    await reviewer.authenticate_async(bearer("tok-c"), [])
    assert len(reviewer) == 2  # bounded: the least recently used one went
    await reviewer.authenticate_async(bearer("tok-a"), [])
    assert reviewer.reviews == 5


async def test_the_cache_never_outlives_the_token(api: FakeApiServer, client: KubeClient) -> None:
    clock = Clock()
    reviewer = TokenReviewAuthenticator(client, TD, cache_ttl=60.0, clock=clock)
    token = jwt.encode({"exp": int(time.time()) + 2}, "k" * 32, algorithm="HS256")
    api.register_token(token, "ns", "short", ("istio-ca",))
    await reviewer.authenticate_async(bearer(token), [])
    clock.now += 5  # past the token's exp, well within cache_ttl
    await reviewer.authenticate_async(bearer(token), [])
    assert reviewer.reviews == 2


async def test_failures_are_not_cached(
    api: FakeApiServer, reviewer: TokenReviewAuthenticator
) -> None:
    with pytest.raises(AuthenticationError):
        await reviewer.authenticate_async(bearer("late"), [])
    api.register_token("late", "ns", "sa", ("istio-ca",))
    assert (await reviewer.authenticate_async(bearer("late"), [])).service_account == "sa"


async def test_reviews_run_off_the_event_loop_and_concurrent_ones_are_shared(
    client: KubeClient,
) -> None:
    loop_thread = threading.get_ident()
    release = threading.Event()
    threads: list[int] = []

    def review(token: str, audiences: Sequence[str]) -> Mapping[str, Any]:
        threads.append(threading.get_ident())
        assert release.wait(5)
        user = {"username": "system:serviceaccount:ns:sa", "groups": ["system:serviceaccounts"]}
        return {"status": {"authenticated": True, "user": user}}

    reviewer = TokenReviewAuthenticator(client, TD, review=review)
    calls = [asyncio.ensure_future(reviewer.authenticate_async(bearer("x"), [])) for _ in range(5)]
    # The loop is free while the review blocks in its thread.
    await eventually(lambda: bool(threads), message="the review started")
    calls[0].cancel()  # a caller that goes away does not cancel the others' review
    release.set()
    found = await asyncio.gather(*calls[1:])
    assert {f.service_account for f in found} == {"sa"}
    assert calls[0].cancelled()
    assert threads and loop_thread not in threads
    assert reviewer.reviews == 1


async def test_an_unreachable_api_server_is_a_clear_refusal() -> None:
    client = KubeClient.for_url("http://127.0.0.1:9")  # nothing listens on port 9
    reviewer = TokenReviewAuthenticator(client, TD)
    with pytest.raises(AuthenticationError, match="cannot review the token: the API server is"):
        await reviewer.authenticate_async(bearer("x"), [])
    client.close()


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ({"authenticated": False}, "the token is not authenticated"),
        ({"authenticated": True, "user": {"username": "alice", "groups": ["devs"]}},
         "the token is not a service account"),
        ({"authenticated": True, "user": {"username": "system:serviceaccount:ns",
                                          "groups": ["system:serviceaccounts"]}},
         "invalid username field"),
        ({"authenticated": True, "audiences": ["api"], "user": {}}, "not valid for audiences"),
    ],
)  # fmt: skip
def test_review_results_istio_refuses(status: dict[str, Any], reason: str) -> None:
    with pytest.raises(AuthenticationError, match=reason):
        review_identity(status, ("istio-ca",))


async def test_async_and_sync_authenticators_mix(
    api: FakeApiServer, reviewer: TokenReviewAuthenticator, tmp_path: Any
) -> None:
    issuer = TokenIssuer.load_or_create(tmp_path)
    chain = (BearerTokenAuthenticator(issuer, TD), reviewer)
    api.register_token("kube", "ns", "k8s", ("istio-ca",))
    own = issuer.issue("ns", "own")
    assert (await authenticate_any_async(chain, bearer(own), [])).service_account == "own"
    assert (await authenticate_any_async(chain, bearer("kube"), [])).service_account == "k8s"
    assert reviewer.reviews == 1  # the istiod-issued token never reached the API server
    # The synchronous helper cannot await: it says so instead of blocking.
    with pytest.raises(AuthenticationError, match="kube-token: needs authenticate_any_async"):
        authenticate_any(chain, bearer("kube"), [])
