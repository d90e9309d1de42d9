"""`istioctl x explain --inbound` against a real istiod and real Envoys: the predicted
authorization of a call arriving at a sidecar's own workload equals what that sidecar does.

The security topology of security_helpers.secure_mesh: httpbin's sidecar (NONE interception,
its inbound listener on its own 127.0.x.y:8000, backend on 127.0.0.1) and two client sidecars,
sleep and notsleep, each with its own service account and a real istiod-signed certificate,
reaching httpbin over auto mTLS. PeerAuthentication STRICT, and on httpbin an ALLOW policy
(by source principal with methods and paths, and a rule for anyone) plus a DENY policy (by
path, and by principal with a method).

For every (path, method, client) of a fixed grid (54 calls) istiod's /debug/explain for
httpbin's proxy with `inbound` and the client's SPIFFE ID predicts the outcome — forwarded to
the backend (200) or denied by RBAC (403) — and the same request sent through the client's
sidecar (mTLS to httpbin's sidecar) must end that way. Plaintext calls straight to httpbin's
sidecar (no principal) are predicted to fail at the filter chain under STRICT, and do.
"""

from __future__ import annotations

import http.client
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from istioctl.cli import build_parser
from istioctl.experimental import explain as explain_cmd

from .mesh import join_docs, write_config
from .net import wait_until
from .security_helpers import (
    HTTPBIN_PORT,
    SecureMesh,
    filter_chain_transports,
    peer_authentication,
    secure_mesh,
    spiffe_id,
)
from .traffic import request

NOTSLEEP = "notsleep"
SERVER = "httpbin.default"
PATHS = (
    "/", "/api/v1", "/api/admin", "/api/admin/x", "/status", "/status/x", "/public",
    "/public/page", "/health",
)  # fmt: skip
METHODS = ("GET", "POST", "DELETE")
CLIENTS = ("sleep", NOTSLEEP)
POLICIES = join_docs(
    peer_authentication("STRICT"),
    """
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: allow-api, namespace: default}
    spec:
      selector: {matchLabels: {app: httpbin}}
      action: ALLOW
      rules:
      - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
        to: [{operation: {methods: [GET, POST], paths: ["/api/*", /status]}}]
      - from: [{source: {principals: ["cluster.local/ns/default/sa/notsleep"]}}]
        to: [{operation: {methods: [GET], paths: ["/public*"]}}]
      - to: [{operation: {paths: [/health]}}]
    """,
    """
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: deny-admin, namespace: default}
    spec:
      selector: {matchLabels: {app: httpbin}}
      action: DENY
      rules:
      - to: [{operation: {paths: ["/api/admin*"]}}]
      - from: [{source: {principals: ["cluster.local/ns/default/sa/notsleep"]}}]
        to: [{operation: {methods: [DELETE]}}]
    """,
)


@dataclass(frozen=True)
class Inbound:
    mesh: SecureMesh

    def client_ip(self, client: str) -> str:
        return self.mesh.client_ip if client == "sleep" else self.mesh.clients[client].ip

    def send(self, client: str, method: str, path: str) -> str:
        """What happened: `<200>` from the backend, `<403>` from RBAC, or the transport
        error's name."""
        ip = self.client_ip(client) if client != "direct" else self.mesh.server_ip
        try:
            resp = request(ip, HTTPBIN_PORT, method, path, host="httpbin", timeout=5.0)
        except OSError as err:
            return f"<{type(err).__name__}>"
        if resp.status == 200 and resp.headers.get("x-backend") == "httpbin":
            return "<200>"
        if resp.status == 403 and b"RBAC: access denied" in resp.body:
            return "<403>"
        return f"<{resp.status}?>"

    def explain(self, body: dict[str, Any]) -> dict[str, Any]:
        host, port = self.mesh.istiod.address("http").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request("POST", f"/debug/explain?proxyID={SERVER}", json.dumps(body).encode())
            resp = conn.getresponse()
            answer: dict[str, Any] = json.loads(resp.read())
            assert resp.status == 200, answer
            return answer
        finally:
            conn.close()


