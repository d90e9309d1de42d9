"""Self-signed root rotation: same key, new validity, the old root trusted until it expires."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from pkg.monitoring import REGISTRY
from security import pki
from security.ca.authority import CertificateAuthority
from tests.security.util import (
    START,
    TRUST_DOMAIN,
    FakeClock,
    load_certs,
    spiffe,
    webpki_verify_client,
)

ROOT_TTL = timedelta(days=100)
LIFETIME = ROOT_TTL + timedelta(minutes=2)  # the root is backdated like leaves


@pytest.fixture
def short_ca(state_dir: Path, clock: FakeClock) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(
        state_dir, TRUST_DOMAIN, clock=clock, root_ttl=ROOT_TTL
    )


def _at_fraction(clock: FakeClock, fraction: float) -> None:
    """Move to `fraction` of the first root's lifetime (created at START, backdated 2 min)."""
    clock.now = START - timedelta(minutes=2) + LIFETIME * fraction


def test_no_rotation_before_80_percent(short_ca: CertificateAuthority, clock: FakeClock) -> None:
    root = short_ca.root_cert
    _at_fraction(clock, 0.79)
    assert not short_ca.root_needs_rotation()
    assert not short_ca.check_root_rotation()
    assert short_ca.root_cert == root
    assert len(load_certs(short_ca.trust_bundle())) == 1


def test_rotation_after_80_percent(
    short_ca: CertificateAuthority, clock: FakeClock, state_dir: Path
) -> None:
    old_root = short_ca.root_cert
    _at_fraction(clock, 0.75)
    old_leaf = short_ca.issue([spiffe()], timedelta(days=30))
    _at_fraction(clock, 0.81)
    assert short_ca.check_root_rotation()

    new_root = short_ca.root_cert
    assert new_root != old_root
    assert new_root.serial_number != old_root.serial_number
    assert new_root.subject == old_root.subject
    assert pki.key_matches(
        pki.decode_key_pem((state_dir / "ca-key.pem").read_bytes()), new_root.public_key()
    )
    assert new_root.public_key() == old_root.public_key()
    assert new_root.not_valid_after_utc == clock.now.replace(microsecond=0) + ROOT_TTL
    assert load_certs(short_ca.trust_bundle()) == [new_root, old_root]

    # Certificates signed before the rotation verify against the new root alone.
    (leaf,) = load_certs(old_leaf.cert_chain_pem)
    new_root_pem = pki.encode_cert_pem(new_root)
    pki.verify_chain(old_leaf.cert_chain_pem, [], new_root_pem, at=clock.now)
    webpki_verify_client(leaf, [], new_root_pem, at=clock.now)
    # New leaves are signed by the new root and verify against the whole bundle.
    fresh = short_ca.sign_csr(pki.build_csr(pki.generate_key(), []), [spiffe()])
    assert x509.load_pem_x509_certificate(fresh[-1].encode()) == new_root
    pki.verify_chain(fresh[0], [], short_ca.trust_bundle(), at=clock.now)

    assert not short_ca.check_root_rotation()  # done once
    expiry = REGISTRY.get_sample_value("citadel_server_root_cert_expiry_timestamp")
    assert expiry == new_root.not_valid_after_utc.timestamp()


def test_rotation_is_persisted(
    short_ca: CertificateAuthority, clock: FakeClock, state_dir: Path
) -> None:
    old_root = short_ca.root_cert
    _at_fraction(clock, 0.9)
    assert short_ca.check_root_rotation()
    restarted = CertificateAuthority.load_or_create(
        state_dir, TRUST_DOMAIN, clock=clock, root_ttl=ROOT_TTL
    )
    assert restarted.root_cert == short_ca.root_cert
    assert load_certs(restarted.trust_bundle()) == [short_ca.root_cert, old_root]
    assert x509.load_pem_x509_certificate((state_dir / "ca-cert.pem").read_bytes()) == (
        short_ca.root_cert
    )


def test_another_istiod_picks_up_the_rotation(
    short_ca: CertificateAuthority, clock: FakeClock, state_dir: Path
) -> None:
    peer = CertificateAuthority.load_or_create(
        state_dir, TRUST_DOMAIN, clock=clock, root_ttl=ROOT_TTL
    )
    _at_fraction(clock, 0.85)
    assert short_ca.check_root_rotation()
    assert peer.check_root_rotation()  # reloads rather than rotating a second time
    assert peer.root_cert == short_ca.root_cert
    assert peer.trust_bundle() == short_ca.trust_bundle()


def test_old_root_leaves_the_bundle_when_it_expires(
    short_ca: CertificateAuthority, clock: FakeClock
) -> None:
    old_root = short_ca.root_cert
    _at_fraction(clock, 0.85)
    assert short_ca.check_root_rotation()
    clock.now = old_root.not_valid_after_utc + timedelta(seconds=1)
    assert short_ca.check_root_rotation()  # the bundle changed
    assert load_certs(short_ca.trust_bundle()) == [short_ca.root_cert]


def test_an_expired_root_is_rotated_at_start(
    short_ca: CertificateAuthority, clock: FakeClock, state_dir: Path
) -> None:
    old_root = short_ca.root_cert
    clock.advance(ROOT_TTL * 2)
    restarted = CertificateAuthority.load_or_create(
        state_dir, TRUST_DOMAIN, clock=clock, root_ttl=ROOT_TTL
    )
    assert restarted.root_cert != old_root
    assert restarted.root_cert.not_valid_after_utc == clock.now + ROOT_TTL
    assert load_certs(restarted.trust_bundle()) == [restarted.root_cert]
