"""VirtualService features, checked by simulating calls through generated xDS (the vs-* cases).

Where real traffic shows a feature, tests/e2e/test_traffic_vs.py does; here are the routing
decisions (which route and cluster a call gets), the per-route policies as Envoy will read
them, and istiod's reports of delegate and duplicate-host problems.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2

from pilot.model.proxy_status import DUPLICATED_DOMAINS, proxy_status
from pilot.networking.filters import CORS, FAULT
from tests.helpers.golden import case_discovery
from tests.helpers.simulate import TLS, Call, CallMode, Simulation, simulate_case
from tests.helpers.xds import ProxySpec

TESTDATA = Path(__file__).resolve().parent / "testdata"
HTTPBIN = "httpbin.default.svc.cluster.local"
V1 = f"outbound|8000|v1|{HTTPBIN}"
V2 = f"outbound|8000|v2|{HTTPBIN}"
MIRROR = "outbound|8000||mirror.default.svc.cluster.local"
PRODUCTPAGE = "outbound|9080||productpage.team-a.svc.cluster.local"
REVIEWS = "reviews.default.svc.cluster.local"


def simulation(case: str, proxy: ProxySpec | None = None, **overrides: Any) -> Simulation:
    return simulate_case(TESTDATA / f"{case}.yaml", proxy, **overrides)


def httpbin(path: str, **kwargs: Any) -> Call:
    return Call(address="10.96.9.1", port=8000, host="httpbin", path=path, **kwargs)


def gateway(host: str, path: str = "/", **kwargs: Any) -> Call:
    return Call(
        address="10.10.1.1", port=8080, host=host, path=path, mode=CallMode.DIRECT, **kwargs
    )


# ---- vs-http-policies (sidecar) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method", "headers", "route"),
    [
        ("/retry/x", "GET", {}, "retries"),
        ("/fault", "POST", {}, "faults"),
        ("/fault", "PUT", {}, "default"),  # method regex GET|POST
        ("/headers", "GET", {"x-present": "1"}, "headers"),
        ("/headers", "GET", {"x-present": "1", "x-absent": "y"}, "default"),  # withoutHeaders
        ("/headers", "GET", {}, "default"),  # x-present missing
        # sourceNamespace, sourceLabels, port 9000 and match.gateways routes are not generated
        # for this proxy: a plain call falls through to the default route.
        ("/gw", "GET", {}, "default"),
        ("/", "GET", {}, "default"),
    ],
)
def test_match_conditions(path: str, method: str, headers: dict[str, str], route: str) -> None:
    result = simulation("vs-http-policies").run(httpbin(path, method=method, headers=headers))
    assert result.route == route, result


def test_match_on_scheme_and_authority() -> None:
    sim = simulation("vs-http-policies")
    assert sim.run(httpbin("/retry", scheme="https")).route == "default"
    assert sim.run(httpbin("/mirror")).route == "mirrored"  # authority prefix "httpbin"
    other = Call(address="10.96.9.1", port=8000, host="10.96.9.1", path="/mirror")
    assert sim.run(other).route == "default"


def test_routes_for_other_sources_are_generated_for_them() -> None:
    """Istio: sourceMatchHTTP — sourceLabels ⊆ proxy labels and sourceNamespace."""
    product = simulation("vs-http-policies", labels={"app": "productpage"})
    assert product.run(httpbin("/")).route == "labelled-only"
    other_ns = simulation("vs-http-policies", name="sleep-1.other")
    call = Call(address="10.96.9.1", port=8000, host="httpbin.default", path="/")
    assert other_ns.run(call).route == "other-namespace-only"


def test_retry_timeout_and_stat_prefix() -> None:
    route = simulation("vs-http-policies").run(httpbin("/retry")).route_proto
    policy = route.route.retry_policy
    assert (policy.num_retries.value, policy.per_try_timeout.ToMilliseconds()) == (4, 500)
    assert policy.retry_on == "5xx,gateway-error,retriable-status-codes"
    assert list(policy.retriable_status_codes) == [503]
    assert policy.retry_priority.name == "envoy.retry_priorities.previous_priorities"
    assert route.route.timeout.seconds == 3
    assert route.stat_prefix == "retry-stats"
    no_retry = simulation("vs-http-policies").run(httpbin("/no-retry")).route_proto
    assert not no_retry.route.HasField("retry_policy")


def test_fault_delay_and_abort_percentages() -> None:
    route = simulation("vs-http-policies").run(httpbin("/fault")).route_proto
    fault = fault_pb2.HTTPFault()
    route.typed_per_filter_config[FAULT].Unpack(fault)
    assert fault.delay.fixed_delay.ToMilliseconds() == 200
    assert fault.delay.percentage.numerator == 500_000  # of a million
    assert (fault.abort.http_status, fault.abort.percentage.numerator) == (503, 125_000)


def test_mirrors_with_percentages() -> None:
    sim = simulation("vs-http-policies")
    one = sim.run(httpbin("/mirror")).route_proto.route.request_mirror_policies
    assert [(m.cluster, m.runtime_fraction.default_value.numerator) for m in one] == [
        (MIRROR, 255_000)
    ]
    # (By IP: the authority does not start with "httpbin", so "mirrored" does not match.)
    call = Call(address="10.96.9.1", port=8000, host="10.96.9.1", path="/mirrors")
    many = sim.run(call).route_proto.route.request_mirror_policies
    # The 0 % mirror is dropped; no percentage means 100 (of a hundred).
    assert [(m.cluster, m.runtime_fraction.default_value.numerator) for m in many] == [
        (MIRROR, 100),
        (V2, 100_000),
    ]
    assert all(m.disable_shadow_host_suffix_append and not m.trace_sampled.value for m in many)


def test_cors_policy() -> None:
    route = simulation("vs-http-policies").run(httpbin("/cors")).route_proto
    cors = cors_pb2.CorsPolicy()
    route.typed_per_filter_config[CORS].Unpack(cors)
    origins = [m.WhichOneof("match_pattern") for m in cors.allow_origin_string_match]
    assert origins == ["exact", "prefix", "safe_regex"]
    assert (cors.allow_methods, cors.allow_headers, cors.max_age) == (
        "GET,POST",
        "x-custom,authorization",
        "86400",
    )
    assert cors.allow_credentials.value is True
    assert cors.forward_not_matching_preflights.value is False  # unmatchedPreflights: IGNORE


def test_header_operations_and_weighted_destinations() -> None:
    result = simulation("vs-http-policies").run(httpbin("/headers", headers={"x-present": "1"}))
    # The weight-0 destination is dropped.
    assert result.weighted_clusters == ((V1, 70), (V2, 30))
    route = result.route_proto
    assert [h.header.key for h in route.request_headers_to_add] == ["x-set", "x-add"]
    assert list(route.request_headers_to_remove) == ["x-remove"]
    assert list(route.response_headers_to_remove) == ["x-resp-remove"]
    v2 = route.route.weighted_clusters.clusters[1]
    assert v2.host_rewrite_literal == "v2.httpbin"  # `host` set on a destination


def test_rewrites_and_redirects() -> None:
    sim = simulation("vs-http-policies")
    rewrite = sim.run(httpbin("/rewrite/a")).route_proto.route
    assert (rewrite.prefix_rewrite, rewrite.host_rewrite_literal) == ("/", "rewritten.example.com")
    regex = sim.run(httpbin("/items/7/detail")).route_proto.route.regex_rewrite
    assert (regex.pattern.regex, regex.substitution) == ("/items/([0-9]+)/detail", "/detail?id=\\1")
    prefix = sim.run(httpbin("/old/page")).route_proto.redirect
    assert (prefix.prefix_rewrite, prefix.response_code) == ("/new/", prefix.FOUND)
    secure = sim.run(httpbin("/secure")).route_proto.redirect
    # Istio drops an explicit :443 for https.
    assert (secure.scheme_redirect, secure.port_redirect, secure.host_redirect) == (
        "https",
        0,
        "secure.example.com",
    )
    derived = sim.run(httpbin("/port")).route_proto.redirect
    assert (derived.port_redirect, derived.response_code) == (8000, derived.TEMPORARY_REDIRECT)


# ---- vs-delegate (gateway) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "route", "cluster"),
    [
        ("/productpage/v2/x", {}, "products-v2", PRODUCTPAGE),
        ("/productpage", {}, "products-rest", PRODUCTPAGE),
        ("/reviews/1", {"end-user": "jason"}, "reviews", f"outbound|9080|v2|{REVIEWS}"),
        ("/reviews/1", {}, "reviews", f"outbound|9080|v1|{REVIEWS}"),
    ],
)
def test_delegate_routes(path: str, headers: dict[str, str], route: str, cluster: str) -> None:
    result = simulation("vs-delegate").run(gateway("shop.example.com", path, headers=headers))
    assert (result.route, result.cluster) == (route, cluster), result


@pytest.mark.parametrize("path", ["/other", "/missing/x", "/private"])
def test_dropped_delegate_routes_fall_through(path: str) -> None:
    """A conflicting delegate route, a missing delegate and one not exported to the root's
    namespace generate nothing: the call reaches the root's last route."""
    result = simulation("vs-delegate").run(gateway("shop.example.com", path))
    assert (result.route, result.direct_response) == ("fallback", 404), result


