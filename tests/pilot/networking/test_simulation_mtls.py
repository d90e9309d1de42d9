"""Mutual TLS in generated xDS: which inbound chain a call lands on per PeerAuthentication mode,
and how a client proxy connects upstream (auto mTLS, DestinationRule TLS), simulated on the
mtls-* golden cases. A comment starting "Istio:" points at the behaviour's source in Istio."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.simulate import (
    TLS,
    Call,
    CallMode,
    Error,
    Protocol,
    Simulation,
    UpstreamTLS,
    simulate_case,
)
from tests.helpers.xds import ProxySpec

TESTDATA = Path(__file__).resolve().parent / "testdata"
REVIEWS = "reviews.default.svc.cluster.local"
REVIEWS_CLUSTER = f"outbound|9080||{REVIEWS}"
MESH_HTTP_ALPN = "istio-http/1.1"  # what a client sidecar offers first for HTTP/1.1
MESH_TCP_ALPN = "istio-peer-exchange"


def simulation(case: str, proxy: ProxySpec | None = None, **overrides: Any) -> Simulation:
    return simulate_case(TESTDATA / f"{case}.yaml", proxy, **overrides)


def to_productpage(port: int, tls: TLS, alpn: str = "", protocol: Protocol = Protocol.HTTP) -> Call:
    return Call(
        address="10.10.0.10",
        port=port,
        host="productpage",
        mode=CallMode.INBOUND,
        tls=tls,
        alpn=alpn,
        protocol=protocol,
    )


def inbound(port: int, tls: TLS, alpn: str = "", protocol: Protocol = Protocol.HTTP) -> Call:
    return Call(
        address="10.20.0.5",
        port=port,
        host="httpbin",
        mode=CallMode.INBOUND,
        tls=tls,
        alpn=alpn,
        protocol=protocol,
    )


# ---- inbound, PERMISSIVE (no policy) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("tls", "alpn"),
    [
        pytest.param(TLS.MTLS, MESH_HTTP_ALPN, id="mtls-from-sidecar"),
        pytest.param(TLS.PLAINTEXT, "", id="plaintext-from-legacy-client"),
    ],
)
def test_permissive_port_accepts_mtls_and_plaintext(tls: TLS, alpn: str) -> None:
    # Istio: pilot/pkg/networking/core/filterchain_options.go (inboundPermissiveFilterChain...)
    sim = simulation("mtls-permissive")
    result = sim.run(to_productpage(9080, tls, alpn))
    assert (result.error, result.listener, result.filter_chain, result.cluster) == (
        None,
        "virtualInbound",
        "0.0.0.0_9080",
        "inbound|9080||",
    )
    assert result.terminates_tls is (tls is TLS.MTLS)


@pytest.mark.parametrize(
    ("tls", "alpn", "protocol", "chain", "terminates"),
    [
        pytest.param(
            TLS.MTLS,
            MESH_HTTP_ALPN,
            Protocol.HTTP,
            "virtualInbound-catchall-http",
            True,
            id="mtls-http",
        ),
        pytest.param(
            TLS.PLAINTEXT,
            "",
            Protocol.HTTP,
            "virtualInbound-catchall-http",
            False,
            id="plaintext-http",
        ),
        pytest.param(TLS.MTLS, MESH_TCP_ALPN, Protocol.TCP, "virtualInbound", True, id="mtls-tcp"),
        pytest.param(TLS.PLAINTEXT, "", Protocol.TCP, "virtualInbound", False, id="plaintext-tcp"),
        pytest.param(
            TLS.TLS, "h2", Protocol.TCP, "virtualInbound", False, id="app-tls-passes-through"
        ),
    ],
)
def test_permissive_unknown_port_passes_through(
    tls: TLS, alpn: str, protocol: Protocol, chain: str, terminates: bool
) -> None:
    sim = simulation("mtls-permissive")
    result = sim.run(to_productpage(7777, tls, alpn, protocol))
    assert (result.error, result.filter_chain, result.cluster) == (
        None,
        chain,
        "InboundPassthroughCluster",
    )
    assert result.terminates_tls is terminates


# ---- inbound, STRICT with a port-level PERMISSIVE exception ---------------------------------


def test_strict_port_refuses_plaintext() -> None:
    # Istio: a STRICT port has only TLS chains; a plaintext connection matches none.
    result = simulation("mtls-strict").run(inbound(8080, TLS.PLAINTEXT))
    assert result.error is Error.NO_FILTER_CHAIN


def test_strict_port_refuses_tls_without_client_certificate() -> None:
    result = simulation("mtls-strict").run(inbound(8080, TLS.TLS, alpn="http/1.1"))
    assert (result.filter_chain, result.error) == ("0.0.0.0_8080", Error.TLS_ERROR)


def test_strict_port_accepts_mtls() -> None:
    result = simulation("mtls-strict").run(inbound(8080, TLS.MTLS, alpn=MESH_HTTP_ALPN))
    assert (result.error, result.filter_chain, result.cluster) == (
        None,
        "0.0.0.0_8080",
        "inbound|8080||",
    )


def test_strict_unknown_port_refuses_plaintext() -> None:
    result = simulation("mtls-strict").run(inbound(7777, TLS.PLAINTEXT, protocol=Protocol.TCP))
    assert result.error is Error.NO_FILTER_CHAIN


@pytest.mark.parametrize(
    ("tls", "alpn"),
    [
        pytest.param(TLS.PLAINTEXT, "", id="plaintext"),
        pytest.param(TLS.MTLS, MESH_TCP_ALPN, id="mtls"),
    ],
)
def test_port_level_permissive_overrides_namespace_strict(tls: TLS, alpn: str) -> None:
    # Istio: PeerAuthentication portLevelMtls on the workload policy wins for that target port.
    result = simulation("mtls-strict").run(inbound(9000, tls, alpn=alpn, protocol=Protocol.TCP))
    assert (result.error, result.filter_chain, result.cluster) == (
        None,
        "0.0.0.0_9000",
        "inbound|9000||",
    )


def test_strict_sniffed_port_routes_mtls_http_and_tcp() -> None:
    sim = simulation("mtls-strict")
    http = sim.run(inbound(7000, TLS.MTLS, alpn=MESH_HTTP_ALPN))
    tcp = sim.run(inbound(7000, TLS.MTLS, alpn=MESH_TCP_ALPN, protocol=Protocol.TCP))
    assert (http.error, http.cluster) == (None, "inbound|7000||")
    assert http.virtual_host == "inbound|http|7000"
    assert (tcp.error, tcp.cluster, tcp.virtual_host) == (None, "inbound|7000||", "")
    assert sim.run(inbound(7000, TLS.PLAINTEXT)).error is Error.NO_FILTER_CHAIN


def test_unauthenticated_proxy_serves_plaintext_whatever_the_policy() -> None:
    """A proxy on the plaintext xDS port has no certificate: STRICT cannot be enforced by it,
    so its inbound side stays plaintext (documented; use the secure port for mTLS)."""
    sim = simulation("mtls-strict", authenticated=False)
    assert sim.run(inbound(8080, TLS.PLAINTEXT)).cluster == "inbound|8080||"
    assert not any(
        c.HasField("transport_socket") for c in sim.listeners["virtualInbound"].filter_chains
    )


# ---- NONE mode --------------------------------------------------------------------------------


def test_none_mode_strict_listener_only_accepts_mtls() -> None:
    sim = simulation("mtls-none-mode")
    direct = Call(address="10.10.0.10", port=9080, host="productpage", mode=CallMode.DIRECT)
    assert sim.run(direct).error is Error.NO_FILTER_CHAIN
    result = sim.run(replace(direct, tls=TLS.MTLS, alpn=MESH_HTTP_ALPN))
    assert (result.error, result.listener, result.cluster) == (
        None,
        "10.10.0.10_9080",
        "inbound|9080||",
    )


def test_none_mode_on_loopback_ip_inbound_port_wins_over_outbound() -> None:
    # On a loopback IP (one machine, a 127.0.x.y per workload) NONE-mode outbound listeners
    # bind that IP too (listener_common.local_bind): the egress `./*` listener for the service
    # port 9080 would be a second `127.0.10.10_9080`, and Envoy NACKs a whole LDS update with
    # a duplicate name. The Sidecar ingress listener is kept, alone (simulate_case checks the
    # resources are consistent: no duplicate names).
    sim = simulation("mtls-none-mode", ip="127.0.10.10")
    assert list(sim.resources.listeners) == ["127.0.10.10_9080"]
    direct = Call(address="127.0.10.10", port=9080, host="productpage", mode=CallMode.DIRECT)
    assert sim.run(direct).error is Error.NO_FILTER_CHAIN
    result = sim.run(replace(direct, tls=TLS.MTLS, alpn=MESH_HTTP_ALPN))
    assert (result.error, result.listener, result.cluster) == (
        None,
        "127.0.10.10_9080",
        "inbound|9080||",
    )


# ---- outbound ---------------------------------------------------------------------------------


def test_auto_mtls_to_sidecar_endpoints() -> None:
    # Istio: cluster_builder.go buildAutoMtlsSettings; transport socket match names tlsMode-istio
    # and tlsMode-disabled; endpoints of injected workloads carry tlsMode: istio.
    sim = simulation("mtls-permissive")
    cluster = sim.clusters[REVIEWS_CLUSTER]
    assert [m.name for m in cluster.transport_socket_matches] == [
        "tlsMode-istio",
        "tlsMode-disabled",
    ]
    assert sim.upstream_tls(REVIEWS_CLUSTER, "10.10.0.31:9080") == UpstreamTLS(
        TLS.MTLS,
        sni=f"outbound_.9080_._.{REVIEWS}",
        alpn=("istio-http/1.1", "istio"),
        certificate="default",
        validation="ROOTCA",
        sans=("spiffe://cluster.local/ns/default/sa/bookinfo-reviews",),
    )


def test_auto_mtls_plaintext_to_endpoints_without_sidecar() -> None:
    sim = simulation("mtls-strict")
    cluster = "outbound|8080||legacy.legacy.svc.cluster.local"
    # legacy's namespace disables mTLS: no auto mTLS at all, even to its sidecar endpoint.
    assert sim.upstream_tls(cluster, "10.30.0.5:8080").tls is TLS.PLAINTEXT
    assert sim.upstream_tls(cluster, "10.30.0.6:8080").tls is TLS.PLAINTEXT
    sim = simulation("mtls-permissive")
    assert sim.upstream_tls(REVIEWS_CLUSTER, "10.10.0.31:9080").tls is TLS.MTLS


def test_destination_rule_istio_mutual_applies_to_its_subset_only() -> None:
    sim = simulation("mtls-strict")
    v2 = "outbound|8080|v2|legacy.legacy.svc.cluster.local"
    v1 = "outbound|8080|v1|legacy.legacy.svc.cluster.local"
    upstream = sim.upstream_tls(v2, "10.30.0.6:8080")
    assert (upstream.tls, upstream.certificate, upstream.sni) == (
        TLS.MTLS,
        "default",
        "outbound_.8080_.v2_.legacy.legacy.svc.cluster.local",
    )
    assert sim.upstream_tls(v1, "10.30.0.5:8080").tls is TLS.PLAINTEXT


def test_unauthenticated_proxy_gets_no_mesh_mtls_upstream() -> None:
    sim = simulation("mtls-permissive", authenticated=False)
    assert not sim.clusters[REVIEWS_CLUSTER].transport_socket_matches
    assert sim.upstream_tls(REVIEWS_CLUSTER, "10.10.0.31:9080").tls is TLS.PLAINTEXT
