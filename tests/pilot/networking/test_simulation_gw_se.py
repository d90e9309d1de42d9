"""Gateways that forward TCP (TLS passthrough, TLS termination to tcp routes, TCP servers,
AUTO_PASSTHROUGH) and ServiceEntry resolutions and protocols, by simulated calls.

Cases: testdata/gw-tls-passthrough.yaml, gw-tcp.yaml, gw-auto-passthrough.yaml,
se-resolution.yaml, se-protocols.yaml. A comment starting "Istio:" points at the Istio source
the test follows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from tests.helpers.simulate import TLS, Call, CallMode, Error, Protocol, Simulation, simulate_case

TESTDATA = Path(__file__).resolve().parent / "testdata"
GATEWAY_IP = "10.10.1.1"
NGINX = "outbound|443||nginx.default.svc.cluster.local"
SHOP_A = "outbound|443||shop-a.shop.svc.cluster.local"
MYSQL_V1 = "outbound|3306|v1|mysql.db.svc.cluster.local"
MYSQL_V2 = "outbound|3306|v2|mysql.db.svc.cluster.local"
ISTIO_ALPN = "istio"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def simulation(case: str, **overrides: Any) -> Simulation:
    return simulate_case(TESTDATA / f"{case}.yaml", **overrides)


def tls_call(sni: str, port: int, *, address: str = GATEWAY_IP, **kwargs: Any) -> Call:
    kwargs.setdefault("tls", TLS.TLS)
    kwargs.setdefault("mode", CallMode.DIRECT)
    return Call(address=address, port=port, sni=sni, protocol=Protocol.TCP, **kwargs)


# ---- PASSTHROUGH: SNI picks a tls route, the bytes stay encrypted ---------------------------


@pytest.mark.parametrize(
    ("sni", "cluster", "endpoints"),
    [
        ("nginx.example.com", NGINX, ("10.50.0.1:8443",)),  # the Service's targetPort
        ("a.shop.example.com", SHOP_A, ("10.60.0.1:443",)),
    ],
)
def test_passthrough_forwards_by_sni(sni: str, cluster: str, endpoints: tuple[str, ...]) -> None:
    result = simulation("gw-tls-passthrough").run(tls_call(sni, 443))
    assert result.error is None, result
    assert result.listener == "0.0.0.0_443"
    assert not result.terminates_tls  # passthrough: no TLS context on the chain
    assert (result.cluster, result.endpoints) == (cluster, endpoints)


def test_passthrough_weighted_tls_route() -> None:
    result = simulation("gw-tls-passthrough").run(tls_call("b.shop.example.com", 443))
    assert result.weighted_clusters == (
        ("outbound|443|v1|shop-b.shop.svc.cluster.local", 90),
        ("outbound|443|v2|shop-b.shop.svc.cluster.local", 10),
    )


def test_duplicate_sni_keeps_the_first_virtual_service() -> None:
    # Istio: buildGatewayNetworkFiltersFromTLSRoutes skips a match whose SNI hosts another
    # route already claimed on this port and bind (CheckDuplicates).
    result = simulation("gw-tls-passthrough").run(tls_call("nginx.example.com", 443))
    assert result.cluster == NGINX  # not nginx-dup's productpage


@pytest.mark.parametrize("sni", ["c.shop.example.com", "unknown.example.com", ""])
def test_sni_without_a_route_matches_no_chain(sni: str) -> None:
    # c.shop: VirtualService `stray` is in namespace default, the server host is shop/*.shop...
    result = simulation("gw-tls-passthrough").run(tls_call(sni, 443))
    assert result.error is Error.NO_FILTER_CHAIN


def test_terminating_https_server_shares_the_port() -> None:
    result = simulation("gw-tls-passthrough").run(
        Call(
            address=GATEWAY_IP,
            port=443,
            host="secure.example.com",
            sni="secure.example.com",
            tls=TLS.TLS,
            scheme="https",
            mode=CallMode.DIRECT,
        )
    )
    assert result.error is None, result
    assert result.terminates_tls
    assert result.route_config == "https.443.https-secure.edge.istio-system"
    assert result.cluster == "outbound|9080||productpage.default.svc.cluster.local"


@pytest.mark.parametrize(
    ("sni", "cluster"),
    [
        ("legacy.internal.example.com", "outbound|9443||legacy.internal.example.com"),
        ("a.shop.example.com", SHOP_A),  # its match names no port: every passthrough server
    ],
)
def test_tls_protocol_passthrough_server(sni: str, cluster: str) -> None:
    result = simulation("gw-tls-passthrough").run(tls_call(sni, 8443))
    assert (result.error, result.listener, result.cluster) == (None, "0.0.0.0_8443", cluster)


@pytest.mark.parametrize("sni", ["unbound.example.com", "nginx.example.com", "b.shop.example.com"])
def test_routes_for_other_ports_or_gateways_are_not_served(sni: str) -> None:
    # unbound names gateway `edge` from namespace default (default/edge); nginx's and b.shop's
    # matches name port 443.
    result = simulation("gw-tls-passthrough").run(tls_call(sni, 8443))
    assert result.error is Error.NO_FILTER_CHAIN


# ---- TCP servers and TLS servers terminating to tcp routes ---------------------------------


def test_tcp_server_splits_by_weight() -> None:
    result = simulation("gw-tcp").run(
        Call(address="10.10.1.9", port=31400, protocol=Protocol.TCP, mode=CallMode.DIRECT)
    )
    assert result.listener == "0.0.0.0_31400"
    assert result.weighted_clusters == ((MYSQL_V1, 80), (MYSQL_V2, 20))


def test_server_bound_to_an_address_has_its_own_listener() -> None:
    result = simulation("gw-tcp").run(
        Call(address=GATEWAY_IP, port=31400, protocol=Protocol.TCP, mode=CallMode.DIRECT)
    )
    assert (result.listener, result.cluster) == (f"{GATEWAY_IP}_31400", MYSQL_V2)


def test_tls_server_terminates_and_forwards_tcp() -> None:
    sim = simulation("gw-tcp")
    result = sim.run(tls_call("db.example.com", 31443))
    assert result.error is None, result
    assert result.terminates_tls
    assert (result.cluster, result.endpoints) == (MYSQL_V1, ("10.30.0.6:3306",))
    context = tls_pb2.DownstreamTlsContext()
    assert result.chain_proto.transport_socket.typed_config.Unpack(context)
    certs = context.common_tls_context.tls_certificate_sds_secret_configs
    assert [c.name for c in certs] == ["kubernetes://db-cert"]
    assert sim.run(tls_call("other.example.com", 31443)).error is Error.NO_FILTER_CHAIN


def test_tcp_server_without_route_has_no_listener() -> None:
    result = simulation("gw-tcp").run(
        Call(address="10.10.1.9", port=31500, protocol=Protocol.TCP, mode=CallMode.DIRECT)
    )
    assert result.error is Error.NO_LISTENER


# ---- AUTO_PASSTHROUGH ------------------------------------------------------------------------


def test_auto_passthrough_routes_sni_to_the_sni_dnat_cluster() -> None:
    sim = simulation("gw-auto-passthrough")
    name = "outbound_.9080_.v1_.reviews.default.svc.cluster.local"
    result = sim.run(tls_call(name, 15443, address="10.10.2.1", alpn=ISTIO_ALPN))
    assert result.error is None, result
    assert (result.cluster, result.endpoints) == (name, ("10.10.0.31:9080",))
    cluster = sim.clusters[name]
    assert not cluster.HasField("transport_socket")  # the client's mTLS passes unopened
    assert not cluster.transport_socket_matches


def test_auto_passthrough_reaches_mtls_endpoints_only() -> None:
    # Istio: EndpointsWithMTLSFilter for DNS-SRV (SNI-DNAT) cluster names.
    sim = simulation("gw-auto-passthrough")
    dnat = sim.cluster_endpoints("outbound_.9080_._.reviews.default.svc.cluster.local")
    plain = sim.cluster_endpoints("outbound|9080||reviews.default.svc.cluster.local")
    assert "10.10.0.34:9080" in plain
    assert "10.10.0.34:9080" not in dnat and len(dnat) == 3


@pytest.mark.parametrize(
    ("sni", "alpn"),
    [
        ("outbound_.9080_._.reviews.default.svc.cluster.local", "h2"),  # not an Istio ALPN
        ("outbound_.8080_._.vm-app.example.com", ISTIO_ALPN),  # outside the hosts *.local
        ("outbound_.443_._.api.external.local", ISTIO_ALPN),  # MESH_EXTERNAL
    ],
)
def test_auto_passthrough_rejects_other_connections(sni: str, alpn: str) -> None:
    result = simulation("gw-auto-passthrough").run(
        tls_call(sni, 15443, address="10.10.2.1", alpn=alpn)
    )
    assert result.error is Error.NO_FILTER_CHAIN


# ---- ServiceEntry resolution ---------------------------------------------------------------


def _tcp(address: str, port: int) -> Call:
    return Call(address=address, port=port, protocol=Protocol.TCP)


@pytest.mark.parametrize(
    ("call", "listener", "cluster", "endpoints"),
    [
        # NONE: the original destination
        (
            _tcp("198.51.100.5", 5432),
            "0.0.0.0_5432",
            "outbound|5432||db.none.example.com",
            ("198.51.100.5:5432",),
        ),
        # NONE with a CIDR: the prefix range matches, other destinations pass through
        (
            _tcp("192.168.3.4", 6379),
            "0.0.0.0_6379",
            "outbound|6379||cache.example.com",
            ("192.168.3.4:6379",),
        ),
        (_tcp("172.16.0.1", 6379), "0.0.0.0_6379", "PassthroughCluster", ("172.16.0.1:6379",)),
        (
            _tcp("10.5.0.1", 6379),
            "10.5.0.1_6379",
            "outbound|6379||cache.example.com",
            ("10.5.0.1:6379",),
        ),
        # NONE, HTTP: by Host, to the original destination
        (
            Call(address="198.51.100.9", port=8080, host="legacy-web.example.com"),
            "0.0.0.0_8080",
            "outbound|8080||legacy-web.example.com",
            ("198.51.100.9:8080",),
        ),
        # STATIC: the endpoints (one with its own port)
        (
            Call(address="240.0.0.10", port=9000, host="static.example.com"),
            "0.0.0.0_9000",
            "outbound|9000||static.example.com",
            ("203.0.113.10:9000", "203.0.113.11:9001"),
        ),
        # DNS: Envoy resolves the host itself, on the targetPort
        (
            Call(address="127.0.0.1", port=7000, host="localhost:7000"),
            "0.0.0.0_7000",
            "outbound|7000||localhost",
            ("localhost:17000",),
        ),
    ],
)
def test_service_entry_resolution(
    call: Call, listener: str, cluster: str, endpoints: tuple[str, ...]
) -> None:
    result = simulation("se-resolution").run(call)
    assert result.error is None, result
    assert (result.listener, result.cluster, result.endpoints) == (listener, cluster, endpoints)


@pytest.mark.parametrize(
    ("cluster", "kind"),
    [
        ("outbound|5432||db.none.example.com", cluster_pb2.Cluster.ORIGINAL_DST),
        ("outbound|9000||static.example.com", cluster_pb2.Cluster.EDS),
        ("outbound|7000||localhost", cluster_pb2.Cluster.STRICT_DNS),
        ("outbound|7443||api.logical.example.com", cluster_pb2.Cluster.LOGICAL_DNS),
    ],
)
def test_resolution_gives_cluster_type(cluster: str, kind: int) -> None:
    assert simulation("se-resolution").clusters[cluster].type == kind


def test_logical_dns_uses_its_endpoint_address() -> None:
    result = simulation("se-resolution").run(
        tls_call("api.logical.example.com", 7443, address="203.0.113.50", mode=CallMode.OUTBOUND)
    )
    assert (result.cluster, result.endpoints) == (
        "outbound|7443||api.logical.example.com",
        ("lb.logical.example.com:443",),
    )


# ---- protocols -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "listener", "route_config", "cluster"),
    [
        (Call(address="240.0.0.20", port=80, host="api.example.com"), "0.0.0.0_80", "80", "80"),
        (
            Call(address="240.0.0.20", port=9090, host="api.example.com", protocol=Protocol.HTTP2),
            "0.0.0.0_9090",
            "9090",
            "9090",
        ),
        (
            tls_call("api.example.com", 443, address="240.0.0.20", mode=CallMode.OUTBOUND),
            "240.0.0.20_443",
            "",
            "443",
        ),
        (
            tls_call("api.example.com", 8443, address="240.0.0.20", mode=CallMode.OUTBOUND),
            "240.0.0.20_8443",
            "",
            "8443",
        ),
        (_tcp("240.0.0.20", 9000), "240.0.0.20_9000", "", "9000"),
    ],
)
def test_service_entry_protocols(
    call: Call, listener: str, route_config: str, cluster: str
) -> None:
    result = simulation("se-protocols").run(call)
    assert result.error is None, result
    assert (result.listener, result.route_config, result.cluster) == (
        listener,
        route_config,
        f"outbound|{cluster}||api.example.com",
    )


def test_tls_without_vip_is_chosen_by_sni() -> None:
    sim = simulation("se-protocols")
    known = sim.run(tls_call("novip.example.com", 443, address="1.2.3.4", mode=CallMode.OUTBOUND))
    assert (known.listener, known.cluster) == ("0.0.0.0_443", "outbound|443||novip.example.com")
    other = sim.run(tls_call("else.example.com", 443, address="1.2.3.4", mode=CallMode.OUTBOUND))
    assert other.cluster == "PassthroughCluster"


@pytest.mark.parametrize(
    ("port", "http2"),
    [(80, False), (8081, True), (9090, True)],  # HTTP, HTTP2, GRPC
)
def test_upstream_http2_for_http2_and_grpc(port: int, http2: bool) -> None:
    cluster = simulation("se-protocols").clusters[f"outbound|{port}||api.example.com"]
    packed = cluster.typed_extension_protocol_options.get(HTTP_PROTOCOL_OPTIONS)
    options = http_protocol_options_pb2.HttpProtocolOptions()
    if packed is not None:
        assert packed.Unpack(options)
    uses_h2 = options.explicit_http_config.HasField("http2_protocol_options")
    assert uses_h2 is http2


@pytest.mark.parametrize(
    ("port", "listener", "http"),
    [
        (8000, "0.0.0.0_8000", True),  # appProtocol kubernetes.io/h2c → HTTP2
        (8001, "0.0.0.0_8001", True),  # appProtocol grpc wins over the name tcp-rpc
        (8443, "10.96.8.1_8443", False),  # appProtocol https → TCP on the VIP
        (8002, "0.0.0.0_8002", True),  # http2-admin
        (8003, "0.0.0.0_8003", True),  # grpc-web-ui
        (8004, "10.96.8.1_8004", False),  # tcp-feed
        (3307, "10.96.8.1_3307", False),  # mysql-db
        (3306, "10.96.8.1_3306", False),  # no prefix, well-known MySQL port
    ],
)
def test_kubernetes_port_protocol_selection(port: int, listener: str, http: bool) -> None:
    call = Call(address="10.96.8.1", port=port, host=f"shop:{port}")
    if not http:
        call = _tcp("10.96.8.1", port)
    result = simulation("se-protocols").run(call)
    assert result.error is None, result
    assert result.listener == listener
    assert bool(result.route_config) is http
    assert result.cluster == f"outbound|{port}||shop.default.svc.cluster.local"


def test_unknown_port_name_is_sniffed() -> None:
    sim = simulation("se-protocols")
    http = sim.run(Call(address="10.96.8.1", port=8005, host="shop:8005"))
    tcp = sim.run(_tcp("10.96.8.1", 8005))
    assert http.route_config == "shop.default.svc.cluster.local:8005"
    assert (tcp.route_config, tcp.cluster) == ("", "outbound|8005||shop.default.svc.cluster.local")