def test_delegate_inherits_root_fields() -> None:
    sim = simulation("vs-delegate")
    v2 = sim.run(gateway("shop.example.com", "/productpage/v2")).route_proto
    assert v2.route.timeout.seconds == 5  # from the root route
    assert [h.header.key for h in v2.request_headers_to_add] == ["x-root"]
    assert v2.route.prefix_rewrite == "/productpage"  # its own
    rest = sim.run(gateway("shop.example.com", "/productpage")).route_proto
    assert [h.header.key for h in rest.request_headers_to_add] == ["x-delegate"]  # its own


def test_delegate_problems_reported() -> None:
    discovery, _ = case_discovery(TESTDATA / "vs-delegate.yaml")
    errors = discovery.push.errors
    assert "delegate virtual service default/nowhere of default/shop not found" in errors
    assert "delegate virtual service team-b/private of default/shop is not exported to default" in (
        errors
    )
    assert any("conflict" in e and "'other'" in e for e in errors), errors


# ---- vs-merge (gateway and sidecar) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "path", "route"),
    [
        ("web.example.com", "/a/1", "a"),  # frontend-a (older)
        ("web.example.com", "/b/1", "b"),  # frontend-b (newer), ahead of a's catch-all
        ("web.example.com", "/never", "catch-all"),  # after a catch-all: not generated
        ("web.example.com", "/", "catch-all"),
        ("frontend.default.svc.cluster.local", "/admin", "gateway-only"),
        ("frontend.default.svc.cluster.local", "/internal", "both"),  # mesh-only dropped
    ],
)
def test_gateway_merges_virtual_services(host: str, path: str, route: str) -> None:
    result = simulation("vs-merge").run(gateway(host, path))
    assert result.route == route, result


