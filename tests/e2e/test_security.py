"""Workload security end to end: a real istiod (secure ADS, its CA over SDS), two real Envoy
sidecars bootstrapped in secure mode (token + mesh root from istiod's HTTP server, ADS over
TLS to the `secure-grpc` port) and a real backend, on loopback (see security_helpers).

1. Sidecar-to-sidecar mTLS (auto mTLS to an mTLS-capable WorkloadEntry): the backend sees the
   client's SPIFFE identity in x-forwarded-client-cert and both Envoys count TLS handshakes.
2. PeerAuthentication STRICT removes the plaintext chain: a direct plaintext request is
   refused while the client's mTLS path still works; PERMISSIVE accepts both again.
3. Certificates rotate under load (short DEFAULT_WORKLOAD_CERT_TTL): both sidecars' `default`
   certificates change at least twice, fresh client certificates are presented in handshakes,
   and no request fails.
4. A proxy claiming a service account its token does not prove is refused (PERMISSION_DENIED):
   it never gets a certificate or a listener, while a correctly bootstrapped proxy started at
   the same moment gets its config.
5. istiod restarts under load: no request fails, the mesh root is byte-identical, both sidecars
   reconnect (and re-subscribe to their certificates) and still talk mTLS.

Tests 1, 2, 4 and 5 share one istiod and the two sidecars (module scope; each test leaves them
as it found them, and the restart runs last); test 3 starts its own short-TTL istiod.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from .envoy import EnvoyProcess
from .mesh import remove_config, write_config
from .net import allocate_ip, wait_until
from .security_helpers import (
    HTTPBIN_PORT,
    POLICY_FILE,
    SecureMesh,
    adsz_client,
    default_serial,
    dynamic_secret_names,
    fetch_material,
    log_lines,
    parse_xfcc,
    peer_authentication,
    secret_certificate,
    secure_mesh,
    secure_sidecar_options,
    spiffe_id,
    start_secure_envoy,
    uri_sans,
    watching_secrets,
)
from .traffic import LoadGenerator, Response

SLEEP_ID = spiffe_id("default", "sleep")
HTTPBIN_ID = spiffe_id("default", "httpbin")
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
ROTATION_TTL = "6s"  # SECRET_GRACE_PERIOD_RATIO 0.5: renewed about every 3 s


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureMesh]:
    with secure_mesh(tmp_path_factory.mktemp("security")) as running:
        yield running


def client_ids(resp_headers: dict[str, str]) -> tuple[str, str]:
    """(By, URI) of the last x-forwarded-client-cert element a backend request carried."""
    last = parse_xfcc(resp_headers["x-forwarded-client-cert"])[-1]
    return last.get("By", ""), last.get("URI", "")


def direct_refused(mesh: SecureMesh) -> bool:
    try:
        mesh.direct(timeout=1.0)
    except TRANSPORT_ERRORS:
        return True
    return False


def ok(resp: Response) -> bool:
    return resp.status == 200 and resp.headers.get("x-backend") == "httpbin"


# -- 1 -------------------------------------------------------------------------------------


def test_mtls_between_sidecars(mesh: SecureMesh) -> None:
    # Each sidecar holds the certificate of its own identity, issued by istiod over SDS.
    for envoy, identity in ((mesh.server, HTTPBIN_ID), (mesh.client, SLEEP_ID)):
        cert = secret_certificate(envoy)
        assert cert is not None, f"{envoy.name} holds no `default` secret"
        assert uri_sans(cert) == [identity], (envoy.name, uri_sans(cert))
        assert secret_certificate(envoy, "ROOTCA") is None  # ROOTCA is a validation context
        assert {"default", "ROOTCA"} <= dynamic_secret_names(envoy)

    # The server's only listener is its Sidecar ingress one on its own IP (its outbound one
    # for httpbin:8000 would have the same address and name), accepted without a NACK.
    assert mesh.server.listener_names() == {mesh.inbound_listener}
    assert mesh.server.stat("listener_manager.lds.update_rejected") == 0
    assert mesh.client.stat("listener_manager.lds.update_rejected") == 0

    server_before, client_before = mesh.server_handshakes(), mesh.client_handshakes()
    mesh.backend.reset()
    n = 10
    for _ in range(n):
        resp = mesh.via_client()
        assert ok(resp), (resp.status, resp.body[:300])

    received = mesh.backend.requests
    assert len(received) == n
    for req in received:
        # The server sidecar terminated mTLS with its own certificate (By) and saw the
        # client's (URI): only a TLS handshake with client certificates yields these.
        assert client_ids(dict(req.headers)) == (HTTPBIN_ID, SLEEP_ID), req.headers

    # One connection per request (maxRequestsPerConnection 1): each one a TLS handshake, on
    # the server's inbound listener and on the client's outbound cluster alike, TLS 1.3.
    assert mesh.server_handshakes() - server_before >= n
    assert mesh.client_handshakes() - client_before >= n
    listener = re.escape(mesh.inbound_listener)
    versions = mesh.server.stats(filter=rf"^listener\.{listener}\.ssl\.versions\.")
    assert versions.get(f"listener.{mesh.inbound_listener}.ssl.versions.TLSv1.3", 0) >= n, versions
    errors = mesh.server.stats(filter=rf"^listener\.{listener}\.ssl\.(connection_error|fail_)")
    assert not any(errors.values()), errors


# -- 2 -------------------------------------------------------------------------------------


def test_strict_refuses_plaintext_permissive_accepts_both(mesh: SecureMesh) -> None:
    no_match = f"listener.{mesh.inbound_listener}.no_filter_chain_match"
    # No policy: PERMISSIVE, an mTLS chain and a plaintext chain.
    mesh.wait_transports({"tls", "raw_buffer"})
    try:
        write_config(mesh.config_dir, POLICY_FILE, peer_authentication("STRICT"))
        assert mesh.wait_transports({"tls"}) == ["tls"]
        # The listener update reaches the worker right after the config dump shows it.
        wait_until(lambda: direct_refused(mesh), 5.0, 0.05, "plaintext refused under STRICT")
        mesh.backend.reset()
        refused_before = mesh.server.stat(no_match) or 0
        for _ in range(3):
            with pytest.raises(TRANSPORT_ERRORS):
                mesh.direct(timeout=1.0)
        # Refused by Envoy's listener (no chain for a non-TLS connection), never forwarded.
        assert (mesh.server.stat(no_match) or 0) - refused_before >= 3
        assert mesh.backend.request_count == 0
        for _ in range(5):
            resp = mesh.via_client()
            assert ok(resp), (resp.status, resp.body[:300])
        assert client_ids(dict(mesh.backend.requests[-1].headers)) == (HTTPBIN_ID, SLEEP_ID)

        write_config(mesh.config_dir, POLICY_FILE, peer_authentication("PERMISSIVE"))
        mesh.wait_transports({"tls", "raw_buffer"})
        wait_until(lambda: ok(mesh.direct()), 5.0, 0.05, "plaintext accepted under PERMISSIVE")
        mesh.backend.reset()
        for _ in range(3):
            assert ok(mesh.direct())
            assert ok(mesh.via_client())
        received = [dict(r.headers) for r in mesh.backend.requests]
        assert len(received) == 6
        # Plaintext requests carry no peer identity; mTLS ones carry the client's.
        uris = sorted(client_ids(h)[1] if "x-forwarded-client-cert" in h else "" for h in received)
        assert uris == ["", "", "", SLEEP_ID, SLEEP_ID, SLEEP_ID], received
    finally:
        with contextlib.suppress(FileNotFoundError):
            remove_config(mesh.config_dir, POLICY_FILE)
    mesh.wait_transports({"tls", "raw_buffer"})


# -- 3 -------------------------------------------------------------------------------------


def test_certificate_rotation_under_load(tmp_path: Path) -> None:
    env = {"DEFAULT_WORKLOAD_CERT_TTL": ROTATION_TTL, "SECRET_GRACE_PERIOD_RATIO": "0.5"}
    with secure_mesh(tmp_path, istiod_env=env, backend_keep=5000) as mesh:
        first = secret_certificate(mesh.server)
        assert first is not None
        left = first.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
        assert left <= datetime.timedelta(seconds=6), f"TTL {ROTATION_TTL} not applied: {left}"

        server_serials: set[int] = set()
        client_serials: set[int] = set()

        def rotated_twice() -> bool:
            for envoy, seen in ((mesh.server, server_serials), (mesh.client, client_serials)):
                serial = default_serial(envoy)
                if serial is not None:
                    seen.add(serial)
            return len(server_serials) >= 3 and len(client_serials) >= 3

        rotated_twice()
        handshakes_before = mesh.server_handshakes()
        mesh.backend.reset()
        # Bounded: at most 150 req/s * 20 s = 3000 requests.
        with LoadGenerator(
            mesh.client_ip, HTTPBIN_PORT, rate=150, duration=20.0, host="httpbin", timeout=2.0
        ) as load:
            wait_until(lambda: len(load.samples) >= 20, 5.0, 0.02, "load running")
            wait_until(
                rotated_twice,
                18.0,
                0.1,
                f"two rotations of both `default` certificates (server {server_serials}, "
                f"client {client_serials})",
            )
            seen = len(load.samples)
            wait_until(lambda: len(load.samples) >= seen + 30, 5.0, 0.02, "load after rotation")
        sent = len(load.samples)
        assert sent <= 3000
        assert not load.failures(), load.summary()
        assert set(load.backends()) == {"httpbin"}, load.backends()

        # Every request was a new mTLS handshake, and the certificates the client presented
        # in them changed with the rotations (XFCC Hash = the client certificate's digest).
        assert mesh.server_handshakes() - handshakes_before >= sent
        received = [dict(r.headers) for r in mesh.backend.requests]
        assert len(received) == sent
        elements = [parse_xfcc(h["x-forwarded-client-cert"])[-1] for h in received]
        assert {e.get("URI") for e in elements} == {SLEEP_ID}
        assert {e.get("By") for e in elements} == {HTTPBIN_ID}
        client_hashes = {e["Hash"] for e in elements}
        assert len(client_hashes) >= 3, f"client certificates seen by the server: {client_hashes}"
        # The renewed certificates are still for the same identities.
        for envoy, identity in ((mesh.server, HTTPBIN_ID), (mesh.client, SLEEP_ID)):
            cert = secret_certificate(envoy)
            assert cert is not None and uri_sans(cert) == [identity]
        print(
            f"\nrotation: {sent} requests, 0 failed; server serials {len(server_serials)}, "
            f"client serials {len(client_serials)}, client certs in handshakes "
            f"{len(client_hashes)}"
        )


# -- 4 -------------------------------------------------------------------------------------


def test_forged_identity_is_refused(mesh: SecureMesh, tmp_path: Path) -> None:
    istiod = mesh.istiod
    sleep_material = fetch_material(istiod, "default", "sleep")
    # Claims to be httpbin (node metadata SERVICE_ACCOUNT) with sleep's token.
    forged_opts = secure_sidecar_options(
        istiod, "httpbin-forged", allocate_ip(), {"app": "httpbin"}, "httpbin"
    )
    control_opts = secure_sidecar_options(
        istiod, "control", allocate_ip(), {"app": "control"}, "sleep"
    )
    refused = f"ADS: refused node:{forged_opts.node_id} "
    assert not log_lines(istiod.log_path, refused)
    with contextlib.ExitStack() as stack:
        envoys: list[EnvoyProcess] = []
        for opts in (forged_opts, control_opts):
            envoy = start_secure_envoy(opts, tmp_path / opts.name, sleep_material)
            stack.callback(envoy.stop)
            envoys.append(envoy)
        forged, control = envoys

        # The control proxy, started at the same moment with the same token, gets its config
        # and its certificate...
        control.wait_live(15.0)
        cert = control.wait_for(lambda: secret_certificate(control), 10.0, "`default` secret")
        assert uri_sans(cert) == [SLEEP_ID]
        wait_until(lambda: watching_secrets(istiod, "control.default"), 10.0, 0.05, "control")
        # ...while the forged one has been refused, and refused again when it retried.
        lines = wait_until(
            lambda: (found := log_lines(istiod.log_path, refused)) and len(found) >= 2 and found,
            10.0,
            0.05,
            f"istiod refusing {forged_opts.node_id} twice",
        )
        assert "claims service account 'httpbin'" in lines[0], lines[0]
        assert f"authenticated as {SLEEP_ID}" in lines[0], lines[0]

        assert forged.running
        assert forged.state() != "LIVE"
        assert forged.stat("control_plane.connected_state") == 0
        assert not dynamic_secret_names(forged)
        assert not forged.listener_names()
        assert adsz_client(istiod, "httpbin-forged.default") is None
        # Envoy was told why: gRPC status 7, PERMISSION_DENIED.
        closed = forged.wait_for(
            lambda: log_lines(forged.log_path, "gRPC config stream to xds-grpc closed"),
            5.0,
            "the ADS stream closing",
        )
        assert any(": 7, " in line for line in closed), closed

    # The mesh's own proxies were not disturbed.
    assert ok(mesh.via_client())


# -- 5 -------------------------------------------------------------------------------------


def test_istiod_restart_keeps_mtls(mesh: SecureMesh) -> None:
    istiod = mesh.istiod
    proxies = mesh.proxies()
    for proxy in proxies:
        wait_until(lambda p=proxy: watching_secrets(istiod, p), 10.0, 0.05, f"{proxy} in adsz")
    root_before = istiod.get("/v1/root-cert").body
    assert b"BEGIN CERTIFICATE" in root_before
    old_pid = istiod.pid

    # Bounded: at most 100 req/s * 20 s = 2000 requests.
    load = LoadGenerator(mesh.client_ip, HTTPBIN_PORT, rate=100, duration=20.0, host="httpbin")
    with load:
        wait_until(lambda: len(load.samples) >= 20, 5.0, 0.02, "load running")
        assert istiod.restart() == 0, istiod.log_tail()
        assert istiod.pid != old_pid
        for proxy in proxies:
            wait_until(
                lambda p=proxy: watching_secrets(istiod, p),
                15.0,
                0.05,
                f"{proxy} reconnected to the new istiod and watching its certificates",
            )
        for envoy in (mesh.server, mesh.client):
            envoy.wait_for(
                lambda e=envoy: e.stat("control_plane.connected_state") == 1, 5.0, "connected"
            )
        seen = len(load.samples)
        wait_until(lambda: len(load.samples) >= seen + 30, 5.0, 0.02, "load after reconnect")
    sent = len(load.samples)
    assert not load.failures(), load.summary()
    assert set(load.backends()) == {"httpbin"}, load.backends()

    # Same mesh root, byte for byte (kept in the state dir).
    assert istiod.get("/v1/root-cert").body == root_before

    # The sidecars' certificates (istiod may re-issue them to the reconnected proxies) still
    # chain to that root, and they still talk mTLS end to end.
    (root,) = x509.load_pem_x509_certificates(root_before)
    for envoy, identity in ((mesh.server, HTTPBIN_ID), (mesh.client, SLEEP_ID)):
        cert = secret_certificate(envoy)
        assert cert is not None and uri_sans(cert) == [identity]
        cert.verify_directly_issued_by(root)
    handshakes_before = mesh.server_handshakes()
    mesh.backend.reset()
    for _ in range(5):
        assert ok(mesh.via_client())
    assert mesh.server_handshakes() - handshakes_before >= 5
    for req in mesh.backend.requests:
        assert client_ids(dict(req.headers)) == (HTTPBIN_ID, SLEEP_ID)
    print(f"\nrestart: {sent} requests, 0 failed")
