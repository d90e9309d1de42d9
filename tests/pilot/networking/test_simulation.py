"""Routing behaviour of generated xDS, checked by simulating calls (Istio's simulation tests).

Each test takes a golden case's configs (testdata/<case>.yaml, optionally with another proxy),
generates what Envoy would fetch, checks it is consistent, then sends calls through it with
`tests.helpers.simulate` and asserts where they end up. A comment starting "Istio:" marks a test
asserting Istio's behaviour with a reference into the Istio source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.simulate import (
    Call,
    CallMode,
    Error,
    Protocol,
    Result,
    Simulation,
    simulate_case,
)
from tests.helpers.xds import ProxySpec

TESTDATA = Path(__file__).resolve().parent / "testdata"
REVIEWS = "reviews.default.svc.cluster.local"
REVIEWS_VHOST = f"{REVIEWS}:9080"
REVIEWS_V1 = f"outbound|9080|v1|{REVIEWS}"
REVIEWS_V2 = f"outbound|9080|v2|{REVIEWS}"
REVIEWS_V3 = f"outbound|9080|v3|{REVIEWS}"
OTHER_NAMESPACE_PROXY = ProxySpec(ip="10.70.0.1", name="sleep-6f8cf9d8b-4xkqz.other")


def simulation(case: str, proxy: ProxySpec | None = None, **overrides: Any) -> Simulation:
    return simulate_case(TESTDATA / f"{case}.yaml", proxy, **overrides)


def http(address: str, port: int, host: str, path: str = "/", **kwargs: Any) -> Call:
    return Call(address=address, port=port, host=host, path=path, **kwargs)


# ---- Bookinfo sidecar (REDIRECT mode) ------------------------------------------------------


def test_reviews_end_user_jason_goes_to_v2() -> None:
    sim = simulation("bookinfo-sidecar-jason")
    result = sim.run(http("10.96.0.30", 9080, "reviews:9080", headers={"end-user": "jason"}))
    assert result == Result(
        listener="0.0.0.0_9080",
        filter_chain="",
        route_config="9080",
        virtual_host=REVIEWS_VHOST,
        route="",
        cluster=REVIEWS_V2,
        endpoints=("10.10.0.32:9080",),
    )


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"end-user": "Jason"}, id="exact-match-is-case-sensitive"),
        pytest.param({"end-user": "jason2"}, id="exact-not-prefix"),
        pytest.param({"x-end-user": "jason"}, id="other-header"),
    ],
)
def test_reviews_everyone_else_goes_to_v3(headers: dict[str, str]) -> None:
    result = simulation("bookinfo-sidecar-jason").run(
        http("10.96.0.30", 9080, "reviews", headers=headers)
    )
    assert (result.error, result.cluster, result.endpoints) == (
        None,
        REVIEWS_V3,
        ("10.10.0.33:9080",),
    )


def test_reviews_80_20_gives_weighted_clusters() -> None:
    result = simulation("bookinfo-sidecar-80-20").run(http("10.96.0.30", 9080, "reviews"))
    assert result.error is None
    assert result.virtual_host == REVIEWS_VHOST
    assert result.cluster == ""
    assert result.weighted_clusters == ((REVIEWS_V1, 80), (REVIEWS_V2, 20))


def test_services_without_virtual_service_use_the_default_route() -> None:
    sim = simulation("bookinfo-sidecar-jason")
    result = sim.run(http("10.96.0.20", 9080, "details.default.svc.cluster.local"))
    assert (result.route, result.cluster, result.endpoints) == (
        "default",
        "outbound|9080||details.default.svc.cluster.local",
        ("10.10.0.20:9080",),
    )


def test_all_v1_pins_every_service_and_keeps_inbound() -> None:
    sim = simulation("bookinfo-sidecar-all-v1")
    for name, endpoint in [("reviews", "10.10.0.31:9080"), ("ratings", "10.10.0.40:9080")]:
        result = sim.run(http("10.96.0.99", 9080, name))
        assert result.cluster == f"outbound|9080|v1|{name}.default.svc.cluster.local"
        assert result.endpoints == (endpoint,)
    inbound = sim.run(Call(port=9080, host="reviews", mode=CallMode.INBOUND))
    assert (inbound.listener, inbound.filter_chain, inbound.cluster) == (
        "virtualInbound",
        "0.0.0.0_9080",
        "inbound|9080||",
    )


@pytest.mark.parametrize(
    "host",
    [
        "reviews",
        "reviews:9080",
        "reviews.default",
        "reviews.default.svc",
        REVIEWS,
        f"{REVIEWS}:9080",
        "Reviews.Default.SVC.cluster.local",
        "10.96.0.30",
    ],
)
def test_same_namespace_host_forms_reach_the_same_vhost(host: str) -> None:
    result = simulation("bookinfo-sidecar-jason").run(http("10.96.0.30", 9080, host))
    assert (result.virtual_host, result.cluster) == (REVIEWS_VHOST, REVIEWS_V3)


@pytest.mark.parametrize("host", ["reviews.default", "reviews.default.svc", REVIEWS, "10.96.0.30"])
def test_other_namespace_qualified_hosts_reach_reviews(host: str) -> None:
    sim = simulation("bookinfo-sidecar-jason", OTHER_NAMESPACE_PROXY)
    assert sim.run(http("10.96.0.30", 9080, host)).virtual_host == REVIEWS_VHOST


def test_other_namespace_short_name_does_not_reach_reviews() -> None:
    sim = simulation("bookinfo-sidecar-jason", OTHER_NAMESPACE_PROXY)
    result = sim.run(http("10.96.0.30", 9080, "reviews"))
    assert (result.virtual_host, result.route, result.cluster) == (
        "allow_any",
        "allow_any",
        "PassthroughCluster",
    )
    assert result.endpoints == ("10.96.0.30:9080",)  # the original destination


def test_unknown_destinations_pass_through() -> None:
    sim = simulation("bookinfo-sidecar-jason")
    tcp = sim.run(Call(address="8.8.8.8", port=443, protocol=Protocol.TCP))
    assert (tcp.listener, tcp.filter_chain, tcp.cluster) == (
        "virtualOutbound",
        "virtualOutbound-catchall-tcp",
        "PassthroughCluster",
    )
    unknown_host = sim.run(http("1.2.3.4", 9080, "example.com"))
    assert (unknown_host.listener, unknown_host.virtual_host) == ("0.0.0.0_9080", "allow_any")
    # Raw TCP on an HTTP port misses the HTTP chain (no ALPN) and passes through.
    raw = sim.run(Call(address="10.96.0.30", port=9080, protocol=Protocol.TCP))
    assert (raw.filter_chain, raw.cluster) == ("PassthroughFilterChain", "PassthroughCluster")
    # The outbound capture port itself is a black hole.
    loop = sim.run(Call(address="10.10.0.10", port=15001, protocol=Protocol.TCP))
    assert (loop.filter_chain, loop.cluster) == ("virtualOutbound-blackhole", "BlackHoleCluster")


# ---- gateways ------------------------------------------------------------------------------

GATEWAY_IP = "10.10.1.1"


def gateway_call(host: str, path: str = "/", port: int = 8080, **kwargs: Any) -> Call:
    return http(GATEWAY_IP, port, host, path, mode=CallMode.DIRECT, **kwargs)


PRODUCTPAGE = "outbound|9080||productpage.default.svc.cluster.local"


@pytest.mark.parametrize(
    "path",
    [
        "/productpage",
        "/productpage?u=normal",
        "/static/css/app.css",
        "/login",
        "/logout",
        "/api/v1/products/1/reviews",
    ],
)
def test_bookinfo_gateway_routes_to_productpage(path: str) -> None:
    result = simulation("bookinfo-gateway").run(gateway_call("bookinfo.example.com", path))
    assert result.error is None
    assert (result.listener, result.route_config, result.virtual_host) == (
        "0.0.0.0_8080",
        "http.8080",
        "*:8080",
    )
    assert (result.cluster, result.endpoints) == (PRODUCTPAGE, ("10.10.0.10:9080",))


@pytest.mark.parametrize("path", ["/", "/loginx", "/productpage/x", "/Productpage"])
def test_bookinfo_gateway_unmatched_path_is_404(path: str) -> None:
    result = simulation("bookinfo-gateway").run(gateway_call("bookinfo.example.com", path))
    assert (result.virtual_host, result.error) == ("*:8080", Error.NO_ROUTE)


def test_gateway_serves_only_its_server_ports() -> None:
    sim = simulation("bookinfo-gateway")
    assert sim.run(gateway_call("bookinfo.example.com", port=80)).error is Error.NO_LISTENER
    # Gateways have no iptables: there is no virtualOutbound to hand calls off.
    assert sim.run(http("10.96.0.10", 9080, "productpage")).error is Error.NO_LISTENER


def test_gateway_unknown_host_is_404() -> None:
    result = simulation("gateway-port-mapping").run(gateway_call("unknown.example.com"))
    assert (result.listener, result.route_config, result.error) == (
        "0.0.0.0_8080",
        "http.8080",
        Error.NO_VIRTUAL_HOST,
    )


def test_gateway_port_maps_to_target_port_and_merges_servers() -> None:
    sim = simulation("gateway-port-mapping")
    canary = sim.run(gateway_call("shop.example.com", "/reviews/1", headers={"x-canary": "true"}))
    assert (canary.virtual_host, canary.cluster) == ("shop.example.com:80", REVIEWS_V3)
    plain = sim.run(gateway_call("admin.example.com:80", "/reviews/1"))
    assert (plain.virtual_host, plain.cluster) == (
        "admin.example.com:80",
        f"outbound|9080||{REVIEWS}",
    )
    assert sim.run(gateway_call("shop.example.com", "/")).cluster.endswith(
        "|productpage.default.svc.cluster.local"
    )


@pytest.mark.parametrize(
    ("host", "vhost"),
    [
        ("api.internal.example.com", "*.internal.example.com:9000"),
        ("a.b.internal.example.com", "*.internal.example.com:9000"),
        ("internal.example.com", None),  # the wildcard stands for at least one label
    ],
)
def test_gateway_wildcard_host(host: str, vhost: str | None) -> None:
    result = simulation("gateway-port-mapping").run(gateway_call(host, port=9000))
    if vhost is None:
        assert result.error is Error.NO_VIRTUAL_HOST
    else:
        assert (result.virtual_host, result.cluster) == (
            vhost,
            "outbound|9080||details.default.svc.cluster.local",
        )


# ---- TCP services ---------------------------------------------------------


def test_tcp_service_on_its_vip() -> None:
    sim = simulation("tcp-service")
    mongo = sim.run(Call(address="192.168.50.7", port=27017, protocol=Protocol.TCP))
    assert (mongo.listener, mongo.cluster, mongo.endpoints) == (
        "192.168.50.7_27017",
        "outbound|27017||mongo.external.example.com",
        ("192.168.50.7:27017",),
    )
    # Another address on the same port is not that service.
    other = sim.run(Call(address="192.168.50.8", port=27017, protocol=Protocol.TCP))
    assert (other.listener, other.cluster) == ("virtualOutbound", "PassthroughCluster")


def test_tcp_virtual_service_splits_traffic() -> None:
    # Istio: VirtualService tcp routes drive the tcp_proxy of the service's listener
    # (pilot/pkg/networking/core/tls.go buildSidecarOutboundTCPFilterChainOpts →
    # buildOutboundNetworkFilters: weighted_clusters for several destinations).
    result = simulation("tcp-service").run(
        Call(address="10.96.3.6", port=3306, protocol=Protocol.TCP)
    )
    assert result.listener == "10.96.3.6_3306"
    assert result.weighted_clusters == (
        ("outbound|3306|v1|mysql.db.svc.cluster.local", 90),
        ("outbound|3306|v2|mysql.db.svc.cluster.local", 10),
    )


# ---- NONE mode and inbound -----------------------------------------------------------------


def test_none_mode_egress_listener_bound_per_sidecar() -> None:
    sim = simulation("sidecar-none-mode")
    result = sim.run(http("127.0.0.1", 9080, "reviews", mode=CallMode.DIRECT))
    assert result == Result(
        listener="127.0.0.1_9080",
        route_config="9080",
        virtual_host=REVIEWS_VHOST,
        route="default",
        cluster=f"outbound|9080||{REVIEWS}",
        endpoints=("10.10.0.31:9080", "10.10.0.32:9080", "10.10.0.33:9080"),
    )
    # details is not among the egress hosts of port 9080.
    details = sim.run(http("127.0.0.1", 9080, "details", mode=CallMode.DIRECT))
    assert (details.virtual_host, details.cluster) == ("allow_any", "PassthroughCluster")
    mysql = sim.run(
        Call(address="127.0.0.1", port=3306, protocol=Protocol.TCP, mode=CallMode.DIRECT)
    )
    assert (mysql.listener, mysql.cluster) == (
        "127.0.0.1_3306",
        "outbound|3306||mysql.db.svc.cluster.local",
    )


def test_none_mode_has_no_capture_listeners() -> None:
    sim = simulation("sidecar-none-mode")
    assert sim.run(http("10.96.0.30", 9080, "reviews")).error is Error.NO_LISTENER
    assert sim.run(Call(port=9080, mode=CallMode.INBOUND)).error is Error.NO_LISTENER
    assert sim.run(http("127.0.0.1", 9081, "reviews", mode=CallMode.DIRECT)).error is (
        Error.NO_LISTENER
    )


def test_none_mode_ingress_listener_binds_instance_ip() -> None:
    # Istio: a Sidecar ingress listener without `bind` binds the proxy's global unicast IP
    # (pilot/pkg/networking/core/listener_inbound.go buildInboundChainConfigs →
    # listener_address.go getSidecarInboundBindIPs), named `<ip>_<port>`.
    result = simulation("sidecar-none-mode").run(
        http("10.10.0.10", 9080, "productpage", mode=CallMode.DIRECT)
    )
    assert (result.listener, result.cluster, result.endpoints) == (
        "10.10.0.10_9080",
        "inbound|9080||",
        ("127.0.0.1:8080",),
    )