def test_gateway_redirect_derives_the_listener_port() -> None:
    result = simulation("vs-merge").run(gateway("web.example.com", "/moved"))
    assert (result.route, result.route_proto.redirect.port_redirect) == ("moved", 8080)


SLEEP = ProxySpec(ip="10.82.0.9", name="sleep-1.default", labels={"app": "sleep"})


def test_sidecar_keeps_the_oldest_virtual_service_and_reports_the_other() -> None:
    """Istio: BuildSidecarOutboundVirtualHosts — a second virtual host for the same name is
    dropped and counted as pilot_vservice_dup_domain."""
    discovery, _ = case_discovery(TESTDATA / "vs-merge.yaml")
    sim = Simulation(discovery.resources(SLEEP))
    frontend = Call(address="10.96.11.1", port=8000, host="frontend", path="/internal")
    assert sim.run(frontend).route == "mesh-only"
    assert sim.run(Call(address="10.96.11.1", port=8000, host="frontend", path="/admin")).route == (
        "both"
    )
    status = proxy_status(discovery.push).as_json()[DUPLICATED_DOMAINS]
    vhost = "frontend.default.svc.cluster.local:8000"
    assert status[vhost] == {
        "proxy": SLEEP.node_id(),
        "message": f"duplicate domain from service: {vhost}",
    }


# ---- vs-tls-routes (sidecar) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sni", "cluster"),
    [
        ("v1.secure.example.com", "outbound|443|v1|secure.default.svc.cluster.local"),
        ("api.secure.example.com", "outbound|443|v2|secure.default.svc.cluster.local"),
    ],
)
def test_tls_routes_by_sni(sni: str, cluster: str) -> None:
    call = Call(address="10.96.12.1", port=443, tls=TLS.TLS, sni=sni)
    assert simulation("vs-tls-routes").run(call).cluster == cluster


def test_tls_route_unknown_sni_falls_through() -> None:
    """No tls route matches: the listener's fallthrough chain (ALLOW_ANY) passes it on."""
    call = Call(address="10.96.12.1", port=443, tls=TLS.TLS, sni="other.example.com")
    result = simulation("vs-tls-routes").run(call)
    assert (result.filter_chain, result.cluster) == ("PassthroughFilterChain", "PassthroughCluster")


def test_tcp_route_weights() -> None:
    result = simulation("vs-tls-routes").run(Call(address="10.96.12.2", port=5432))
    assert result.weighted_clusters == (
        ("outbound|5432|v1|db.default.svc.cluster.local", 75),
        ("outbound|5432|v2|db.default.svc.cluster.local", 25),
    )
