"""Tokens and keys against a real istiod (issue 8, campaign item 4).

One istiod, at debug log level, for the module. Every kind of bad token (expired, not yet
valid, issued in the future, wrong audience, wrong key, `alg: none`, HS256 keyed with the
public key, malformed, revoked) is refused on the secure ADS port and on the CSR API with
UNAUTHENTICATED and a reason that never quotes the token; revocation refuses a token that
worked a moment before and leaves new tokens working; key files are 0600; no private key
reaches the log, the debug endpoints or istioctl's output; the secure port refuses a TLS 1.1
handshake.
"""

from __future__ import annotations

import json
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from .istiod import DEFAULT_BIND, IstiodProcess
from .net import split_host_port
from .tls_probe import (
    PROTOCOL_VERSION_ALERT,
    TLS1_1,
    TLS1_2,
    ProbeResult,
    python_handshake,
    raw_client_hello,
)
from .token_attacks import (
    ISTIOD_SAN,
    AdsStream,
    Outcome,
    ads_outcome,
    bad_tokens,
    create_certificate,
    secure_channel,
)
from .traffic import request

ISTIOCTL = Path(sys.executable).parent / "istioctl"


class Mesh:
    def __init__(self, istiod: IstiodProcess, stranger_dir: Path) -> None:
        self.istiod = istiod
        self.root_pem = istiod.get("/v1/root-cert").body
        self.channel = secure_channel(istiod.secure_grpc_addr, self.root_pem)
        self.stranger_dir = stranger_dir

    def post(self, path: str, body: dict[str, Any]) -> Any:
        host, port = split_host_port(self.istiod.address("http"))
        resp = request(host, port, "POST", path, body=json.dumps(body).encode(),
                       headers={"content-type": "application/json"})  # fmt: skip
        assert resp.status == 200, resp.body
        return resp.json()

    def token(self, account: str) -> str:
        token: str = self.post("/v1/token", {"namespace": "default", "serviceAccount": account})[
            "token"
        ]
        return token


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("tokens-keys")
    (workdir / "config").mkdir()
    bind = {**DEFAULT_BIND, "mtls-grpc": "127.0.0.1:0"}
    istiod = IstiodProcess(workdir, bind=bind, extra_args=["--log-level", "debug"])
    istiod.start()
    try:
        mesh = Mesh(istiod, workdir / "stranger")
        yield mesh
        mesh.channel.close()
    finally:
        istiod.stop()


def _assert_refused(outcome: Outcome, token: str, reason: str, where: str) -> None:
    assert outcome.code == grpc.StatusCode.UNAUTHENTICATED, (where, outcome)
    assert reason in outcome.details, (where, outcome.details)
    # The reason never quotes the token, nor any of its (non-trivial) parts.
    assert not token or token not in outcome.details
    for part in token.split("."):
        if len(part) >= 8:
            assert part not in outcome.details, (where, part)


def test_good_token_is_accepted_on_both(mesh: Mesh) -> None:
    token = mesh.token("sleep")
    assert create_certificate(mesh.channel, token).code == grpc.StatusCode.OK
    assert ads_outcome(mesh.channel, token).code == grpc.StatusCode.OK


def test_bad_tokens_are_refused_on_ads_and_csr(mesh: Mesh) -> None:
    cases = bad_tokens(mesh.istiod.state_dir, mesh.stranger_dir)
    no_token = (None, "no authorization header")
    for case, (token, reason) in [*cases.items(), ("no-token", no_token)]:
        csr = create_certificate(mesh.channel, token)
        ads = ads_outcome(mesh.channel, token)
        _assert_refused(csr, token or "", reason, f"{case} on the CSR API")
        assert csr.details.startswith("request authenticate failure: "), csr.details
        _assert_refused(ads, token or "", reason, f"{case} on ADS")
        assert ads.details.startswith("authentication failed: "), ads.details
    log = mesh.istiod.log_path.read_text(errors="replace")
    for case, (token, _) in cases.items():
        assert token not in log, f"istiod logged the {case} token"


def test_revoked_token_is_refused_afterwards(mesh: Mesh) -> None:
    before = mesh.token("revoked")
    assert create_certificate(mesh.channel, before).code == grpc.StatusCode.OK
    assert ads_outcome(mesh.channel, before, "revoked").code == grpc.StatusCode.OK

    answer = mesh.post("/v1/token/revoke", {"namespace": "default", "serviceAccount": "revoked"})
    assert answer["identity"] == "spiffe://cluster.local/ns/default/sa/revoked"

    _assert_refused(create_certificate(mesh.channel, before), before, "revoked", "CSR")
    _assert_refused(ads_outcome(mesh.channel, before, "revoked"), before, "revoked", "ADS")
    after = mesh.token("revoked")  # a token issued after the revocation works
    assert create_certificate(mesh.channel, after).code == grpc.StatusCode.OK
    assert ads_outcome(mesh.channel, after, "revoked").code == grpc.StatusCode.OK
    # Other identities are untouched.
    assert create_certificate(mesh.channel, mesh.token("sleep")).code == grpc.StatusCode.OK


