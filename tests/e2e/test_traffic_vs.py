"""VirtualService features through a real ingress gateway Envoy (issue 5, item 1).

One istiod and one gateway Envoy (router, port 8080, hosts "*/*"; `vs_gateway.py`) are shared
by the module; each test owns its own host name, config file and backends, so the tests stay
independent. Backends are small HTTP servers on their own 127.0.x.y, reached through STATIC
ServiceEntries.

Shown here: retries turning a backend that fails every second request into 100 % success (and
the same backend at ~50 % without retries); a fixed delay on ~50 % of requests; an abort at
30 % ± 5 points over 1,000 requests; mirror (100 %) and mirrors[] at 50 %; a redirect followed
by the client; uri/authority and regex rewrites seen by the backend; a CORS preflight answered
by Envoy; request/response header set/add/remove (route and per destination); a delegate
VirtualService in another namespace, and a missing delegate reported by istiod.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator

import pytest

from .mesh import GATEWAY_PORT, problems
from .net import wait_until
from .traffic import count_backends, request_on
from .vs_gateway import Mesh, gateway_vs, service_entry, start_mesh


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    yield from start_mesh(tmp_path_factory)


def _timed_get(conn: http.client.HTTPConnection, host: str) -> tuple[int, float]:
    start = time.monotonic()
    resp = request_on(conn, "GET", "/", host=host)
    return resp.status, time.monotonic() - start


# ---- retries, faults -------------------------------------------------------------------------


def test_retries_hide_a_backend_failing_every_second_request(mesh: Mesh) -> None:
    flaky = mesh.backend("flaky", fail_every=2)
    retried = "retry.example.com"
    plain = "no-retry.example.com"
    mesh.apply(
        "retries.yaml",
        service_entry(flaky),
        gateway_vs(
            "retry",
            retried,
            """
- retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx"}
  route:
  - destination: {host: flaky.default.svc.cluster.local}
""",
        ),
        gateway_vs(
            "no-retry",
            plain,
            """
- retries: {attempts: 0}
  route:
  - destination: {host: flaky.default.svc.cluster.local}
""",
        ),
    )
    wait_until(lambda: mesh.get(plain).status != 404, 15.0, message=f"{plain} routed")
    wait_until(lambda: mesh.get(retried).status == 200, 15.0, message=f"{retried} routed")

    flaky.reset()
    with_retries = count_backends(mesh.ip, GATEWAY_PORT, 100, host=retried)
    assert with_retries == {"flaky": 100}, with_retries
    # Half the attempts failed and were retried: the backend saw about 200 requests.
    assert 190 <= flaky.request_count <= 210, flaky.request_count

    without = count_backends(mesh.ip, GATEWAY_PORT, 100, host=plain)
    assert without == {"flaky": 50, "<503>": 50}, without


def test_fixed_delay_on_half_the_requests(mesh: Mesh) -> None:
    app = mesh.backend("delayed")
    host = "delay.example.com"
    mesh.apply(
        "delay.yaml",
        service_entry(app),
        gateway_vs(
            "delay",
            host,
            """
- fault:
    delay: {fixedDelay: 200ms, percentage: {value: 50}}
  route:
  - destination: {host: delayed.default.svc.cluster.local}
""",
        ),
    )
    mesh.wait_route(host, "/", "delayed")
    conn = http.client.HTTPConnection(mesh.ip, GATEWAY_PORT, timeout=5.0)
    try:
        timings = [_timed_get(conn, host) for _ in range(40)]
    finally:
        conn.close()
    assert {status for status, _ in timings} == {200}, timings
    delayed = [t for _, t in timings if t >= 0.2]
    fast = [t for _, t in timings if t < 0.2]
    # 50 % ± 30 points (binomial over 40: ±3.8 sd); every delayed one within 0.2 s..2 s.
    assert 8 <= len(delayed) <= 32, timings
    assert max(delayed) < 2.0, delayed
    assert sorted(fast)[len(fast) // 2] < 0.1, fast  # the others are not slowed down


def test_abort_answers_its_status_for_its_percentage(mesh: Mesh) -> None:
    app = mesh.backend("aborted")
    host = "abort.example.com"
    mesh.apply(
        "abort.yaml",
        service_entry(app),
        gateway_vs(
            "abort",
            host,
            """
- fault:
    abort: {httpStatus: 418, percentage: {value: 30}}
  route:
  - destination: {host: aborted.default.svc.cluster.local}
