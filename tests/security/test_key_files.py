"""Key files survive a crash mid-write: `write_atomic` failing at any step leaves the old key
whole (or no key at all), never a truncated one, and every key file is 0600 from its creation.
The crash is simulated by making the write, the fsync or the rename fail part-way."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from security import pki
from security.ca.authority import CertificateAuthority
from security.statefile import PRIVATE_MODE, ensure_dir, write_atomic
from security.tokens import KEY_FILE, TokenIssuer
from tests.security.util import TRUST_DOMAIN, FakeClock

OLD = pki.encode_key_pem(pki.generate_key())
NEW = pki.encode_key_pem(pki.generate_key())


def _half_then_fail(real_write: Callable[[int, bytes], int]) -> Callable[[int, bytes], int]:
    """An os.write that writes half of the first buffer, then fails like a full disk."""
    calls = {"n": 0}

    def write(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return int(real_write(fd, bytes(data[: len(data) // 2])))
        raise OSError(28, "No space left on device")

    return write


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".pyistio-tmp"))


@pytest.mark.parametrize("step", ["write", "fsync", "replace"])
def test_failed_write_keeps_the_old_key_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    target = tmp_path / "ca-key.pem"
    write_atomic(target, OLD, PRIVATE_MODE)

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(5, f"simulated crash in {step}")

    if step == "write":
        monkeypatch.setattr(os, "write", _half_then_fail(os.write))
    else:
        monkeypatch.setattr(os, step, fail)
    with pytest.raises(OSError, match=r"No space left|simulated crash"):
        write_atomic(target, NEW, PRIVATE_MODE)
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert pki.decode_key_pem(target.read_bytes())  # still a whole, loadable key
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _leftovers(tmp_path) == []  # the partial temporary file is gone too


def test_crash_creating_the_token_key_leaves_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setattr(os, "write", _half_then_fail(os.write))
    with pytest.raises(OSError, match="No space left"):
        TokenIssuer.load_or_create(state)
    monkeypatch.undo()
    assert not (state / KEY_FILE).exists()  # no truncated key for the next start to choke on
    issuer = TokenIssuer.load_or_create(state)  # the next start makes a whole one
    assert issuer.verify(issuer.issue("a", "b")).namespace == "a"


def test_leftover_temp_file_of_a_killed_writer_is_swept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ensure_dir(state)
    (state / ".pyistio-tmp.token-signing-key.pem.dead").write_bytes(NEW[:40])
    TokenIssuer.load_or_create(state)
    assert _leftovers(state) == []


def test_every_key_file_is_0600_and_the_dir_0700(tmp_path: Path) -> None:
    state = tmp_path / "state"
    CertificateAuthority.load_or_create(state, TRUST_DOMAIN, clock=FakeClock())
    TokenIssuer.load_or_create(state).revoke("default", "sleep")
    for name in ("ca-key.pem", KEY_FILE, "revoked-service-accounts.json"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
