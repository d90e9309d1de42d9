"""Control-plane death (issue 8, campaign item 1): istiod SIGKILLed, then SIGTERMed, while two
real sidecar Envoys carry steady mutual-TLS traffic through the mesh on the secure port.

Topology (security_helpers.secure_mesh): client `sleep` Envoy → mTLS → server `httpbin`
Envoy → backend, plus one more client sidecar (`notsleep`) so three proxies are connected.
Every proxy authenticates with a token and holds its SPIFFE certificate over SDS from
istiod's CA; `maxRequestsPerConnection: 1` makes every request a fresh mTLS handshake.

1. SIGKILL mid-traffic, restart on the same ports and `--state-dir`: no request fails; every
   proxy reconnects, re-subscribes and is SYNCED on every type with nothing sent (Envoy's xDS
   and SDS counters unchanged); the CA root is byte-identical (`/v1/root-cert` and the state
   dir); the certificates Envoy holds still chain to it.
2. SIGTERM with the three proxies connected: istiod exits 0 within 5 s, every Envoy sees its
   stream end with a gRPC status (not a reset), and the mesh keeps serving meanwhile.

Size: CONTROL_PLANE_DEATH_RATE requests/s (default 200) for CONTROL_PLANE_DEATH_SECONDS
(default 6; the full-size run is 20, see docs/reliability.md).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from pilot.xds.server import SHUTDOWN_MESSAGE

from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import received_updates, syncz_entry, update_counters
from .net import wait_until
from .security_helpers import (
    HTTPBIN_PORT,
    SECRET_TYPE,
    SecureMesh,
    log_lines,
    secret_certificate,
    secure_mesh,
    watching_secrets,
)
from .test_istiod_restart import CDS, EDS, LDS
from .traffic import LoadGenerator

RATE = float(os.environ.get("CONTROL_PLANE_DEATH_RATE", "200"))
SECONDS = float(os.environ.get("CONTROL_PLANE_DEATH_SECONDS", "6"))
SHUTDOWN_LIMIT = 5.0  # seconds from SIGTERM to exit
EXTRA_CLIENT = "notsleep"
BASE_TYPES = (CDS, EDS, LDS, SECRET_TYPE)
# Envoy's SDS subscription counters (`sds.<secret>.update_*`).
_SDS_STAT = re.compile(
    r"^sds\.[^.]+\.(update_attempt|update_success|update_rejected|update_failure)$"
)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureMesh]:
    workdir = tmp_path_factory.mktemp("cp-death")
    with secure_mesh(workdir, extra_clients=[EXTRA_CLIENT], backend_keep=100) as running:
        # Envoy logs how its xDS stream ended (grpc_stream.h) at debug level, config logger.
        for envoy in all_envoys(running):
            assert envoy.admin_post("/logging?config=debug").status == 200
        yield running


def all_envoys(mesh: SecureMesh) -> list[EnvoyProcess]:
    return [mesh.server, mesh.client, *(c.envoy for c in mesh.clients.values())]


def all_proxies(mesh: SecureMesh) -> list[str]:
    extra = [f"{c.opts.name}.{c.opts.namespace}" for c in mesh.clients.values()]
    return [*mesh.proxies(), *extra]


def xds_counters(envoy: EnvoyProcess) -> dict[str, int]:
    """What Envoy was sent on every subscription: CDS, LDS, RDS, EDS and SDS."""
    sds = {k: v for k, v in envoy.stats(filter=r"^sds\.").items() if _SDS_STAT.match(k)}
    return received_updates({**update_counters(envoy), **sds})


def state_root(istiod: IstiodProcess) -> bytes:
    return (istiod.state_dir / "root-cert.pem").read_bytes()


def reconnected(istiod: IstiodProcess, proxy: str) -> dict[str, Any] | None:
    """The proxy's entry in /debug/syncz once its stream watches its SDS secrets and at least
    CDS, EDS and LDS (RDS too for a client), and every type it watches is SYNCED."""
    if watching_secrets(istiod, proxy) is None:
        return None
    entry = syncz_entry(istiod, proxy)
    if entry is None:
        return None
    resources = entry.get("resources", {})
    if not set(BASE_TYPES) <= set(resources):
        return None
    if any(r.get("status") != "SYNCED" for r in resources.values()):
        return None
    return entry


def stream_closes(envoy: EnvoyProcess) -> list[str]:
    return log_lines(envoy.log_path, "gRPC config stream to xds-grpc closed")


def test_sigkill_under_mtls_load(mesh: SecureMesh) -> None:
    istiod = mesh.istiod
    proxies = all_proxies(mesh)
    envoys = all_envoys(mesh)
    types = {}
    for proxy in proxies:
        entry = wait_until(lambda p=proxy: reconnected(istiod, p), 10.0, 0.05, f"{proxy} synced")
        types[proxy] = set(entry["resources"])
    closes_before = {envoy.name: len(stream_closes(envoy)) for envoy in envoys}
    root_http = istiod.get("/v1/root-cert").body
    root_file = state_root(istiod)
    assert b"BEGIN CERTIFICATE" in root_http
    before = {envoy.name: xds_counters(envoy) for envoy in envoys}
    certs_before = {envoy.name: secret_certificate(envoy) for envoy in envoys}
    assert all(certs_before.values()), certs_before
    handshakes_before = mesh.server_handshakes()

    load = LoadGenerator(
        mesh.client_ip, HTTPBIN_PORT, rate=RATE, duration=SECONDS, host="httpbin", timeout=2.0
    )
    with load:
        wait_until(lambda: len(load.samples) >= RATE * 0.5, 5.0, 0.02, "load running")
        old_pid = istiod.pid
        killed_at = time.monotonic()
        # Same ports, same --state-dir (the CA's root and key, the token key).
        assert istiod.restart(graceful=False) == -9, istiod.log_tail()
        ready = time.monotonic() - killed_at
        for proxy in proxies:
            wait_until(
                lambda p=proxy: reconnected(istiod, p),
                15.0,
                0.05,
                f"{proxy} back on the new istiod, watching its secrets, every type SYNCED",
            )
        resynced = time.monotonic() - killed_at
        assert istiod.pid != old_pid
        for envoy in envoys:
            envoy.wait_for(
                lambda e=envoy: e.stat("control_plane.connected_state") == 1, 5.0, "connected"
            )
        load.wait_done()
    sent = len(load.samples)
    assert sent >= RATE * SECONDS * 0.5, load.summary()
    assert not load.failures(), load.summary()
    assert set(load.backends()) == {"httpbin"}, load.backends()
    # Each request was a new mTLS handshake (maxRequestsPerConnection 1), before, during and
    # after the kill: the certificates kept validating.
    assert mesh.server_handshakes() - handshakes_before >= sent

    # Every proxy is SYNCED without istiod having sent anything on the new stream...
    for proxy in proxies:
        entry = syncz_entry(istiod, proxy)
        assert entry is not None
        assert set(entry["resources"]) == types[proxy], entry
        sent_nonces = {t: r.get("sent", "") for t, r in entry["resources"].items()}
        assert not any(sent_nonces.values()), f"{proxy} was sent config on reconnect: {entry}"
    # ...and no Envoy received any update (CDS/LDS/RDS/EDS, nor a new certificate over SDS).
    for envoy in envoys:
        after = xds_counters(envoy)
        changed = {k: (before[envoy.name].get(k), v) for k, v in after.items()
                   if before[envoy.name].get(k) != v}  # fmt: skip
        assert not changed, f"{envoy.name} received updates after the reconnect: {changed}"
        cert = secret_certificate(envoy)
        assert cert is not None and certs_before[envoy.name] is not None
        assert cert.serial_number == certs_before[envoy.name].serial_number

    # The CA root is the same, byte for byte, over HTTP and in the state dir.
    assert istiod.get("/v1/root-cert").body == root_http
    assert state_root(istiod) == root_file
    (root,) = x509.load_pem_x509_certificates(root_http)
    for envoy in envoys:
        cert = secret_certificate(envoy)
        assert cert is not None
        cert.verify_directly_issued_by(root)
    # Envoy saw the SIGKILL as a reset of its stream (status 13 or 14, "reset"/"termination").
    for envoy in envoys:
        first = stream_closes(envoy)[closes_before[envoy.name]]
        assert "reset" in first or "termination" in first, first
    print(
        f"\nsigkill: {sent} requests at {RATE:.0f}/s, {len(load.failures())} failed; "
        f"istiod ready again {ready:.2f} s and {len(proxies)} proxies SYNCED {resynced:.2f} s "
        f"after the kill"
    )


def test_sigterm_closes_streams_and_exits_fast(mesh: SecureMesh) -> None:
    istiod = mesh.istiod
    proxies = all_proxies(mesh)
    envoys = all_envoys(mesh)
    for proxy in proxies:
        wait_until(lambda p=proxy: reconnected(istiod, p), 10.0, 0.05, f"{proxy} synced")
    closes_before = {envoy.name: len(stream_closes(envoy)) for envoy in envoys}

    load = LoadGenerator(
        mesh.client_ip, HTTPBIN_PORT, rate=RATE, duration=3.0, host="httpbin", timeout=2.0
    )
    with load:
        wait_until(lambda: len(load.samples) >= RATE * 0.25, 5.0, 0.02, "load running")
        started = time.monotonic()
        code = istiod.stop()
        took = time.monotonic() - started
        # Back on the same ports at once: Envoy's retry backoff (0.5 s doubling, with jitter)
        # grows for as long as istiod is down, so a long outage would make the test slow.
        istiod.start()
        load.wait_done()
    assert code == 0, istiod.log_tail()
    assert took < SHUTDOWN_LIMIT, f"istiod took {took:.2f}s to exit after SIGTERM"
    assert not load.failures(), load.summary()

    # Each Envoy saw its stream ended by istiod with a status saying why (`via_upstream`: the
    # status came from istiod's trailers), not reset with the connection as on a SIGKILL.
    for envoy in envoys:
        new = envoy.wait_for(
            lambda e=envoy: stream_closes(e)[closes_before[e.name] :],
            5.0,
            "the ADS stream closing",
        )
        # (Later lines are its reconnect attempts, refused while istiod is down.)
        assert f"closed: 14, {SHUTDOWN_MESSAGE}{{via_upstream}}" in new[0], new
        assert "reset" not in new[0], new

    # Every proxy returns to the restarted istiod (allowing for Envoy's retry backoff).
    for proxy in proxies:
        wait_until(lambda p=proxy: reconnected(istiod, p), 30.0, 0.05, f"{proxy} back")
    print(
        f"\nsigterm: exit 0 {took:.2f} s after SIGTERM with {len(proxies)} proxies connected; "
        f"{len(load.samples)} requests meanwhile, 0 failed"
    )