def test_key_files_are_private(mesh: Mesh) -> None:
    state = mesh.istiod.state_dir
    mesh.post("/v1/token/revoke", {"namespace": "default", "serviceAccount": "gone"})
    for name in ("ca-key.pem", "token-signing-key.pem", "revoked-service-accounts.json"):
        mode = stat.S_IMODE((state / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {mode:o}"
    # Whatever else holds a private key there (e.g. persisted workload credentials) too.
    holders = [p for p in state.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]
    assert len(holders) >= 2
    for path in holders:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def _key_bodies(pem: bytes) -> list[str]:
    """The base64 lines of every PEM private key in `pem` (what a leak would show)."""
    lines = pem.decode().splitlines()
    return [line for line in lines if line and not line.startswith("-----") and len(line) > 16]


def test_private_keys_never_leak(mesh: Mesh) -> None:
    istiod = mesh.istiod
    stream = AdsStream(mesh.channel, mesh.token("sleep"), "leak-check", "sleep")
    try:
        first = stream.first()
        assert first.code == grpc.StatusCode.OK, first
        secret = secret_pb2.Secret()
        first.response.resources[0].Unpack(secret)
        workload_key = secret.tls_certificate.private_key.inline_bytes
        assert b"PRIVATE KEY" in workload_key  # what must not leak elsewhere
        state = istiod.state_dir
        secrets = [workload_key, (state / "ca-key.pem").read_bytes(),
                   (state / "token-signing-key.pem").read_bytes()]  # fmt: skip
        bodies = [body for pem in secrets for body in _key_bodies(pem)]
        proxy = "leak-check.default"
        outputs = {
            path: istiod.get(path).body.decode(errors="replace")
            for path in (
                f"/debug/config_dump?proxyID={proxy}",
                "/debug/configz",
                "/debug/syncz",
                "/debug/adsz",
                "/debug/connections",
                "/debug/push_status",
            )
        }
        assert '"[redacted]"' in outputs[f"/debug/config_dump?proxyID={proxy}"]
        for fmt in ("json", "short"):
            result = subprocess.run(
                [str(ISTIOCTL), "proxy-config", "secret", proxy, "--istiod", istiod.http_url,
                 "-o", fmt],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            outputs[f"istioctl pc secret -o {fmt}"] = result.stdout + result.stderr
    finally:
        stream.close()
    outputs["istiod log (debug level)"] = istiod.log_path.read_text(errors="replace")
    for where, text in outputs.items():
        assert "PRIVATE KEY" not in text, where
        leaked = [body[:12] for body in bodies if body in text]
        assert not leaked, f"{where} shows private key material {leaked}"


def test_debug_endpoints_answer_loopback(mesh: Mesh) -> None:
    # The refusal for non-loopback peers is proven in tests/pilot/bootstrap/test_admin_guard.py
    # over the request's peer address; here the real server answers its loopback caller.
    assert mesh.istiod.get("/debug/syncz").status == 200


@pytest.mark.parametrize("server", ["secure-grpc", "mtls-grpc"])
def test_tls_1_1_is_refused(mesh: Mesh, server: str) -> None:
    host, port = split_host_port(mesh.istiod.address(server))
    control = raw_client_hello(host, port, TLS1_2, ISTIOD_SAN)
    assert control.accepted, control  # the probe itself works
    old = raw_client_hello(host, port, TLS1_1, ISTIOD_SAN)
    assert not old.accepted, old
    assert old.alert in (PROTOCOL_VERSION_ALERT, None), old
    # And with the local ssl module, when it is able to offer TLS 1.1 at all.
    result, detail = python_handshake(host, port, ssl.TLSVersion.TLSv1_1, ISTIOD_SAN)
    assert result in (ProbeResult.REFUSED, ProbeResult.CLIENT_CANNOT_OFFER), detail
    if server == "secure-grpc":  # the mTLS port wants a client certificate as well
        result, detail = python_handshake(host, port, ssl.TLSVersion.TLSv1_2, ISTIOD_SAN)
        assert result == ProbeResult.ACCEPTED, detail
