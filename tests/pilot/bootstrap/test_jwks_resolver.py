"""The JWKS resolver: real fetches from an aiohttp server on loopback (fetch, discovery,
change detection, failures, address policy, timeouts that never block the loop), and its
schedule (refresh, retries, backoff, eviction, cancellation) in fake time."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from pilot.bootstrap.jwks_resolver import (
    FetchError,
    HttpFetcher,
    JwksResolver,
    JwksSettings,
    blocked_ip_reason,
)
from pilot.model.jwks import PUBLIC_ONLY_JWKS, JwksDemand, JwksRef
from pkg.config.model import ConfigKey, Kind
from tests.helpers.aio import run_in_fake_time
from tests.helpers.jwks_server import JwksServer

RA = ConfigKey(Kind.REQUEST_AUTHENTICATION, "ra", "default")
NO_RETRIES = JwksSettings(retries=0)


def demand(ref: JwksRef, timeout: float = 5.0) -> dict[JwksRef, JwksDemand]:
    return {ref: JwksDemand(timeout, frozenset({RA}))}


@pytest_asyncio.fixture
async def server() -> AsyncIterator[JwksServer]:
    s = await JwksServer("127.0.0.1").start()
    yield s
    await s.stop()


class Pushes:
    def __init__(self) -> None:
        self.calls: list[frozenset[ConfigKey]] = []

    def __call__(self, keys: frozenset[ConfigKey]) -> None:
        self.calls.append(keys)


# ---- real fetches ------------------------------------------------------------------------


async def test_fetches_jwks_uri_and_pushes_the_policies_using_it(server: JwksServer) -> None:
    pushes = Pushes()
    resolver = JwksResolver(HttpFetcher(), NO_RETRIES, on_change=pushes)
    ref = JwksRef(server.url())
    try:
        await resolver.prime(demand(ref))
        result = resolver.snapshot.result(ref)
        assert result is not None
        assert result.jwks == server.jwks and result.error == ""
        assert pushes.calls == [frozenset({RA})]
        assert resolver.problems() == []
    finally:
        await resolver.close()


async def test_issuer_only_uses_openid_discovery(server: JwksServer) -> None:
    resolver = JwksResolver(HttpFetcher(), NO_RETRIES)
    ref = JwksRef(issuer=server.issuer + "/")
    try:
        await resolver.prime(demand(ref))
        result = resolver.snapshot.result(ref)
        assert result is not None and result.jwks == server.jwks
        assert result.jwks_uri == server.url("/jwks")
        assert server.requests == ["/.well-known/openid-configuration", "/jwks"]
    finally:
        await resolver.close()


async def test_refresh_pushes_only_when_the_keys_change(server: JwksServer) -> None:
    pushes = Pushes()
    resolver = JwksResolver(HttpFetcher(), NO_RETRIES, on_change=pushes)
    ref = JwksRef(server.url())
    try:
        await resolver.prime(demand(ref))
        first = server.jwks
        # The same keys, reformatted: nothing to push, the bytes proxies have are kept.
        server.jwks = json.dumps(json.loads(first), indent=2)
        await resolver.refresh()
        assert len(pushes.calls) == 1
        assert resolver.snapshot.keys_for(_rule(ref)) == first
        # A rotated key: pushed.
        server.rotate()
        await resolver.refresh()
        assert pushes.calls == [frozenset({RA})] * 2
        assert resolver.snapshot.keys_for(_rule(ref)) == server.jwks
    finally:
        await resolver.close()


async def test_failure_serves_public_only_keys_and_is_reported(server: JwksServer) -> None:
    pushes = Pushes()
    server.status = 503
    resolver = JwksResolver(HttpFetcher(), NO_RETRIES, on_change=pushes)
    ref = JwksRef(server.url())
    try:
        await resolver.prime(demand(ref))
        assert resolver.snapshot.keys_for(_rule(ref)) == PUBLIC_ONLY_JWKS
        assert pushes.calls == []  # nothing was served before either
        [problem] = resolver.problems()
        assert problem.startswith(f"jwks {server.url()}: fetch failed, tokens of this issuer")
        assert "status 503, message 'unavailable'" in problem
        # The server recovers: the keys are pushed, the problem goes away.
        server.status = 200
        await resolver.refresh()
        assert resolver.snapshot.keys_for(_rule(ref)) == server.jwks
        assert pushes.calls == [frozenset({RA})]
        assert resolver.problems() == []
        # It fails again: the keys fetched before are kept, and that is reported.
        server.status = 500
        await resolver.refresh()
        assert resolver.snapshot.keys_for(_rule(ref)) == server.jwks
        assert "refresh failed, still serving" in resolver.problems()[0]
    finally:
        await resolver.close()


async def test_a_document_that_is_not_a_jwks_is_refused(server: JwksServer) -> None:
    server.jwks = '{"secret": "internal"}'
    resolver = JwksResolver(HttpFetcher(), NO_RETRIES)
    ref = JwksRef(server.url())
    try:
        await resolver.prime(demand(ref))
        assert resolver.snapshot.keys_for(_rule(ref)) == PUBLIC_ONLY_JWKS
        assert 'no "keys" array' in resolver.problems()[0]
    finally:
        await resolver.close()


async def test_a_hanging_server_times_out_without_blocking_the_loop(server: JwksServer) -> None:
    resolver = JwksResolver(HttpFetcher(), NO_RETRIES)
    ref = JwksRef(server.url("/hang"))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        await resolver.prime(demand(ref, timeout=0.3))
        assert ticks >= 5  # the loop kept running while the fetch waited
        assert "timed out after 0.3s" in resolver.problems()[0]
    finally:
        task.cancel()
        await resolver.close()


async def test_redirects_are_followed(server: JwksServer) -> None:
    fetch = HttpFetcher()
    try:
        body = await fetch(server.url("/redirect"), 5.0)
        assert body.decode() == server.jwks
    finally:
        await fetch.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is link-local"),
        ("http://[fe80::1]/jwks", "fe80::1 is link-local"),
        ("http://100.100.100.200/jwks", "is a known cloud metadata address"),
        ("file:///etc/passwd", "only http:// and https:// URLs are fetched"),
    ],
)
async def test_forbidden_targets_are_never_contacted(url: str, message: str) -> None:
    fetch = HttpFetcher()
    try:
        with pytest.raises(FetchError, match=message):
            await fetch(url, 5.0)
    finally:
        await fetch.close()


async def test_a_redirect_to_a_forbidden_address_is_refused(server: JwksServer) -> None:
    fetch = HttpFetcher()
    try:
        with pytest.raises(FetchError, match="link-local"):
            await fetch(server.url("/redirect?to=http://169.254.169.254/"), 5.0)
    finally:
        await fetch.close()


async def test_blocked_cidrs_apply_to_literal_and_resolved_addresses(server: JwksServer) -> None:
    fetch = HttpFetcher(blocked_cidrs=["127.0.0.0/8", "::1/128"])
    try:
        with pytest.raises(FetchError, match=r"in blocked CIDR range 127\.0\.0\.0/8"):
            await fetch(server.url(), 5.0)
        with pytest.raises(FetchError, match=r"resolved IP .* is in blocked CIDR range"):
            await fetch(f"http://localhost:{server.port}/jwks", 5.0)
    finally:
        await fetch.close()


async def test_oversized_bodies_are_refused(server: JwksServer) -> None:
    fetch = HttpFetcher()
    try:
        with pytest.raises(FetchError, match="larger than 1048576 bytes"):
            await fetch(server.url("/big"), 5.0)
    finally:
        await fetch.close()


def test_blocked_ip_reason() -> None:
    ip = ipaddress.ip_address
    assert blocked_ip_reason(ip("127.0.0.1")) is None
    assert blocked_ip_reason(ip("10.1.2.3")) is None
    assert blocked_ip_reason(ip("::ffff:169.254.169.254")) is not None
    assert blocked_ip_reason(ip("224.0.0.251")) is not None
    assert blocked_ip_reason(ip("ff02::1")) is not None
    assert blocked_ip_reason(ip("fd00:ec2::254")) is not None
    assert blocked_ip_reason(ip("10.1.2.3"), [ipaddress.ip_network("10.0.0.0/8")]) is not None


# ---- the schedule, in fake time -----------------------------------------------------------


class FakeFetch:
    """Answers from `bodies[url]`; a missing URL fails. Records (loop time, url)."""

    def __init__(self, bodies: dict[str, str] | None = None) -> None:
        self.bodies = bodies or {}
        self.calls: list[tuple[float, str]] = []

    async def __call__(self, url: str, timeout: float) -> bytes:
        self.calls.append((asyncio.get_running_loop().time(), url))
        await asyncio.sleep(0)
        if url not in self.bodies:
            raise FetchError(f"GET {url}: connection refused")
        return self.bodies[url].encode()


URL = "http://keys.test/jwks"
KEYS_A = '{"keys": [{"kty": "oct", "kid": "a", "k": "c2VjcmV0LWE"}]}'
KEYS_B = '{"keys": [{"kty": "oct", "kid": "b", "k": "c2VjcmV0LWI"}]}'


def _rule(ref: JwksRef) -> Any:
    class Rule:
        jwks = ""
        jwks_uri = ref.jwks_uri
        issuer = ref.issuer

    return Rule()


def test_keys_are_refreshed_every_interval_and_changes_pushed() -> None:
    async def scenario() -> None:
        fetch = FakeFetch({URL: KEYS_A})
        pushes = Pushes()
        resolver = JwksResolver(fetch, JwksSettings(refresh_interval=1200.0), on_change=pushes)
        await resolver.prime(demand(JwksRef(URL)))
        assert [t for t, _ in fetch.calls] == [0.0]
        await asyncio.sleep(1199)
        assert len(fetch.calls) == 1
        fetch.bodies[URL] = KEYS_B
        await asyncio.sleep(2)
        assert [t for t, _ in fetch.calls] == [0.0, 1200.0]
        assert len(pushes.calls) == 2
        assert resolver.snapshot.keys_for(_rule(JwksRef(URL))) == KEYS_B
        await asyncio.sleep(1200)
        assert [t for t, _ in fetch.calls] == [0.0, 1200.0, 2400.0]
        assert len(pushes.calls) == 2
        await resolver.close()

    run_in_fake_time(scenario(), end=10_000)


def test_failures_retry_then_back_off() -> None:
    async def scenario() -> None:
        fetch = FakeFetch()
        resolver = JwksResolver(fetch)
        await resolver.prime(demand(JwksRef(URL)))
        await asyncio.sleep(8 + 60 + 8 + 120 + 8 + 240 + 1)
        times = [t for t, _ in fetch.calls]
        first = [0.0]
        background_retries = [float(i) for i in range(0, 8)]  # 1 + 7 retries, 1s apart
        assert times[:9] == first + background_retries
        # Then every refresh (with its retries) fails: after 1m, 2m, 4m ...
        starts = [times[i] for i in (9, 17, 25)]
        assert starts == [7 + 60.0, 7 + 60 + 7 + 120.0, 7 + 60 + 7 + 120 + 7 + 240.0]
        await resolver.close()

    run_in_fake_time(scenario(), end=10_000)


def test_backoff_is_capped_and_resets_on_success() -> None:
    async def scenario() -> None:
        fetch = FakeFetch()
        settings = JwksSettings(retries=0)
        resolver = JwksResolver(fetch, settings)
        await resolver.prime(demand(JwksRef(URL)))
        await asyncio.sleep(20_000)
        gaps = [b - a for (a, _), (b, _) in zip(fetch.calls, fetch.calls[1:], strict=False)]
        assert gaps[:8] == [0, 60, 120, 240, 480, 960, 1920, 3600]
        assert set(gaps[8:]) == {3600}
        fetch.bodies[URL] = KEYS_A
        last = fetch.calls[-1][0]
        await asyncio.sleep(last + 3600 - asyncio.get_running_loop().time() + 1)
        assert fetch.calls[-1][0] == last + 3600  # succeeds
        await asyncio.sleep(1200)
        assert fetch.calls[-1][0] == last + 3600 + 1200  # back to the normal interval
        await resolver.close()

    run_in_fake_time(scenario(), end=50_000)


def test_keys_are_evicted_after_a_week_without_a_good_refresh() -> None:
    week = 7 * 24 * 3600.0

    async def scenario() -> None:
        fetch = FakeFetch({URL: KEYS_A})
        pushes = Pushes()
        resolver = JwksResolver(fetch, JwksSettings(retries=0), on_change=pushes)
        ref = JwksRef(URL)
        await resolver.prime(demand(ref))
        del fetch.bodies[URL]
        await asyncio.sleep(week - 3600)
        assert resolver.snapshot.keys_for(_rule(ref)) == KEYS_A
        await asyncio.sleep(3 * 3600)
        assert resolver.snapshot.keys_for(_rule(ref)) == PUBLIC_ONLY_JWKS
        assert len(pushes.calls) == 2
        await resolver.close()

    run_in_fake_time(scenario(), end=week * 2)


def test_dropped_demand_stops_fetching_and_forgets_the_keys() -> None:
    async def scenario() -> None:
        fetch = FakeFetch({URL: KEYS_A, "http://other/jwks": KEYS_B})
        resolver = JwksResolver(fetch)
        await resolver.prime(demand(JwksRef(URL)))
        resolver.set_demand(demand(JwksRef("http://other/jwks")))
        await resolver.settled()
        assert resolver.snapshot.result(JwksRef(URL)) is None
        await asyncio.sleep(3 * 1200 + 1)
        assert [u for _, u in fetch.calls].count(URL) == 1
        assert [u for _, u in fetch.calls].count("http://other/jwks") == 4
        await resolver.close()

    run_in_fake_time(scenario(), end=10_000)


def test_cancellation_propagates_through_fetches() -> None:
    async def scenario() -> None:
        cancelled: list[str] = []

        async def hang(url: str, timeout: float) -> bytes:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(url)
                raise
            return b""

        resolver = JwksResolver(hang)
        waiter = asyncio.create_task(resolver.prime(demand(JwksRef(URL))))
        await asyncio.sleep(1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await resolver.close()
        assert cancelled == [URL]
        assert resolver.problems() == []

    run_in_fake_time(scenario())


def test_waiting_for_first_fetches_ends_when_the_key_set_is_dropped() -> None:
    async def scenario() -> None:
        async def hang(url: str, timeout: float) -> bytes:
            await asyncio.Event().wait()
            return b""

        resolver = JwksResolver(hang)
        waiter = asyncio.create_task(resolver.prime(demand(JwksRef(URL))))
        await asyncio.sleep(0)
        resolver.set_demand({})
        await asyncio.wait_for(waiter, 1)
        await resolver.close()

    run_in_fake_time(scenario())
