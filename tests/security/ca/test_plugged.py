"""Plugged-in CA (Istio's cacerts files): signing with an intermediate, validation of the set."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pkg.errors import CAError
from security import pki
from security.ca.authority import CertificateAuthority
from tests.security.util import (
    TRUST_DOMAIN,
    FakeClock,
    PluggedCA,
    key_pem,
    spiffe,
    webpki_verify_client,
    write_plugged_ca,
)

PEM = serialization.Encoding.PEM


@pytest.fixture
def plugged(tmp_path: Path) -> PluggedCA:
    return write_plugged_ca(tmp_path / "cacerts")


def _load(plugged: PluggedCA, state_dir: Path, clock: FakeClock) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(
        state_dir, TRUST_DOMAIN, cacerts_dir=plugged.directory, clock=clock
    )


def test_leaves_are_signed_by_the_intermediate(
    plugged: PluggedCA, state_dir: Path, clock: FakeClock
) -> None:
    ca = _load(plugged, state_dir, clock)
    assert ca.plugged_in
    assert not state_dir.exists()  # nothing self-signed was created
    chain = ca.sign_csr(pki.build_csr(pki.generate_key(), []), [spiffe()])
    certs = [x509.load_pem_x509_certificate(pem.encode()) for pem in chain]
    # leaf, cert-chain.pem (the intermediate; its root is not repeated), root last
    assert certs[1:] == [plugged.intermediate, plugged.root]
    assert certs[0].issuer == plugged.intermediate.subject
    pki.verify_chain(chain[0], chain[1:-1], chain[-1], at=clock.now)
    webpki_verify_client(certs[0], [plugged.intermediate], ca.trust_bundle(), at=clock.now)


def test_credential_chain_and_trust_bundle(
    plugged: PluggedCA, state_dir: Path, clock: FakeClock
) -> None:
    ca = _load(plugged, state_dir, clock)
    credential = ca.issue([spiffe()])
    _, inter = x509.load_pem_x509_certificates(credential.cert_chain_pem)
    assert inter == plugged.intermediate
    assert ca.trust_bundle() == plugged.root.public_bytes(PEM)
    assert credential.roots_pem == ca.trust_bundle()
    assert not ca.check_root_rotation(clock.now + timedelta(days=3000))  # never rotated here


def test_ttl_is_clamped_to_the_intermediate(
    tmp_path: Path, state_dir: Path, clock: FakeClock
) -> None:
    plugged = write_plugged_ca(tmp_path / "cacerts", intermediate_days=10)
    ca = _load(plugged, state_dir, clock)
    leaf = ca.issue([spiffe()], timedelta(days=30))
    assert leaf.not_after == plugged.intermediate.not_valid_after_utc


@pytest.mark.parametrize(
    "missing", ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"]
)
def test_incomplete_set_names_the_missing_file(
    plugged: PluggedCA, state_dir: Path, clock: FakeClock, missing: str
) -> None:
    (plugged.directory / missing).unlink()
    with pytest.raises(CAError, match=rf"incomplete: missing {missing}"):
        _load(plugged, state_dir, clock)


def test_empty_cacerts_dir_falls_back_to_self_signed(
    tmp_path: Path, state_dir: Path, clock: FakeClock
) -> None:
    (tmp_path / "cacerts").mkdir()
    ca = CertificateAuthority.load_or_create(
        state_dir, TRUST_DOMAIN, cacerts_dir=tmp_path / "cacerts", clock=clock
    )
    assert not ca.plugged_in
    assert (state_dir / "ca-cert.pem").exists()


def test_key_must_match_the_cert(plugged: PluggedCA, state_dir: Path, clock: FakeClock) -> None:
    (plugged.directory / "ca-key.pem").write_bytes(key_pem(plugged.root_key))
    with pytest.raises(CAError, match=r"ca-key\.pem does not match .*ca-cert\.pem"):
        _load(plugged, state_dir, clock)


def test_chain_must_verify_to_the_root(
    plugged: PluggedCA, tmp_path: Path, state_dir: Path, clock: FakeClock
) -> None:
    other = write_plugged_ca(tmp_path / "other")
    (plugged.directory / "root-cert.pem").write_bytes(other.root.public_bytes(PEM))
    with pytest.raises(CAError, match=r"does not verify through cert-chain\.pem to root-cert\.pem"):
        _load(plugged, state_dir, clock)


def test_signer_must_be_a_ca(plugged: PluggedCA, state_dir: Path, clock: FakeClock) -> None:
    leaf_key = pki.generate_key()
    leaf = pki.build_leaf_cert(
        leaf_key.public_key(), pki.general_names([spiffe()]), plugged.intermediate,
        plugged.intermediate_key, clock.now - timedelta(hours=1), clock.now + timedelta(days=1),
    )  # fmt: skip
    (plugged.directory / "ca-cert.pem").write_bytes(leaf.public_bytes(PEM))
    (plugged.directory / "ca-key.pem").write_bytes(key_pem(leaf_key))
    with pytest.raises(CAError, match="cannot sign certificates"):
        _load(plugged, state_dir, clock)


def test_chain_without_the_signer_still_serves_it(
    plugged: PluggedCA, state_dir: Path, clock: FakeClock
) -> None:
    (plugged.directory / "cert-chain.pem").write_bytes(plugged.root.public_bytes(PEM))
    ca = _load(plugged, state_dir, clock)
    chain = ca.sign_csr(pki.build_csr(pki.generate_key(), []), [spiffe()])
    assert [x509.load_pem_x509_certificate(p.encode()) for p in chain[1:]] == [
        plugged.intermediate,
        plugged.root,
    ]
