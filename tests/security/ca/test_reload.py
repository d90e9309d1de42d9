"""Plugged-in CA reload (Istio's cacerts file watch) and root rotation by Istio's procedure:
root added, signer moved under it, old root dropped; WorkloadCredentials follows each step."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pkg.credentials import Identity
from security.ca.authority import CertificateAuthority
from security.ca.source import WorkloadCredentials
from tests.security.util import (
    TRUST_DOMAIN,
    FakeClock,
    PluggedCA,
    install_cacerts,
    load_certs,
    renew_intermediate,
    webpki_verify_client,
    write_plugged_ca,
)

PEM = serialization.Encoding.PEM
ALICE = Identity(TRUST_DOMAIN, "default", "alice")


@pytest.fixture
def old(tmp_path: Path) -> PluggedCA:
    return write_plugged_ca(tmp_path / "old")


@pytest.fixture
def new(tmp_path: Path) -> PluggedCA:
    return write_plugged_ca(tmp_path / "new")


@pytest.fixture
def cacerts(tmp_path: Path, old: PluggedCA) -> Path:
    directory = tmp_path / "cacerts"
    install_cacerts(directory, old, [old.root])
    return directory


def _ca(cacerts: Path, tmp_path: Path, clock: FakeClock, multi_root: bool) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(
        tmp_path / "state", TRUST_DOMAIN, cacerts_dir=cacerts, clock=clock, multi_root=multi_root
    )


def test_unchanged_files_are_not_reloaded(cacerts: Path, tmp_path: Path, clock: FakeClock) -> None:
    ca = _ca(cacerts, tmp_path, clock, multi_root=True)
    assert not ca.reload_plugged()
    # Rewritten with the same content: read again, but nothing changed.
    (cacerts / "ca-cert.pem").write_bytes((cacerts / "ca-cert.pem").read_bytes())
    assert not ca.reload_plugged()


def test_root_change_needs_multiroot(
    cacerts: Path, tmp_path: Path, clock: FakeClock, old: PluggedCA, new: PluggedCA
) -> None:
    ca = _ca(cacerts, tmp_path, clock, multi_root=False)
    bundle = ca.trust_bundle()
    install_cacerts(cacerts, old, [old.root, new.root])
    assert not ca.reload_plugged()
    assert ca.trust_bundle() == bundle


def test_new_intermediate_under_same_root_needs_no_multiroot(
    cacerts: Path, tmp_path: Path, clock: FakeClock, old: PluggedCA
) -> None:
    ca = _ca(cacerts, tmp_path, clock, multi_root=False)
    renewed = renew_intermediate(old)
    install_cacerts(cacerts, renewed, [old.root])
    assert ca.reload_plugged()
    assert ca.signer_cert == renewed.intermediate
    assert ca.trust_bundle() == old.root.public_bytes(PEM)


def test_disjoint_bundle_is_refused(
    cacerts: Path, tmp_path: Path, clock: FakeClock, new: PluggedCA
) -> None:
    ca = _ca(cacerts, tmp_path, clock, multi_root=True)
    signer = ca.signer_cert
    install_cacerts(cacerts, new, [new.root])  # a one-step swap: peers would not trust it yet
    assert not ca.reload_plugged()
    assert ca.signer_cert == signer


def test_half_written_set_is_refused_then_picked_up(
    cacerts: Path, tmp_path: Path, clock: FakeClock, old: PluggedCA, new: PluggedCA
) -> None:
    ca = _ca(cacerts, tmp_path, clock, multi_root=True)
    install_cacerts(cacerts, old, [old.root, new.root])
    assert ca.reload_plugged()
    signer = ca.signer_cert
    # The new key is there, the new ca-cert.pem not yet: refused, the current CA kept.
    install_cacerts(cacerts, new, [old.root, new.root])
    (cacerts / "ca-cert.pem").write_bytes(old.intermediate.public_bytes(PEM))
    assert not ca.reload_plugged()
    assert ca.signer_cert == signer
    leaf = ca.issue([ALICE.spiffe_id])
    assert load_certs(leaf.cert_chain_pem)[1] == old.intermediate
    install_cacerts(cacerts, new, [old.root, new.root])
    assert ca.reload_plugged()
    assert ca.signer_cert == new.intermediate


def test_root_rotation_by_istios_procedure(
    cacerts: Path, tmp_path: Path, clock: FakeClock, old: PluggedCA, new: PluggedCA
) -> None:
    ca = _ca(cacerts, tmp_path, clock, multi_root=True)
    source = WorkloadCredentials(ca, ttl=timedelta(hours=1), clock=clock)
    announced: list[Identity | None] = []
    source.subscribe(announced.append)
    first = source.credential(ALICE)
    assert load_certs(first.roots_pem) == [old.root]

    # 1. Both roots trusted; the signer (and so every certificate) is unchanged.
    install_cacerts(cacerts, old, [old.root, new.root])
    assert source.refresh() == [None]
    assert announced == [None]
    step1 = source.credential(ALICE)
    assert step1.serial == first.serial
    assert load_certs(step1.roots_pem) == [old.root, new.root]

    # 2. The signer moves under the new root: the certificate is re-issued at once, and it
    #    verifies against the bundle every peer already holds (and against the new root alone).
    install_cacerts(cacerts, new, [old.root, new.root])
    assert source.refresh() == [None, ALICE]
    step2 = source.credential(ALICE)
    assert step2.serial != first.serial
    leaf, inter = load_certs(step2.cert_chain_pem)[:2]
    assert inter == new.intermediate
    webpki_verify_client(leaf, [inter], step1.roots_pem, at=clock.now)
    webpki_verify_client(leaf, [inter], new.root.public_bytes(PEM), at=clock.now)

    # 3. The old root is dropped: only the bundle changes.
    install_cacerts(cacerts, new, [new.root])
    assert source.refresh() == [None]
    step3 = source.credential(ALICE)
    assert step3.serial == step2.serial
    assert load_certs(step3.roots_pem) == [new.root]
    assert load_certs(ca.trust_bundle()) == [new.root]
    assert not source.refresh()  # nothing more to do


def test_root_and_signer_in_one_edit_is_accepted_with_a_warning(
    cacerts: Path,
    tmp_path: Path,
    clock: FakeClock,
    old: PluggedCA,
    new: PluggedCA,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Istio accepts it too (a superset bundle); peers may not trust the new root yet.
    ca = _ca(cacerts, tmp_path, clock, multi_root=True)
    install_cacerts(cacerts, new, [old.root, new.root])
    assert ca.reload_plugged()
    assert ca.signer_cert == new.intermediate
    assert "chains to a root proxies were not sent before" in caplog.text


def test_self_signed_rotation_keeps_certificates(tmp_path: Path, clock: FakeClock) -> None:
    # Same key and subject: leaves signed so far verify under the new root, so none is
    # re-issued (no signing burst across the mesh); only the bundle is announced.
    ca = CertificateAuthority.load_or_create(
        tmp_path / "state", TRUST_DOMAIN, clock=clock, root_ttl=timedelta(days=10)
    )
    source = WorkloadCredentials(ca, ttl=timedelta(days=30), grace_ratio=0.1, clock=clock)
    first = source.credential(ALICE)
    old_root = ca.root_cert
    clock.advance(timedelta(days=8, hours=2))
    assert source.refresh(check_root=True) == [None]
    assert ca.root_cert != old_root
    kept = source.credential(ALICE)
    assert kept.serial == first.serial
    assert len(load_certs(kept.roots_pem)) == 2
    (leaf,) = load_certs(kept.cert_chain_pem)
    leaf.verify_directly_issued_by(ca.root_cert)