""",
        ),
    )
    wait_until(lambda: count_backends(mesh.ip, GATEWAY_PORT, 20, host=host)["<418>"] > 0, 15.0)
    counts = count_backends(mesh.ip, GATEWAY_PORT, 1000, host=host)
    assert set(counts) == {"aborted", "<418>"}, counts
    assert 250 <= counts["<418>"] <= 350, counts  # 30 % ± 5 points
    assert sum(counts.values()) == 1000, counts


# ---- mirrors ---------------------------------------------------------------------------------


def test_mirror_receives_copies(mesh: Mesh) -> None:
    app = mesh.backend("primary")
    shadow = mesh.backend("shadow")
    half = mesh.backend("half-shadow")
    host = "mirror.example.com"
    mesh.apply(
        "mirror.yaml",
        service_entry(app),
        service_entry(shadow),
        service_entry(half),
        gateway_vs(
            "mirror",
            host,
            """
- match:
  - uri: {prefix: /one}
  mirror: {host: shadow.default.svc.cluster.local}
  mirrorPercentage: {value: 100}
  route:
  - destination: {host: primary.default.svc.cluster.local}
- mirrors:
  - destination: {host: half-shadow.default.svc.cluster.local}
    percentage: {value: 50}
  route:
  - destination: {host: primary.default.svc.cluster.local}
""",
        ),
    )
    wait_until(lambda: mesh.get(host, "/one").status == 200 and shadow.request_count > 0, 15.0)
    shadow.reset()
    app.reset()
    assert count_backends(mesh.ip, GATEWAY_PORT, 20, host=host, path="/one/x") == {"primary": 20}
    wait_until(lambda: shadow.request_count == 20, 5.0, message="20 mirrored requests")
    copies = shadow.requests
    assert {r.path for r in copies} == {"/one/x"}, copies
    assert {r.host for r in copies} == {host}, copies  # no -shadow suffix

    assert count_backends(mesh.ip, GATEWAY_PORT, 200, host=host, path="/two") == {"primary": 200}
    # Mirrored requests are fire-and-forget: wait until the count settles, then check 50 % ± 20.
    settled: list[int] = []

    def stable() -> bool:
        settled.append(half.request_count)
        return len(settled) > 3 and settled[-1] == settled[-4]

    wait_until(stable, 5.0, 0.1)
    assert 60 <= half.request_count <= 140, half.request_count


# ---- redirect, rewrite, CORS, headers --------------------------------------------------------


def test_redirect_and_rewrite_seen_by_client_and_backend(mesh: Mesh) -> None:
    app = mesh.backend("rewritten")
    old, new = "old.example.com", "new.example.com"
    mesh.apply(
        "redirect.yaml",
        service_entry(app),
        gateway_vs(
            "old",
            old,
            """
- match:
  - uri: {prefix: /docs}
  redirect: {uri: /manual, authority: new.example.com, redirectCode: 302}
""",
        ),
        gateway_vs(
            "new",
            new,
            """
- match:
  - uri: {prefix: /manual}
  rewrite: {uri: /v2/manual, authority: backend.internal}
  route:
  - destination: {host: rewritten.default.svc.cluster.local}
- match:
  - uri: {regex: "/items/([0-9]+)"}
  rewrite:
    uriRegexRewrite: {match: "/items/([0-9]+)", rewrite: "/item?id=\\\\1"}
  route:
  - destination: {host: rewritten.default.svc.cluster.local}
""",
        ),
    )
    wait_until(lambda: mesh.get(old, "/docs").status == 302, 15.0)
    mesh.wait_route(new, "/manual", "rewritten")

    moved = mesh.get(old, "/docs")
    assert moved.status == 302, moved
    location = moved.headers["location"]
    assert location == "http://new.example.com/manual", location

    # The client follows the redirect (same gateway, Host from the Location).
    app.reset()
    followed = mesh.get(new, "/manual")
    assert followed.status == 200, followed
    seen = app.requests[-1]
    assert (seen.path, seen.host) == ("/v2/manual", "backend.internal"), seen
    assert followed.json()["path"] == "/v2/manual"

    by_regex = mesh.get(new, "/items/42")
    assert by_regex.status == 200, by_regex
    assert app.requests[-1].path == "/item?id=42", app.requests[-1]


def test_cors_preflight_answered_by_envoy(mesh: Mesh) -> None:
    app = mesh.backend("cors-app")
    host = "cors.example.com"
    mesh.apply(
        "cors.yaml",
        service_entry(app),
        gateway_vs(
            "cors",
            host,
            """
- corsPolicy:
    allowOrigins:
    - exact: https://good.example
    allowMethods: [GET, POST]
    allowHeaders: [x-custom]
    exposeHeaders: [x-backend]
    maxAge: 1h
  route:
  - destination: {host: cors-app.default.svc.cluster.local}