def _applied(mesh: SecureMesh) -> set[str]:
    text = json.dumps(mesh.server.config_section("ListenersConfigDump"))
    return {name for name in ("allow-api", "deny-admin") if f"-policy[{name}]-rule" in text}


@pytest.fixture(scope="module")
def inbound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inbound]:
    workdir = tmp_path_factory.mktemp("explain-inbound")
    with secure_mesh(workdir, extra_clients=[NOTSLEEP]) as mesh:
        write_config(mesh.config_dir, "policies.yaml", POLICIES)
        wait_until(lambda: _applied(mesh) == {"allow-api", "deny-admin"}, 15, message="policies")
        listener = mesh.inbound_listener
        wait_until(
            lambda: filter_chain_transports(mesh.server, listener) == ["tls"], 15, message="STRICT"
        )
        out = Inbound(mesh)
        # The listener update reaches Envoy's workers right after the config dump shows it.
        wait_until(lambda: out.send("sleep", "GET", "/") == "<403>", 5.0, message="RBAC active")
        wait_until(lambda: out.send("direct", "GET", "/health") != "<200>", 5.0, message="mTLS")
        yield out


def _predicted(answer: dict[str, Any]) -> str:
    outcome = answer["outcome"]
    if outcome["kind"] == "backend":
        return "<200>"
    if outcome["kind"] == "denied":
        return f"<{outcome['status']}>"
    return f"<{outcome['kind']}>"


def test_inbound_predictions_match_envoy(inbound: Inbound) -> None:
    seen: Counter[str] = Counter()
    misses = []
    for client in CLIENTS:
        principal = spiffe_id("default", client)
        for path in PATHS:
            for method in METHODS:
                body = {
                    "method": method,
                    "url": f"http://httpbin:{HTTPBIN_PORT}{path}",
                    "inbound": True,
                    "sourcePrincipal": principal,
                }
                answer = inbound.explain(body)
                predicted = _predicted(answer)
                actual = inbound.send(client, method, path)
                seen[f"{client} {actual}"] += 1
                if actual != predicted:
                    misses.append((client, method, path, predicted, actual, answer["steps"]))
    assert not misses, misses[:3]
    # Both clients were allowed somewhere and denied somewhere.
    for key in ("sleep <200>", "sleep <403>", f"{NOTSLEEP} <200>", f"{NOTSLEEP} <403>"):
        assert seen[key] > 0, seen


def test_plaintext_is_refused_under_strict(inbound: Inbound) -> None:
    for path in ("/health", "/api/v1"):
        answer = inbound.explain({"url": f"http://httpbin:{HTTPBIN_PORT}{path}", "inbound": True})
        assert answer["outcome"]["kind"] == "connection failed", answer
        assert inbound.send("direct", "GET", path) not in ("<200>", "<403>")


def test_istioctl_explain_inbound_names_the_rule(inbound: Inbound) -> None:
    cases = (
        ("DELETE", "/health", "deny-admin", "denied by DENY policy", "403 denied"),
        ("GET", "/public/page", "allow-api", "allowed by", "backend: inbound|8000||"),
    )
    for method, path, policy, verdict, outcome in cases:
        argv = [
            "x", "explain", SERVER, f"{method} http://httpbin:{HTTPBIN_PORT}{path}", "--inbound",
            "--source-principal", spiffe_id("default", NOTSLEEP),
            "--istiod", inbound.mesh.istiod.http_url,
        ]  # fmt: skip
        out, err = io.StringIO(), io.StringIO()
        assert explain_cmd.main(build_parser().parse_args(argv), out, err) == 0, err.getvalue()
        text = out.getvalue()
        authz = [line for line in text.splitlines() if line.startswith("authorization")]
        # The RBAC step names the policy and its rule (rules are numbered from 0).
        expected = f"{verdict} AuthorizationPolicy/default/{policy} (rule 1)"
        assert authz and expected in authz[0], text
        assert outcome in text.split("Outcome:", 1)[1], text
