"""More behaviour by simulation: sniffed ports, DNS and TLS services, inbound ports, exportTo,
HTTP match conditions, fault injection and mutual TLS (set up as in test_simulation.py).

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
    TLS,
    Call,
    CallMode,
    Protocol,
    Simulation,
    simulate_case,
)
from tests.helpers.xds import ProxySpec

TESTDATA = Path(__file__).resolve().parent / "testdata"
REVIEWS = "reviews.default.svc.cluster.local"


def simulation(case: str, proxy: ProxySpec | None = None, **overrides: Any) -> Simulation:
    return simulate_case(TESTDATA / f"{case}.yaml", proxy, **overrides)


def http(address: str, port: int, host: str, path: str = "/", **kwargs: Any) -> Call:
    return Call(address=address, port=port, host=host, path=path, **kwargs)


# ---- sniffed, DNS and TLS services ---------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "route_config"),
    [
        (Protocol.HTTP, "web.default.svc.cluster.local:8080"),  # http_inspector: http/1.1
        (Protocol.HTTP2, "web.default.svc.cluster.local:8080"),  # http_inspector: h2c
        (Protocol.TCP, ""),  # no ALPN: the TCP chain
    ],
)
def test_sniffed_port_picks_http_or_tcp(protocol: Protocol, route_config: str) -> None:
    result = simulation("auto-port").run(
        Call(address="10.96.4.2", port=8080, host="web:8080", protocol=protocol)
    )
    assert result.error is None
    assert (result.listener, result.route_config) == ("10.96.4.2_8080", route_config)
    assert (result.cluster, result.endpoints) == (
        "outbound|8080||web.default.svc.cluster.local",
        ("10.40.0.30:80",),  # the targetPort
    )


def test_unnamed_kubernetes_port_is_sniffed() -> None:
    result = simulation("auto-port").run(http("10.96.4.1", 8000, "legacy"))
    assert (result.route_config, result.virtual_host, result.cluster) == (
        "legacy.default.svc.cluster.local:8000",
        "legacy.default.svc.cluster.local:8000",
        "outbound|8000||legacy.default.svc.cluster.local",
    )


def test_dns_service_entry_port_rewrite() -> None:
    sim = simulation("dns-service-entry")
    result = sim.run(http("142.250.74.10", 80, "www.googleapis.com"))
    assert (result.listener, result.virtual_host, result.cluster, result.endpoints) == (
        "0.0.0.0_80",
        "www.googleapis.com:80",
        "outbound|443||www.googleapis.com",
        ("www.googleapis.com:443",),
    )
    db = sim.run(Call(address="198.51.100.7", port=5432, protocol=Protocol.TCP))
    assert (db.cluster, db.endpoints) == (
        "outbound|5432||db.example.com",
        ("db1.example.com:15432", "db2.example.com:15432"),
    )


@pytest.mark.parametrize(
    ("sni", "cluster"),
    [
        ("www.googleapis.com", "outbound|443||www.googleapis.com"),
        ("example.org", "PassthroughCluster"),
    ],
)
def test_tls_service_without_vip_is_selected_by_sni(sni: str, cluster: str) -> None:
    # Istio: a TLS/HTTPS port of a service without a VIP shares 0.0.0.0_<port>, so its filter
    # chain matches server_names [host] behind a tls_inspector and other TLS traffic passes
    # through (pilot/pkg/networking/core/tls.go buildSidecarOutboundTLSFilterChainOpts).
    result = simulation("dns-service-entry").run(
        Call(address="93.184.216.34", port=443, protocol=Protocol.TCP, tls=TLS.TLS, sni=sni)
    )
    assert (result.listener, result.cluster) == ("0.0.0.0_443", cluster)


# ---- inbound ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "protocol", "chain", "cluster"),
    [
        (8080, Protocol.HTTP, "0.0.0.0_8080", "inbound|8080||"),
        (7070, Protocol.HTTP2, "0.0.0.0_7070", "inbound|7070||"),
        (9999, Protocol.HTTP, "virtualInbound-catchall-http", "InboundPassthroughCluster"),
        (9999, Protocol.TCP, "virtualInbound", "InboundPassthroughCluster"),
        (15006, Protocol.TCP, "virtualInbound-blackhole", "BlackHoleCluster"),
    ],
)
def test_redirect_inbound_by_target_port(
    port: int, protocol: Protocol, chain: str, cluster: str
) -> None:
    result = simulation("sidecar-redirect-inbound").run(
        Call(
            address="10.20.0.5", port=port, host="httpbin", protocol=protocol, mode=CallMode.INBOUND
        )
    )
    assert (result.error, result.listener, result.filter_chain, result.cluster) == (
        None,
        "virtualInbound",
        chain,
        cluster,
    )


# ---- exportTo --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "host", "cluster"),
    [
        ("export-to-client", "a-private.team-a", "PassthroughCluster"),
        ("export-to-client", "a-shared.team-a", "outbound|8080||a-shared.team-a.svc.cluster.local"),
        ("export-to-client", "a-public.team-a", "outbound|8080||a-public.team-a.svc.cluster.local"),
        ("export-to-client", "internal.client.example", "outbound|8080||internal.client.example"),
        ("export-to-owner", "a-private", "outbound|8080||a-private.team-a.svc.cluster.local"),
        ("export-to-owner", "a-shared", "PassthroughCluster"),
        ("export-to-owner", "a-public", "outbound|8080|v2|a-public.team-a.svc.cluster.local"),
        ("export-to-owner", "internal.client.example", "PassthroughCluster"),
    ],
)
def test_export_to_visibility(case: str, host: str, cluster: str) -> None:
    result = simulation(case).run(http("10.96.5.200", 8080, host))
    assert result.cluster == cluster


def test_private_virtual_service_applies_only_in_its_namespace() -> None:
    client = simulation("export-to-client").run(http("10.96.5.2", 8080, "a-public.team-a"))
    assert client.route_proto.route.timeout.seconds == 5
    owner = simulation("export-to-owner").run(http("10.96.5.2", 8080, "a-public"))
    assert owner.route_proto.route.timeout.seconds == 0


# ---- fault injection ----------------------------------------------------------------------


def test_fault_injection_delays_jason_on_ratings() -> None:
    # Istio: a VirtualService `fault` becomes the route's typed_per_filter_config
    # envoy.filters.http.fault (pilot/pkg/networking/core/route/route.go TranslateRoute →
    # TranslateFault).
    sim = simulation("bookinfo-sidecar-80-20")
    result = sim.run(http("10.96.0.40", 9080, "ratings", headers={"end-user": "jason"}))
    assert result.cluster == "outbound|9080|v1|ratings.default.svc.cluster.local"
    assert "envoy.filters.http.fault" in result.route_proto.typed_per_filter_config
    other = sim.run(http("10.96.0.40", 9080, "ratings"))
    assert "envoy.filters.http.fault" not in other.route_proto.typed_per_filter_config


# ---- HTTP match conditions -------------------------------------------------------------------

HTTPBIN = "httpbin.default.svc.cluster.local"


@pytest.mark.parametrize(
    ("path", "method", "headers", "route", "subset"),
    [
        ("/status/418", "GET", {}, "status", "v2"),
        ("/status/4180", "GET", {}, "default", "v1"),  # the regex must match the whole path
        ("/status/418?x=1", "GET", {}, "status", "v2"),  # the query is not part of the path
        ("/ADMIN/users", "GET", {}, "admin", "v3"),
        ("/x", "GET", {"x-version": "v3-canary"}, "canary.by-version", "v3"),
        ("/x", "GET", {"x-version": "v2"}, "default", "v1"),
        ("/x", "GET", {"x-user": "alice-smith"}, "canary.by-user", "v3"),
        ("/x", "GET", {"x-user": "carol-smith"}, "default", "v1"),
        ("/x?debug=1", "GET", {}, "debug", "v2"),
        ("/x?debug=1", "GET", {"x-no-debug": "false"}, "debug", "v2"),
        ("/x?debug=1", "GET", {"x-no-debug": "true"}, "default", "v1"),
        ("/x?debug=2", "GET", {}, "default", "v1"),
        ("/anything", "POST", {}, "post", "v2"),
        ("/anything", "GET", {}, "default", "v1"),
    ],
)
def test_http_match_conditions(
    path: str, method: str, headers: dict[str, str], route: str, subset: str
) -> None:
    result = simulation("http-route-matching").run(
        http("10.96.8.1", 8000, "httpbin", path, method=method, headers=headers)
    )
    assert (result.route, result.cluster) == (route, f"outbound|8000|{subset}|{HTTPBIN}")


def test_http_redirect_and_direct_response() -> None:
    sim = simulation("http-route-matching")
    moved = sim.run(http("10.96.8.1", 8000, "httpbin", "/old/page"))
    assert (moved.route, moved.redirect, moved.cluster) == ("moved", f"{HTTPBIN}/new", "")
    teapot = sim.run(http("10.96.8.1", 8000, "httpbin:8000", "/teapot"))
    assert (teapot.route, teapot.direct_response) == ("teapot", 418)