""",
        ),
    )
    mesh.wait_route(host, "/", "cors-app")
    app.reset()
    preflight = {
        "Origin": "https://good.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-custom",
    }
    answered = mesh.get(host, "/api", "OPTIONS", **preflight)
    assert answered.status == 200, answered
    assert answered.headers["access-control-allow-origin"] == "https://good.example"
    assert answered.headers["access-control-allow-methods"] == "GET,POST"
    assert answered.headers["access-control-allow-headers"] == "x-custom"
    assert answered.headers["access-control-max-age"] == "3600"
    assert "x-backend" not in answered.headers
    assert app.request_count == 0  # Envoy answered the preflight itself

    # A preflight from another origin is forwarded (unmatchedPreflights default) unanswered.
    other = mesh.get(host, "/api", "OPTIONS", **{**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers, other.headers
    assert app.request_count == 1

    simple = mesh.get(host, "/api", Origin="https://good.example")
    assert simple.headers["access-control-allow-origin"] == "https://good.example"
    assert simple.headers["access-control-expose-headers"] == "x-backend"


def test_header_operations_seen_by_backend_and_client(mesh: Mesh) -> None:
    app = mesh.backend("headers-app", extra_headers={"x-resp-set": "old", "x-resp-drop": "1"})
    host = "headers.example.com"
    mesh.apply(
        "headers.yaml",
        service_entry(app),
        gateway_vs(
            "headers",
            host,
            """
- headers:
    request:
      set: {x-set: route}
      add: {x-add: added}
      remove: [x-drop]
    response:
      set: {x-resp-set: new}
      add: {x-resp-add: added}
      remove: [x-resp-drop]
  route:
  - destination: {host: headers-app.default.svc.cluster.local}
    headers:
      request:
        set: {x-dest: headers-app}
      response:
        add: {x-dest-resp: "1"}
""",
        ),
    )
    mesh.wait_route(host, "/", "headers-app")
    resp = mesh.get(host, "/", **{"x-set": "client", "x-add": "client", "x-drop": "secret"})
    assert resp.status == 200, resp
    seen = resp.json()["headers"]
    assert seen["x-set"] == "route", seen
    assert seen["x-add"] == "client,added", seen
    assert "x-drop" not in seen, seen
    assert seen["x-dest"] == "headers-app", seen
    assert resp.headers["x-resp-set"] == "new", resp.headers
    assert resp.headers["x-resp-add"] == "added", resp.headers
    assert resp.headers["x-dest-resp"] == "1", resp.headers
    assert "x-resp-drop" not in resp.headers, resp.headers


# ---- delegates -------------------------------------------------------------------------------


def test_delegate_virtual_service_routes(mesh: Mesh) -> None:
    v1 = mesh.backend("shop-v1")
    v2 = mesh.backend("shop-v2")
    host = "shop.example.com"
    delegate = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: shop-routes, namespace: team-a}
        spec:
          exportTo: [default]
          http:
          - match:
            - uri: {prefix: /shop/v2}
            route:
            - destination: {host: shop-v2}
          - route:
            - destination: {host: shop-v1}
        """
    mesh.apply(
        "delegate.yaml",
        service_entry(v1, "team-a"),
        service_entry(v2, "team-a"),
        delegate,
        gateway_vs(
            "shop",
            host,
            """
- match:
  - uri: {prefix: /shop}
  delegate: {name: shop-routes, namespace: team-a}
- match:
  - uri: {prefix: /gone}
  delegate: {name: nowhere, namespace: team-a}
""",
        ),
    )
    mesh.wait_route(host, "/shop/v2/cart", "shop-v2")
    assert count_backends(mesh.ip, GATEWAY_PORT, 10, host=host, path="/shop/v2/x") == {
        "shop-v2": 10
    }
    assert count_backends(mesh.ip, GATEWAY_PORT, 10, host=host, path="/shop/list") == {
        "shop-v1": 10
    }
    # Outside the root match: no route. The missing delegate drops its route, reported.
    assert mesh.get(host, "/other").status == 404
    assert mesh.get(host, "/gone").status == 404
    wanted = "delegate virtual service team-a/nowhere of default/shop not found"
    assert wanted in problems(mesh.istiod), problems(mesh.istiod)


def test_gateway_serves_every_host(mesh: Mesh) -> None:
    """Sanity check of the shared fixture: an unknown host gets the gateway's 404."""
    assert mesh.get("unknown.example.com").status == 404
