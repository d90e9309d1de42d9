"""Certificate expiry and root rotation under load (issue 8, campaign item 6).

One istiod with a plugged-in CA (Istio's `cacerts` files in ROOT_CA_DIR, ISTIO_MULTIROOT_MESH
on, DEFAULT_WORKLOAD_CERT_TTL of a few seconds), the two secure sidecars of security_helpers
(sleep → httpbin, mutual TLS, one connection and so one handshake per request), and continuous
traffic through them:

1. Workload certificates expire every few seconds and are renewed at half their life: both
   Envoys serve at least MIN_ROTATIONS + 1 distinct `default` serials while not one request
   fails, and the server sees the rotated client certificates in its handshakes. Renewals
   cost one `default` secret per rotation to that identity's proxy, nothing else (no storm).
2. Root rotation by Istio's procedure, each step an edit of the cacerts files that istiod picks
   up by itself: (1) root-cert.pem = old + new root, (2) a signer under the new root, (3)
   root-cert.pem = new root only. Each step is complete once both Envoys hold its result
   (their ROOTCA bundle, the issuer of their `default` certificate); not one request fails
   throughout, and at the end both hold only the new root and traffic still flows.
   CERT_ROTATION_ROOT_ROUNDS rotations in a row (a fresh CA each), 1 in CI.

Full run (documented in docs/reliability.md):
    CERT_ROTATION_SECONDS=120 CERT_ROTATION_RATE=200 CERT_ROTATION_MIN=50 \
    CERT_ROTATION_ROOT_ROUNDS=10 .venv/bin/pytest -s tests/e2e/test_cert_rotation.py
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from tests.security.util import PluggedCA, install_cacerts, write_plugged_ca

from .envoy import EnvoyProcess
from .mesh import received_updates, update_counters
from .net import wait_until
from .security_helpers import (
    HTTPBIN_PORT,
    SecureMesh,
    parse_xfcc,
    secret_certificate,
    secure_mesh,
    spiffe_id,
    uri_sans,
)
from .traffic import LoadGenerator

TTL = os.environ.get("CERT_ROTATION_TTL", "3s")  # renewed at half life (about every 2 s)
SECONDS = float(os.environ.get("CERT_ROTATION_SECONDS", "14"))  # longest load run per test
RATE = float(os.environ.get("CERT_ROTATION_RATE", "100"))  # requests per second
MIN_ROTATIONS = int(os.environ.get("CERT_ROTATION_MIN", "5"))  # per Envoy, in test 1
ROOT_ROUNDS = int(os.environ.get("CERT_ROTATION_ROOT_ROUNDS", "1"))  # successive root rotations
PEM = serialization.Encoding.PEM
SLEEP_ID = spiffe_id("default", "sleep")
HTTPBIN_ID = spiffe_id("default", "httpbin")


@dataclass
class Rig:
    mesh: SecureMesh
    cacerts: Path
    old: PluggedCA
    new: PluggedCA
    workdir: Path

    def fresh_ca(self, name: str) -> PluggedCA:
        """Another root and intermediate (same subject names, as every CA of this test)."""
        return write_plugged_ca(self.workdir / name, not_before=self.old.root.not_valid_before_utc)

    @property
    def envoys(self) -> tuple[EnvoyProcess, EnvoyProcess]:
        return self.mesh.server, self.mesh.client


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp("cert-rotation")
    since = datetime.now(UTC) - timedelta(days=1)
    old = write_plugged_ca(workdir / "old-ca", not_before=since)
    new = write_plugged_ca(workdir / "new-ca", not_before=since)
    cacerts = workdir / "cacerts"
    install_cacerts(cacerts, old, [old.root])
    env = {
        "DEFAULT_WORKLOAD_CERT_TTL": TTL,
        "SECRET_GRACE_PERIOD_RATIO": "0.5",
        "ROOT_CA_DIR": str(cacerts),
        "ISTIO_MULTIROOT_MESH": "true",
    }
    with secure_mesh(workdir, istiod_env=env, backend_keep=int(RATE * SECONDS) + 100) as mesh:
        yield Rig(mesh, cacerts, old, new, workdir)


def trusted_roots(envoy: EnvoyProcess) -> list[x509.Certificate]:
    """The roots of the ROOTCA validation context Envoy has active ([] when none)."""
    dump = envoy.config_dump(resource="dynamic_active_secrets")
    for entry in dump.get("configs", []):
        if entry.get("name") == "ROOTCA":
            ca = entry.get("secret", {}).get("validation_context", {}).get("trusted_ca", {})
            if "inline_bytes" in ca:
                return x509.load_pem_x509_certificates(base64.b64decode(ca["inline_bytes"]))
    return []


def signed_by(envoy: EnvoyProcess, signer: x509.Certificate) -> bool:
    """Whether Envoy's `default` certificate was signed by `signer` (by signature: both CAs
    of this test have the same subject names, as two runs of Istio's cert tooling would)."""
    cert = secret_certificate(envoy)
    if cert is None:
        return False
    try:
        cert.verify_directly_issued_by(signer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def sds_updates(envoy: EnvoyProcess) -> dict[str, int]:
    """Accepted SDS updates per secret name (`sds.<name>.update_success`)."""
    stats = envoy.stats(filter=r"^sds\.[^.]+\.update_success$")
    return {name.split(".")[1]: value for name, value in stats.items()}


def load(mesh: SecureMesh) -> LoadGenerator:
    """Continuous traffic sleep → httpbin, bounded by RATE * SECONDS requests and SECONDS."""
    return LoadGenerator(
        mesh.client_ip, HTTPBIN_PORT, rate=RATE, duration=SECONDS, host="httpbin", timeout=2.0
    )


def more_traffic(gen: LoadGenerator, n: int = 20) -> None:
    seen = len(gen.samples)
    wait_until(lambda: len(gen.samples) >= seen + n, 5.0, 0.02, f"{n} more requests")


# -- 1 -------------------------------------------------------------------------------------


def test_short_lived_certificates_rotate_under_load(rig: Rig) -> None:
    mesh = rig.mesh
    first = secret_certificate(mesh.server)
    assert first is not None
    lifetime = first.not_valid_after_utc - first.not_valid_before_utc
    # Backdated 2 minutes for clock skew, as Istio does; the TTL itself is a few seconds.
    assert lifetime.total_seconds() <= 120 + 5, f"TTL {TTL} not applied: {lifetime}"

    serials: dict[str, set[int]] = {envoy.name: set() for envoy in rig.envoys}

    def rotated() -> bool:
        for envoy in rig.envoys:
            cert = secret_certificate(envoy)
            if cert is not None:
                serials[envoy.name].add(cert.serial_number)
        return all(len(seen) > MIN_ROTATIONS for seen in serials.values())

    handshakes_before = mesh.server_handshakes()
    xds_before = {e.name: received_updates(update_counters(e)) for e in rig.envoys}
    sds_before = {e.name: sds_updates(e) for e in rig.envoys}
    mesh.backend.reset()
    began = time.monotonic()
    with load(mesh) as gen:
        wait_until(lambda: len(gen.samples) >= 20, 5.0, 0.02, "load running")
        wait_until(
            rotated,
            SECONDS - 2.0,
            0.1,
            f"{MIN_ROTATIONS} rotations of both `default` certificates ({serials})",
        )
        more_traffic(gen)
    elapsed = time.monotonic() - began
    sent = len(gen.samples)
    assert sent <= RATE * SECONDS
    assert not gen.failures(), gen.summary()
    assert set(gen.backends()) == {"httpbin"}, gen.backends()

    # Each request was its own mTLS handshake, and the server saw the client's rotated
    # certificates in them (XFCC Hash: the digest of the certificate the client presented).
    assert mesh.server_handshakes() - handshakes_before >= sent
    elements = [
        parse_xfcc(dict(r.headers)["x-forwarded-client-cert"])[-1] for r in mesh.backend.requests
    ]
    assert len(elements) == sent
    assert {e.get("URI") for e in elements} == {SLEEP_ID}
    client_certs = {e["Hash"] for e in elements}
    assert len(client_certs) > MIN_ROTATIONS // 2, client_certs
    for envoy, identity in zip(rig.envoys, (HTTPBIN_ID, SLEEP_ID), strict=True):
        cert = secret_certificate(envoy)
        assert cert is not None and uri_sans(cert) == [identity]
        assert signed_by(envoy, rig.old.intermediate)
    counts = {name: len(seen) - 1 for name, seen in serials.items()}

    # Renewals cost one `default` secret each, to that identity's proxy only: no other xDS
    # type is sent, the trust bundle is not re-sent, and there is no push storm.
    for envoy in rig.envoys:
        assert received_updates(update_counters(envoy)) == xds_before[envoy.name], envoy.name
        sds = sds_updates(envoy)
        assert sds.get("ROOTCA") == sds_before[envoy.name].get("ROOTCA"), (envoy.name, sds)
        sent_defaults = sds["default"] - sds_before[envoy.name]["default"]
        assert counts[envoy.name] <= sent_defaults <= 2 * counts[envoy.name] + 2, (
            envoy.name, sent_defaults, counts
        )  # fmt: skip
    print(
        f"\nworkload rotation: TTL {TTL}, {elapsed:.1f} s, rotations observed {counts}, "
        f"client certificates in handshakes {len(client_certs)}, {sent} requests, 0 failed, "
        f"SDS `default` updates {[sds_updates(e)['default'] for e in rig.envoys]}"
    )


# -- 2 -------------------------------------------------------------------------------------


def test_root_rotation_under_load(rig: Rig) -> None:
    mesh = rig.mesh
    for envoy in rig.envoys:
        assert trusted_roots(envoy) == [rig.old.root]
        assert signed_by(envoy, rig.old.intermediate)

    phases: dict[str, list[float]] = {}

    def step(name: str, signer: PluggedCA, roots: list[x509.Certificate]) -> None:
        """Edit the cacerts files and wait until both Envoys hold the result."""
        started = time.monotonic()
        install_cacerts(rig.cacerts, signer, roots)

        def done() -> bool:
            return all(
                trusted_roots(e) == roots and signed_by(e, signer.intermediate) for e in rig.envoys
            )

        wait_until(done, 8.0, 0.05, f"both Envoys at root rotation step {name!r}")
        phases.setdefault(name, []).append(time.monotonic() - started)

    handshakes_before = mesh.server_handshakes()
    mesh.backend.reset()
    current = rig.old
    with load(mesh) as gen:
        wait_until(lambda: len(gen.samples) >= 20, 5.0, 0.02, "load running")
        for round_ in range(ROOT_ROUNDS):
            new = rig.new if round_ == 0 else rig.fresh_ca(f"ca-{round_}")
            step("add new root", current, [current.root, new.root])
            more_traffic(gen)
            step("sign with new root", new, [current.root, new.root])
            more_traffic(gen)
            step("drop old root", new, [new.root])
            more_traffic(gen, 40)
            current = new
    sent = len(gen.samples)
    assert not gen.failures(), gen.summary()
    assert set(gen.backends()) == {"httpbin"}, gen.backends()
    assert mesh.server_handshakes() - handshakes_before >= sent

    # Only the new root is trusted, the certificates chain to it, the ADS streams never broke,
    # and traffic still flows over fresh mTLS handshakes.
    current.intermediate.verify_directly_issued_by(current.root)
    for envoy in rig.envoys:
        assert trusted_roots(envoy) == [current.root]
        assert signed_by(envoy, current.intermediate)
        assert envoy.stat("control_plane.connected_state") == 1
    assert mesh.istiod.get("/v1/root-cert").body == current.root.public_bytes(PEM)
    before = mesh.server_handshakes()
    for _ in range(5):
        resp = mesh.via_client()
        assert resp.status == 200 and resp.headers.get("x-backend") == "httpbin"
    assert mesh.server_handshakes() - before >= 5
    figures = ", ".join(
        f"{name} max {max(times):.2f} s (mean {sum(times) / len(times):.2f} s)"
        for name, times in phases.items()
    )
    print(f"\nroot rotation: {ROOT_ROUNDS} round(s); {figures}; {sent} requests, 0 failed")
