"""Self-signed CA state on disk: created once, loaded after a restart, crash- and race-safe."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509

from pkg.errors import CAError
from security import pki
from security.ca.authority import CertificateAuthority
from security.statefile import write_atomic
from tests.security.util import TRUST_DOMAIN, FakeClock, spiffe


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_and_modes(ca: CertificateAuthority, state_dir: Path) -> None:
    assert _mode(state_dir / "ca-key.pem") == 0o600
    assert _mode(state_dir / "ca-cert.pem") == 0o644
    cert = x509.load_pem_x509_certificate((state_dir / "ca-cert.pem").read_bytes())
    assert cert == ca.root_cert
    assert (state_dir / "root-cert.pem").read_bytes() == ca.trust_bundle()
    key = pki.decode_key_pem((state_dir / "ca-key.pem").read_bytes())
    assert pki.key_matches(key, cert.public_key())
    assert not [p for p in state_dir.iterdir() if p.name.startswith(".pyistio-tmp")]


def test_restart_signs_with_the_same_root(
    ca: CertificateAuthority, state_dir: Path, clock: FakeClock
) -> None:
    before = (state_dir / "ca-key.pem").read_bytes()
    restarted = CertificateAuthority.load_or_create(state_dir, TRUST_DOMAIN, clock=clock)
    assert restarted.root_cert == ca.root_cert
    assert restarted.trust_bundle() == ca.trust_bundle()
    assert (state_dir / "ca-key.pem").read_bytes() == before
    chain = restarted.sign_csr(pki.build_csr(pki.generate_key(), []), [spiffe()])
    pki.verify_chain(chain[0], [], ca.trust_bundle(), at=clock.now)


def test_write_atomic_mode_is_exact_despite_umask(tmp_path: Path) -> None:
    target = tmp_path / "secret.pem"
    old = os.umask(0o077)
    try:
        write_atomic(target, b"x", 0o600)
        assert _mode(target) == 0o600
        write_atomic(target, b"y", 0o640)  # replaced, with the new mode
    finally:
        os.umask(old)
    assert target.read_bytes() == b"y" and _mode(target) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["secret.pem"]


def test_key_without_cert_is_an_interrupted_creation(state_dir: Path, clock: FakeClock) -> None:
    state_dir.mkdir()
    (state_dir / "ca-key.pem").write_bytes(pki.encode_key_pem(pki.generate_rsa_key()))
    (state_dir / ".pyistio-tmp.ca-cert.pem.abc").write_bytes(b"half")
    ca = CertificateAuthority.load_or_create(state_dir, TRUST_DOMAIN, clock=clock)
    key = pki.decode_key_pem((state_dir / "ca-key.pem").read_bytes())
    assert pki.key_matches(key, ca.root_cert.public_key())
    assert not (state_dir / ".pyistio-tmp.ca-cert.pem.abc").exists()


def test_cert_without_key_is_an_error(ca: CertificateAuthority, state_dir: Path) -> None:
    (state_dir / "ca-key.pem").unlink()
    with pytest.raises(CAError, match=r"ca-key\.pem is missing"):
        CertificateAuthority.load_or_create(state_dir, TRUST_DOMAIN)


def test_mismatched_key_is_an_error(ca: CertificateAuthority, state_dir: Path) -> None:
    (state_dir / "ca-key.pem").write_bytes(pki.encode_key_pem(pki.generate_rsa_key()))
    with pytest.raises(CAError, match="does not match"):
        CertificateAuthority.load_or_create(state_dir, TRUST_DOMAIN)


def test_missing_trust_bundle_is_repaired(
    ca: CertificateAuthority, state_dir: Path, clock: FakeClock
) -> None:
    (state_dir / "root-cert.pem").unlink()
    restarted = CertificateAuthority.load_or_create(state_dir, TRUST_DOMAIN, clock=clock)
    assert (state_dir / "root-cert.pem").read_bytes() == ca.trust_bundle()
    assert restarted.trust_bundle() == ca.trust_bundle()


def test_racing_threads_end_with_one_root(state_dir: Path) -> None:
    with ThreadPoolExecutor(max_workers=6) as pool:
        cas = list(
            pool.map(
                lambda _: CertificateAuthority.load_or_create(state_dir, TRUST_DOMAIN), range(6)
            )
        )
    roots = {ca.root_cert for ca in cas}
    assert len(roots) == 1
    on_disk = x509.load_pem_x509_certificate((state_dir / "ca-cert.pem").read_bytes())
    assert roots == {on_disk}


_RACER = """
import sys
from pathlib import Path
from security.ca.authority import CertificateAuthority
ca = CertificateAuthority.load_or_create(Path(sys.argv[1]), "cluster.local")
print(ca.root_cert.serial_number)
"""


def test_racing_processes_end_with_one_root(state_dir: Path) -> None:
    cwd = Path(__file__).resolve().parents[3]
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(state_dir)],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = [racer.communicate(timeout=60) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), [err for _, err in outputs]
    serials = {out.strip() for out, _ in outputs}
    on_disk = x509.load_pem_x509_certificate((state_dir / "ca-cert.pem").read_bytes())
    assert serials == {str(on_disk.serial_number).encode()}
