"""`istioctl x explain` against a real istiod and two real Envoys: the predicted outcome of a
request equals what Envoy does with it.

One istiod, a NONE-mode sidecar (productpage, egress port 9080 bound on its own IP) and an
ingress gateway (port 8080), with the Bookinfo-like config of tests/helpers/explain_config.py:
header-match, method-match, weighted subsets, a full and a 50 % fault abort, a redirect, a
direct response and an AuthorizationPolicy DENY on the gateway (by path, and by source IP).
Backends each on their own 127.0.x.y answer with their name (`x-backend`).

A seeded generator makes 240 requests (proxy, host, path, method, header, source IP). For each,
istiod's /debug/explain predicts an outcome — the set of backends it may reach (weighted
routes; a partial fault adds its status), or the status Envoy answers itself — and the same
request sent through the Envoy must land in that set. Source principals are not exercised
here (the gateway's clients are plaintext); the unit tests cover them.
"""

from __future__ import annotations

import http.client
import io
import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from istioctl.cli import build_parser
from istioctl.experimental import explain as explain_cmd
from tests.helpers.explain_config import GATEWAY_HOST, GATEWAY_PORT, explain_config

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import SERVICE_PORT, gateway_options, sidecar_options, write_config
from .net import allocate_ip, wait_until

SEED = 10
REQUESTS = 240
SIDECAR = "productpage-v1.default"
GATEWAY = "istio-ingressgateway.istio-system"
SIDECAR_HOSTS = ("reviews", f"reviews:{SERVICE_PORT}", "reviews.default.svc.cluster.local")
GATEWAY_HOSTS = (GATEWAY_HOST, f"{GATEWAY_HOST}:{GATEWAY_PORT}", "other.example.com")
PATHS = (
    "/", "/api/v1", "/fault", "/fault/x", "/Fault", "/flaky", "/old", "/old/x", "/gone",
    "/details/1", "/submit", "/admin", "/admin/users", "/api?x=1",
)  # fmt: skip
METHODS = ("GET", "GET", "POST", "DELETE")
HEADERS = ({}, {}, {"end-user": "jason"}, {"end-user": "bob"})


@dataclass(frozen=True)
class Mesh:
    istiod: IstiodProcess
    backends: dict[str, Backend]  # name → backend
    sidecar_ip: str
    gateway_ip: str
    client_ip: str
    blocked_ip: str

    def backend_name(self, endpoint: str) -> str:
        for name, backend in self.backends.items():
            if f"{backend.ip}:{backend.port}" == endpoint:
                return name
        return f"?{endpoint}"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("explain")
    backends = {
        name: Backend(name, allocate_ip(), 0).start()
        for name in ("reviews-v1", "reviews-v2", "reviews-v3", "details-v1")
    }
    envoys: list[EnvoyProcess] = []
    istiod: IstiodProcess | None = None
    try:
        sidecar_ip, gateway_ip = allocate_ip(), allocate_ip()
        client_ip, blocked_ip = allocate_ip(), allocate_ip()
        reviews = {v: backends[f"reviews-{v}"].address for v in ("v1", "v2", "v3")}
        config = workdir / "config"
        config.mkdir()
        text = explain_config(reviews, backends["details-v1"].address, blocked_ip, sidecar_ip)
        write_config(config, "bookinfo.yaml", text)
        istiod = IstiodProcess(workdir / "istiod", config_dirs=[config]).start()
        labels = {"app": "productpage"}
        for opts, name in (
            (sidecar_options(istiod, "productpage-v1", sidecar_ip, labels, "delta"), "sidecar"),
            (gateway_options(istiod, "istio-ingressgateway", gateway_ip, "delta"), "gateway"),
        ):
            envoys.append(EnvoyProcess.for_proxy(opts, workdir / name, name=name).start())
        for envoy in envoys:
            envoy.wait_live(10.0)
        out = Mesh(istiod, backends, sidecar_ip, gateway_ip, client_ip, blocked_ip)
        wait_until(
            lambda: _send(out, "sidecar", "reviews", "/details", "GET", {}) == "details-v1", 15.0
        )
        wait_until(
            lambda: _send(out, "gateway", GATEWAY_HOST, "/details", "GET", {}) == "details-v1",
            15.0,
        )
        yield out
    finally:
        for envoy in envoys:
            envoy.stop()
        if istiod is not None:
            istiod.stop()
        for backend in backends.values():
            backend.stop()


def _send(
    mesh: Mesh,
    target: str,
    host: str,
    path: str,
    method: str,
    headers: dict[str, str],
    source_ip: str = "",
) -> str:
    """What Envoy did: the backend's name, or `<STATUS>` when Envoy answered itself."""
    sidecar = target == "sidecar"
    ip = mesh.sidecar_ip if sidecar else mesh.gateway_ip
    port = SERVICE_PORT if sidecar else GATEWAY_PORT
    source = (source_ip or mesh.client_ip, 0)
    conn = http.client.HTTPConnection(ip, port, timeout=5.0, source_address=source)
    try:
        conn.request(method, path, headers={**headers, "Host": host})
        resp = conn.getresponse()
        resp.read()
        backend = resp.getheader("x-backend")
        return backend if resp.status == 200 and backend else f"<{resp.status}>"
    except OSError as err:
        return f"<{type(err).__name__}>"
    finally:
        conn.close()


