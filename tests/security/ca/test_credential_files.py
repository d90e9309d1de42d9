"""PersistentCredentials: an istiod restarted on the same state dir serves each identity the
credential it issued before (no new key, no SDS push to a reconnecting proxy), unless that one
is no longer good; files are private and checked before use."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest

from pkg.credentials import Identity
from security.ca.authority import CertificateAuthority
from security.ca.credential_files import CREDENTIALS_DIR, PersistentCredentials
from tests.security.util import TRUST_DOMAIN, FakeClock

TTL = timedelta(hours=1)
ALICE = Identity(TRUST_DOMAIN, "default", "alice")
BOB = Identity(TRUST_DOMAIN, "shop", "bob")


def restarted(state_dir: Path, clock: FakeClock) -> PersistentCredentials:
    """What a new istiod process on `state_dir` builds."""
    ca = CertificateAuthority.load_or_create(state_dir, TRUST_DOMAIN, clock=clock)
    return PersistentCredentials(ca, state_dir, ttl=TTL)


def test_a_restart_serves_the_same_credential(state_dir: Path, clock: FakeClock) -> None:
    first = restarted(state_dir, clock).credential(ALICE)
    clock.advance(TTL / 4)  # well before renewal (half the lifetime)
    again = restarted(state_dir, clock).credential(ALICE)
    assert again == first  # same certificate, same key, same bundle: the same SDS secret
    # Another identity is issued as usual.
    assert restarted(state_dir, clock).credential(BOB).serial != first.serial


def test_files_are_private(state_dir: Path, clock: FakeClock) -> None:
    source = restarted(state_dir, clock)
    source.credential(ALICE)
    path = source.files.path(ALICE)
    assert path.parent == state_dir / CREDENTIALS_DIR
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ALICE.spiffe_id not in path.name  # names do not reveal identities


def test_a_credential_due_for_renewal_is_not_reused(state_dir: Path, clock: FakeClock) -> None:
    first = restarted(state_dir, clock).credential(ALICE)
    clock.advance(TTL * 0.6)  # less than half its lifetime left
    renewed = restarted(state_dir, clock).credential(ALICE)
    assert renewed.serial != first.serial
    clock.advance(TTL * 0.1)
    # ...and the renewed one is what the next restart finds.
    assert restarted(state_dir, clock).credential(ALICE) == renewed


def test_renewals_are_stored(state_dir: Path, clock: FakeClock) -> None:
    source = restarted(state_dir, clock)
    source.credential(ALICE)
    clock.advance(TTL * 0.6)
    assert source.refresh() == [ALICE]
    renewed = source.credential(ALICE)
    assert restarted(state_dir, clock).credential(ALICE) == renewed


def swap_key(data: bytes, other: bytes) -> bytes:
    marker = b"-----BEGIN PRIVATE"
    return data[: data.index(marker)] + other[other.index(marker) :]


@pytest.mark.parametrize(
    "damage",
    [
        lambda data, other: b"",
        lambda data, other: data[: len(data) // 2],  # truncated
        lambda data, other: b"\xff\xfe not pem",
        lambda data, other: other,  # another identity's file
        swap_key,  # a key that is not the certificate's
    ],
    ids=["empty", "truncated", "garbage", "other-identity", "wrong-key"],
)
def test_a_bad_file_is_replaced(state_dir: Path, clock: FakeClock, damage: object) -> None:
    source = restarted(state_dir, clock)
    first = source.credential(ALICE)
    source.credential(BOB)
    path, other = source.files.path(ALICE), source.files.path(BOB)
    path.write_bytes(damage(path.read_bytes(), other.read_bytes()))  # type: ignore[operator]
    fresh = restarted(state_dir, clock).credential(ALICE)
    assert fresh.serial != first.serial
    assert fresh.key_pem != first.key_pem
    assert restarted(state_dir, clock).credential(ALICE) == fresh  # stored over the bad one


def test_a_certificate_of_another_ca_is_not_reused(tmp_path: Path, clock: FakeClock) -> None:
    old_state, new_state = tmp_path / "old", tmp_path / "new"
    old = restarted(old_state, clock)
    first = old.credential(ALICE)
    new = restarted(new_state, clock)  # a new root
    new.files.path(ALICE).parent.mkdir(mode=0o700, parents=True)
    new.files.path(ALICE).write_bytes(old.files.path(ALICE).read_bytes())
    fresh = new.credential(ALICE)
    assert fresh.serial != first.serial
    assert fresh.roots_pem == new.trust_bundle()


def test_disk_is_read_once_per_identity(state_dir: Path, clock: FakeClock) -> None:
    source = restarted(state_dir, clock)
    first = source.credential(ALICE)
    clock.advance(TTL * 0.6)
    # Due: the in-memory one is renewed, the (equally old) stored one is not looked at again.
    renewed = source.credential(ALICE)
    assert renewed.serial != first.serial
