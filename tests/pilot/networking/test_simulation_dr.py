"""DestinationRule load balancing, connection pools and outlier detection in generated xDS,
checked through simulated calls on the dr-* golden cases: which cluster a call reaches, how that
cluster balances, and which hash key its route makes Envoy use. A comment starting "Istio:"
points at the behaviour's source in Istio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from google.protobuf.json_format import MessageToDict

from tests.helpers.simulate import Call, Result, Simulation, simulate_case

TESTDATA = Path(__file__).resolve().parent / "testdata"
PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"


def simulation(case: str) -> Simulation:
    return simulate_case(TESTDATA / f"{case}.yaml")


def call(host: str, path: str = "/", port: int = 80, **headers: str) -> Call:
    return Call(address="10.99.0.1", port=port, host=host, path=path, headers=headers)


def hash_keys(result: Result, request: Call, source_ip: str = "10.70.0.9") -> list[str]:
    """What Envoy hashes for the request: each hash policy of the route in order, as
    Envoy evaluates them (a header's value, a cookie's, a query parameter's, the source IP);
    policies that find nothing are skipped."""
    keys: list[str] = []
    headers = request.request_headers()
    query = dict(p.split("=", 1) for p in request.path.partition("?")[2].split("&") if "=" in p)
    cookies = dict(
        c.strip().split("=", 1) for c in headers.get("cookie", "").split(";") if "=" in c
    )
    for policy in result.route_proto.route.hash_policy:
        which = policy.WhichOneof("policy_specifier")
        value = None
        if which == "header":
            value = headers.get(policy.header.header_name)
        elif which == "cookie":
            value = cookies.get(policy.cookie.name)
        elif which == "query_parameter":
            value = query.get(policy.query_parameter.name)
        elif which == "connection_properties" and policy.connection_properties.source_ip:
            value = source_ip
        if value is not None:
            keys.append(f"{which}:{value}")
    return keys


def retry_host_predicates(result: Result) -> list[str]:
    return [p.name for p in result.route_proto.route.retry_policy.retry_host_predicate]


# ---- simple load balancers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "policy"),
    [
        ("rr.lb.internal", cluster_pb2.Cluster.ROUND_ROBIN),
        ("lr.lb.internal", cluster_pb2.Cluster.LEAST_REQUEST),
        ("random.lb.internal", cluster_pb2.Cluster.RANDOM),
        ("sessions.lb.internal", cluster_pb2.Cluster.MAGLEV),
        ("legacy.lb.internal", cluster_pb2.Cluster.RING_HASH),
    ],
)
def test_simple_and_hash_policies_reach_the_cluster(host: str, policy: int) -> None:
    sim = simulation("dr-load-balancer")
    cluster = sim.clusters[f"outbound|80||{host}"]
    assert cluster.lb_policy == policy


def test_warmup_is_envoy_slow_start() -> None:
    # Istio: cluster_traffic_policy.go setWarmup (aggression 1 and 10 % when unset) and the
    # deprecated warmupDurationSecs (window only).
    sim = simulation("dr-load-balancer")
    rr = sim.clusters["outbound|80||rr.lb.internal"].round_robin_lb_config.slow_start_config
    assert (rr.slow_start_window.seconds, rr.aggression.default_value) == (60, 1.5)
    assert rr.min_weight_percent.value == 20
    lr = sim.clusters["outbound|80||lr.lb.internal"].least_request_lb_config.slow_start_config
    assert lr.slow_start_window.seconds == 30
    assert not lr.HasField("aggression")


def test_passthrough_uses_the_original_destination() -> None:
    sim = simulation("dr-load-balancer")
    result = sim.run(call("direct.lb.internal"))
    assert result.cluster == "outbound|80||direct.lb.internal"
    cluster = sim.clusters[result.cluster]
    assert (cluster.type, cluster.lb_policy) == (
        cluster_pb2.Cluster.ORIGINAL_DST,
        cluster_pb2.Cluster.CLUSTER_PROVIDED,
    )
    assert result.endpoints == ("10.99.0.1:80",)  # wherever the caller was going


# ---- consistent hashing ---------------------------------------------------------------------


def test_header_hash_pins_by_value_and_retries_stay_on_the_host() -> None:
    sim = simulation("dr-load-balancer")
    alice = sim.run(call("carts.lb.internal", **{"x-user": "alice"}))
    assert alice.cluster == "outbound|80||carts.lb.internal"
    assert sim.clusters[alice.cluster].lb_policy == cluster_pb2.Cluster.RING_HASH
    assert sim.clusters[alice.cluster].ring_hash_lb_config.minimum_ring_size.value == 2048
    assert hash_keys(alice, call("carts.lb.internal", **{"x-user": "alice"})) == ["header:alice"]
    # Istio: retry.ConvertPolicy(policy, hashPolicy=true) drops previous_hosts, so a retry
    # goes back to the host the hash picked.
    assert retry_host_predicates(alice) == []


def test_subset_cookie_hash_and_its_attributes() -> None:
    sim = simulation("dr-load-balancer")
    request = call("carts.lb.internal", **{"x-beta": "1", "cookie": "session=s-42; other=1"})
    result = sim.run(request)
    assert result.cluster == "outbound|80|v2|carts.lb.internal"
    assert hash_keys(result, request) == ["cookie:s-42"]
    cookie = result.route_proto.route.hash_policy[0].cookie
    assert (cookie.ttl.seconds, cookie.path) == (3600, "/")
    assert [(a.name, a.value) for a in cookie.attributes] == [("SameSite", "Strict")]


def test_weighted_destinations_carry_each_destinations_hash() -> None:
    # Istio: processWeightedDestination appends every destination's hash policy; retries
    # keep previous_hosts (consistentHash only counts for a single destination).
    sim = simulation("dr-load-balancer")
    request = call("carts.lb.internal", "/split", **{"x-user": "bob"})
    result = sim.run(request)
    assert dict(result.weighted_clusters) == {
        "outbound|80|v1|carts.lb.internal": 50,
        "outbound|80|v2|carts.lb.internal": 50,
    }
    assert hash_keys(result, request) == ["header:bob"]  # no session cookie yet
    assert retry_host_predicates(result) == [PREVIOUS_HOSTS]


def test_explicit_retry_ignore_previous_hosts_wins() -> None:
    sim = simulation("dr-load-balancer")
    result = sim.run(call("carts.lb.internal", "/retry"))
    assert retry_host_predicates(result) == [PREVIOUS_HOSTS]
    assert result.route_proto.route.retry_policy.num_retries.value == 3


def test_port_level_query_parameter_hash_for_a_destination_port() -> None:
    # Istio: HashForHTTPDestination uses the port-level consistentHash of the destination's
    # port; that port's cluster has no ring/maglev algorithm, so ring hash with 1024.
    sim = simulation("dr-load-balancer")
    request = call("sessions.lb.internal", "/cart?user=carol&x=1")
    result = sim.run(request)
    assert result.cluster == "outbound|8080||sessions.lb.internal"
    assert hash_keys(result, request) == ["query_parameter:carol"]
    cluster = sim.clusters[result.cluster]
    assert cluster.lb_policy == cluster_pb2.Cluster.RING_HASH
    assert cluster.ring_hash_lb_config.minimum_ring_size.value == 1024
    maglev = sim.clusters["outbound|80||sessions.lb.internal"]
    assert maglev.maglev_lb_config.table_size.value == 65537


def test_service_without_virtual_service_gets_the_hash_on_its_default_route() -> None:
    # Istio: buildSidecarVirtualHostForService adds the hash; its retry policy is the plain
    # default (BuildDefaultHTTPOutboundRoute), previous_hosts included.
    sim = simulation("dr-load-balancer")
    request = call("legacy.lb.internal", **{"x-legacy": "k"})
    result = sim.run(request)
    assert (result.route, result.cluster) == ("default", "outbound|80||legacy.lb.internal")
    assert hash_keys(result, request) == ["header:k"]
    assert retry_host_predicates(result) == [PREVIOUS_HOSTS]
    assert sim.clusters[result.cluster].ring_hash_lb_config.minimum_ring_size.value == 4096


def test_services_without_hashing_get_no_hash_policy() -> None:
    sim = simulation("dr-load-balancer")
    for host in ("rr.lb.internal", "random.lb.internal", "direct.lb.internal"):
        result = sim.run(call(host, **{"x-user": "alice"}))
        assert list(result.route_proto.route.hash_policy) == [], host


# ---- connection pool, outlier detection --------------------------------------------------


def thresholds(cluster: Any) -> dict[str, Any]:
    return MessageToDict(cluster.circuit_breakers.thresholds[0])


def test_connection_pool_limits_become_circuit_breakers() -> None:
    sim = simulation("dr-connection-pool")
    result = sim.run(call("limits.pool.internal"))
    cluster = sim.clusters[result.cluster]
    assert thresholds(cluster) == {
        "maxConnections": 100,
        "maxPendingRequests": 10,
        "maxRequests": 1000,
        "maxRetries": 3,
        "retryBudget": {"budgetPercent": {"value": 25.0}, "minRetryConcurrency": 5},
        "trackRemaining": True,
    }
    assert cluster.connect_timeout.ToMilliseconds() == 250
    keepalive = cluster.upstream_connection_options.tcp_keepalive
    # The rule's time, the mesh's interval and probes.
    assert (keepalive.keepalive_time.value, keepalive.keepalive_interval.value) == (7200, 60)
    assert keepalive.keepalive_probes.value == 5


def test_outlier_detection_and_panic_threshold() -> None:
    sim = simulation("dr-connection-pool")
    cluster = sim.clusters["outbound|80||limits.pool.internal"]
    outlier = MessageToDict(cluster.outlier_detection)
    assert outlier["consecutive5xx"] == 5 and outlier["enforcingConsecutive5xx"] == 100
    assert outlier["consecutiveGatewayFailure"] == 3
    assert outlier["enforcingSuccessRate"] == 0
    assert outlier["consecutiveLocalOriginFailure"] == 2
    assert cluster.common_lb_config.healthy_panic_threshold.value == 25


def test_port_level_settings_replace_and_do_not_inherit() -> None:
    # Istio: GetPortLevelTrafficPolicy — a port-level entry replaces the four policies; what
    # it leaves out falls back to defaults (here the mesh defaultTrafficPolicy for none, since
    # the entry sets both connectionPool and outlierDetection), and the retryBudget is gone.
    sim = simulation("dr-connection-pool")
    cluster = sim.clusters["outbound|9000||limits.pool.internal"]
    assert thresholds(cluster)["maxConnections"] == 1
    assert "retryBudget" not in thresholds(cluster)
    assert cluster.outlier_detection.consecutive_gateway_failure.value == 0
    assert not cluster.outlier_detection.HasField("consecutive_5xx")
    assert cluster.connect_timeout.seconds == 10  # the mesh's, not the rule's 250ms


def test_mesh_default_traffic_policy_fills_unset_blocks() -> None:
    sim = simulation("dr-connection-pool")
    plain = sim.clusters["outbound|80||plain.pool.internal"]  # no DestinationRule
    assert thresholds(plain)["maxConnections"] == 500
    assert plain.outlier_detection.consecutive_5xx.value == 10
    # Istio: buildDefaultPassthroughCluster caps ALLOW_ANY egress with the mesh pool too (no
    # outlier detection: nothing to eject on an original-destination catch-all).
    passthrough = sim.clusters["PassthroughCluster"]
    assert thresholds(passthrough)["maxConnections"] == 500
    assert passthrough.upstream_connection_options.tcp_keepalive.keepalive_time.value == 600
    assert not passthrough.HasField("outlier_detection")


def protocol_options(cluster: Any) -> dict[str, Any]:
    key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    if key not in cluster.typed_extension_protocol_options:
        return {}
    out = MessageToDict(cluster.typed_extension_protocol_options[key])
    out.pop("@type")
    return out


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # mesh h2UpgradePolicy UPGRADE: HTTP ports go h2 ...
        ("outbound|80||plain.pool.internal", {"explicitHttpConfig": {"http2ProtocolOptions": {}}}),
        # ... unless the rule says DO_NOT_UPGRADE (and its HTTP settings apply) ...
        (
            "outbound|80||limits.pool.internal",
            {
                "idleTimeout": "30s",
                "maxConnectionDuration": "3600s",
                "maxRequestsPerConnection": 5,
            },
        ),
        # ... or the client's protocol is kept; TCP ports are never upgraded.
        (
            "outbound|80||client.pool.internal",
            {
                "useDownstreamProtocolConfig": {
                    "http2ProtocolOptions": {},
                    "httpProtocolOptions": {},
                }
            },
        ),
        ("outbound|9000||limits.pool.internal", {"idleTimeout": "0s"}),
    ],
)
def test_upstream_protocol_choices(name: str, expected: dict[str, Any]) -> None:
    options = protocol_options(simulation("dr-connection-pool").clusters[name])
    common = options.pop("commonHttpProtocolOptions", {})
    if "useDownstreamProtocolConfig" in expected or "explicitHttpConfig" in expected:
        assert options == expected
    else:
        assert common == expected
        assert options["explicitHttpConfig"] == {"httpProtocolOptions": {}}


def test_http2_settings_need_an_http2_cluster() -> None:
    options = protocol_options(
        simulation("dr-connection-pool").clusters["outbound|7070||grpc.pool.internal"]
    )
    h2 = options["explicitHttpConfig"]["http2ProtocolOptions"]
    assert h2 == {
        "maxConcurrentStreams": 64,
        "connectionKeepalive": {"interval": "30s", "timeout": "5s"},
    }


def test_proxy_protocol_wraps_the_plaintext_socket() -> None:
    cluster = simulation("dr-connection-pool").clusters["outbound|80||client.pool.internal"]
    socket = MessageToDict(cluster.transport_socket)
    assert socket["name"] == "envoy.transport_sockets.upstream_proxy_protocol"
    assert socket["typedConfig"]["config"] == {"version": "V2"}
    assert socket["typedConfig"]["transportSocket"]["name"] == "envoy.transport_sockets.raw_buffer"
