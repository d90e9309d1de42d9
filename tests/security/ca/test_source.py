"""WorkloadCredentials: cache per identity, renewal at the grace ratio, root rotation, idling."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from pkg.credentials import CredentialSource, Identity
from security.ca.authority import CertificateAuthority
from security.ca.source import WorkloadCredentials
from tests.security.util import TRUST_DOMAIN, FakeClock, load_certs

TTL = timedelta(hours=1)
ALICE = Identity(TRUST_DOMAIN, "default", "alice")
BOB = Identity(TRUST_DOMAIN, "shop", "bob")


@pytest.fixture
def source(ca: CertificateAuthority) -> WorkloadCredentials:
    return WorkloadCredentials(ca, ttl=TTL)


def _record(source: WorkloadCredentials) -> list[Identity | None]:
    seen: list[Identity | None] = []
    source.subscribe(seen.append)
    return seen


def test_is_a_credential_source(source: WorkloadCredentials) -> None:
    checked: CredentialSource = source
    assert checked.trust_bundle() == source.trust_bundle()


def test_one_cached_credential_per_identity(source: WorkloadCredentials) -> None:
    first = source.credential(ALICE)
    assert source.credential(ALICE) is first
    other = source.credential(BOB)
    assert other.serial != first.serial
    assert len(source) == 2
    (leaf,) = load_certs(first.cert_chain_pem)
    assert first.not_after - first.not_before == TTL + timedelta(minutes=2)
    assert leaf.extensions  # a real certificate
    assert source.ttl == TTL


def test_default_ttl_is_the_cas(ca: CertificateAuthority) -> None:
    credential = WorkloadCredentials(ca).credential(ALICE)
    assert credential.not_after - credential.not_before == timedelta(hours=24, minutes=2)


def test_refresh_renews_below_the_grace_ratio(
    source: WorkloadCredentials, clock: FakeClock
) -> None:
    seen = _record(source)
    first = source.credential(ALICE)
    clock.advance(timedelta(minutes=25))  # more than half left
    assert source.refresh() == []
    clock.advance(timedelta(minutes=10))  # 27 of 62 minutes left: below 0.5
    assert source.refresh() == [ALICE]
    assert seen == [ALICE]
    renewed = source.credential(ALICE)
    assert renewed.serial != first.serial
    assert renewed.not_before == clock.now.replace(microsecond=0) - timedelta(minutes=2)
    assert source.refresh() == []


def test_custom_grace_ratio(ca: CertificateAuthority, clock: FakeClock) -> None:
    source = WorkloadCredentials(ca, ttl=TTL, grace_ratio=0.2)
    source.credential(ALICE)
    clock.advance(timedelta(minutes=45))
    assert source.refresh() == []
    clock.advance(timedelta(minutes=5))
    assert source.refresh() == [ALICE]
    with pytest.raises(ValueError, match="grace_ratio"):
        WorkloadCredentials(ca, grace_ratio=1.5)


def test_credential_renews_past_the_renewal_point_and_tells_others(
    source: WorkloadCredentials, clock: FakeClock
) -> None:
    seen = _record(source)
    first = source.credential(ALICE)
    clock.advance(timedelta(minutes=40))
    renewed = source.credential(ALICE)
    assert renewed.serial != first.serial
    assert seen == [ALICE]  # no running loop here: told at once


async def test_renewal_notice_from_credential_is_deferred_in_a_loop(
    source: WorkloadCredentials, clock: FakeClock
) -> None:
    seen = _record(source)
    source.credential(ALICE)
    clock.advance(timedelta(minutes=40))
    source.credential(ALICE)
    assert seen == []  # not from inside the caller
    await asyncio.sleep(0)
    assert seen == [ALICE]


def test_idle_identities_are_forgotten(source: WorkloadCredentials, clock: FakeClock) -> None:
    source.credential(ALICE)
    source.credential(BOB)
    for _ in range(5):  # BOB keeps being asked for; ALICE is not
        clock.advance(timedelta(minutes=25))
        source.credential(BOB)
        source.refresh()
    assert ALICE not in source
    assert BOB in source


def test_a_failing_subscriber_does_not_stop_the_others(
    source: WorkloadCredentials, clock: FakeClock
) -> None:
    def broken(identity: Identity | None) -> None:
        raise RuntimeError("boom")

    source.subscribe(broken)
    seen = _record(source)
    source.credential(ALICE)
    clock.advance(timedelta(minutes=40))
    source.refresh()
    assert seen == [ALICE]


def test_root_rotation_is_announced_with_none(state_dir: Path, clock: FakeClock) -> None:
    ca = CertificateAuthority.load_or_create(
        state_dir, TRUST_DOMAIN, clock=clock, root_ttl=timedelta(days=10)
    )
    source = WorkloadCredentials(ca, ttl=timedelta(days=1))
    seen = _record(source)
    source.credential(ALICE)
    clock.advance(timedelta(hours=9))  # the root: fine; the workload cert: fine
    assert source.refresh(check_root=True) == []
    clock.advance(timedelta(days=8))  # 8.4 of 10 days gone
    announced = source.refresh(check_root=True)
    assert announced[0] is None
    assert seen[0] is None
    assert len(load_certs(source.trust_bundle())) == 2
    assert source.credential(ALICE).roots_pem == source.trust_bundle()


async def test_run_renews_and_checks_the_root(state_dir: Path, clock: FakeClock) -> None:
    ca = CertificateAuthority.load_or_create(
        state_dir, TRUST_DOMAIN, clock=clock, root_ttl=timedelta(days=10)
    )
    source = WorkloadCredentials(ca, ttl=TTL, root_check_interval=0)
    events: asyncio.Queue[Identity | None] = asyncio.Queue()
    source.subscribe(events.put_nowait)
    first = source.credential(ALICE)
    task = asyncio.create_task(source.run(interval=0.01))
    try:
        clock.advance(timedelta(minutes=40))
        assert await asyncio.wait_for(events.get(), timeout=5) == ALICE
        assert source.credential(ALICE).serial != first.serial
        clock.advance(timedelta(days=8, hours=12))
        assert await asyncio.wait_for(events.get(), timeout=5) is None
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_short_lived_certificates_are_not_due_at_birth(
    ca: CertificateAuthority, clock: FakeClock
) -> None:
    """The 2 min backdating is not part of the lifetime renewal is timed against: a 10 s
    certificate is renewed after ~5 s, not at once (which would re-issue on every request)."""
    source = WorkloadCredentials(ca, ttl=timedelta(seconds=10))
    seen = _record(source)
    first = source.credential(ALICE)
    assert source.credential(ALICE) is first
    assert source.refresh() == []
    clock.advance(timedelta(seconds=4))
    assert source.refresh() == []
    clock.advance(timedelta(seconds=2))
    assert source.refresh() == [ALICE]
    assert seen == [ALICE]