def _explain(mesh: Mesh, proxy: str, body: dict[str, Any]) -> tuple[int, Any]:
    address = mesh.istiod.address("http")
    host, port = address.rsplit(":", 1)
    request = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        request.request("POST", f"/debug/explain?proxyID={proxy}", json.dumps(body).encode())
        resp = request.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        request.close()


def _predicted(mesh: Mesh, outcome: dict[str, Any]) -> set[str]:
    if outcome["kind"] == "backend":
        names = {mesh.backend_name(e) for e in outcome["endpoints"]}
        return names | {f"<{s}>" for s in outcome["faultStatuses"]}
    return {f"<{outcome['status']}>"}


def test_predicted_outcomes_match_envoy(mesh: Mesh) -> None:
    rng = random.Random(SEED)
    seen: Counter[str] = Counter()
    misses = []
    weighted = 0
    for _ in range(REQUESTS):
        target = rng.choice(("sidecar", "gateway"))
        host = rng.choice(SIDECAR_HOSTS if target == "sidecar" else GATEWAY_HOSTS)
        path, method, headers = rng.choice(PATHS), rng.choice(METHODS), rng.choice(HEADERS)
        source = rng.choice((mesh.client_ip, mesh.client_ip, mesh.blocked_ip))
        proxy = SIDECAR if target == "sidecar" else GATEWAY
        body = {
            "method": method,
            "url": f"http://{host}{path}",
            "port": SERVICE_PORT if target == "sidecar" else GATEWAY_PORT,
            "headers": headers,
            "sourceIP": source,
        }
        status, answer = _explain(mesh, proxy, body)
        assert status == 200, answer
        predicted = _predicted(mesh, answer["outcome"])
        weighted += len(predicted) > 1
        actual = _send(mesh, target, host, path, method, headers, source)
        seen[actual] += 1
        if actual not in predicted:
            misses.append((proxy, body, sorted(predicted), actual, answer["steps"]))
    assert not misses, misses[:3]
    assert weighted > 0  # some predictions were a set of backends (weighted subsets)
    # The generator reached every kind of outcome.
    for outcome in ("reviews-v1", "reviews-v2", "reviews-v3", "details-v1"):
        assert seen[outcome] > 0, seen
    for status in ("<403>", "<404>", "<301>", "<410>", "<418>", "<503>"):
        assert seen[status] > 0, seen


def test_istioctl_explain_names_the_objects(mesh: Mesh) -> None:
    args = build_parser().parse_args(
        ["x", "explain", SIDECAR, "GET http://reviews:9080/api/v1", "-H", "end-user: jason",
         "--istiod", mesh.istiod.http_url]
    )  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    assert explain_cmd.main(args, out, err) == 0, err.getvalue()
    text = out.getvalue()
    assert "VirtualService/default/reviews" in text, text
    assert "DestinationRule/default/reviews" in text, text
    assert "ServiceEntry/default/reviews" in text, text
    reviews_v2 = mesh.backends["reviews-v2"]
    cluster = "outbound|9080|v2|reviews.default.svc.cluster.local"
    expected = f"Outcome:  backend: {cluster} → {reviews_v2.ip}:{reviews_v2.port}"
    assert expected in text, text

    args = build_parser().parse_args(
        ["x", "explain", GATEWAY, f"http://{GATEWAY_HOST}:8080/admin", "-o", "json",
         "--istiod", mesh.istiod.http_url]
    )  # fmt: skip
    out = io.StringIO()
    assert explain_cmd.main(args, out, err) == 0, err.getvalue()
    answer = json.loads(out.getvalue())
    authz = [s for s in answer["steps"] if s["step"] == "authorization"]
    assert authz and authz[0]["source"] == "AuthorizationPolicy/istio-system/deny-admin", authz
    assert answer["outcome"]["status"] == 403

    args = build_parser().parse_args(
        ["x", "explain", "nobody.default", "http://reviews/", "--istiod", mesh.istiod.http_url]
    )
    err = io.StringIO()
    assert explain_cmd.main(args, io.StringIO(), err) == 1
    assert "nobody.default is not connected" in err.getvalue()


def test_debug_explain_rejects_bad_requests(mesh: Mesh) -> None:
    status, answer = _explain(mesh, SIDECAR, {"url": "ftp://x/"})
    assert status == 400 and '"url"' in answer["error"], answer
    status, answer = _explain(mesh, SIDECAR, {"url": "http://reviews/", "sourceIP": "nope"})
    assert status == 400 and "sourceIP" in answer["error"], answer
