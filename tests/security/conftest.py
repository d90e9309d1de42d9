"""Fixtures for the security tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from security.ca.authority import CertificateAuthority
from tests.security.util import TRUST_DOMAIN, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def ca(state_dir: Path, clock: FakeClock) -> CertificateAuthority:
    """A self-signed CA on a fake clock."""
    return CertificateAuthority.load_or_create(state_dir, TRUST_DOMAIN, clock=clock)
