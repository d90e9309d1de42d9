"""Proxyless gRPC resources (pilot/networking/grpcgen): what a `GENERATOR: grpc` client is
sent for the names it asks for, as Istio's grpcgen answers them.

The golden case `grpc-proxyless` pins the full output; these tests pin the rules one by one.
"""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as route_pb2
from envoy.config.route.v3 import route_pb2 as route_config_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from pilot.model.proxy import parse_node
from pilot.networking.grpcgen.listeners import expand_fqdn, requested_hosts
from pilot.networking.grpcgen.routes import adapt_route
from pilot.networking.protos import to_any
from tests.helpers.xds import CLUSTER, ENDPOINT, LISTENER, ROUTE, FakeDiscovery, ProxySpec

HOST = "echo.default.svc.cluster.local"
GRPC = {"GENERATOR": "grpc"}

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  clusterIP: 10.96.0.7
  selector: {app: echo}
  ports:
  - {name: grpc, port: 7070}
  - {name: grpc-admin, port: 7071}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-v1, namespace: default}
spec:
  address: 10.1.0.1
  labels: {app: echo, version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-v2, namespace: default}
spec:
  address: 10.1.0.2
  labels: {app: echo, version: v2}
---
apiVersion: v1
kind: Service
metadata: {name: far, namespace: other}
spec:
  selector: {app: far}
  ports:
  - {name: grpc, port: 7070}
"""

DESTINATION_RULE = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    portLevelSettings:
    - port: {number: 7071}
      loadBalancer: {simple: LEAST_REQUEST}
      connectionPool:
        http: {http2MaxRequests: 7}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash:
          useSourceIp: true
          maglev: {tableSize: 65537}
"""


def client(**overrides: Any) -> ProxySpec:
    values: dict[str, Any] = {
        "ip": "10.9.0.9",
        "name": "client.default",
        "labels": {"app": "client"},
        "extra_metadata": GRPC,
    }
    values.update(overrides)
    return ProxySpec(**values)


_MESSAGES: dict[str, Any] = {
    LISTENER: listener_pb2.Listener,
    ROUTE: route_config_pb2.RouteConfiguration,
    CLUSTER: cluster_pb2.Cluster,
    ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
}


def unpack(value: Any, message: Any) -> Any:
    out = message()
    value.Unpack(out)
    return out


def generate(
    configs: str, type_url: str, names: list[str] | None, spec: ProxySpec | None = None
) -> dict[str, Any]:
    """name → decoded resource, from the generators a `spec` proxy is served by."""
    discovery = FakeDiscovery(configs)
    view = discovery.view(spec or client())
    built = discovery.generate(view, type_url, names)
    return {r.name: unpack(r.unpack(), _MESSAGES[type_url]) for r in built}


# ---- node metadata ------------------------------------------------------------------------


def test_generator_metadata_marks_a_proxyless_grpc_client() -> None:
    node_id = "sidecar~10.0.0.1~c.default~default.svc.cluster.local"
    assert parse_node(node_id, {"GENERATOR": "grpc"}).is_proxyless_grpc
    envoy = parse_node(node_id, {})
    assert not envoy.is_proxyless_grpc and envoy.generator == ""


def test_envoy_and_grpc_get_different_listeners_for_the_same_mesh() -> None:
    discovery = FakeDiscovery(SERVICES)
    envoy = discovery.resources(ProxySpec(ip="10.9.0.9", name="client.default"))
    assert not any(lst.HasField("api_listener") for lst in envoy.listeners.values())
    grpc = discovery.resources(client(listeners=(f"{HOST}:7070",)))
    assert list(grpc.listeners) == [f"{HOST}:7070"]
    assert grpc.listeners[f"{HOST}:7070"].HasField("api_listener")


# ---- LDS ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fqdn"),
    [
        ("echo", HOST),
        ("echo.default", HOST),
        ("echo.default.svc", HOST),
        ("echo.other", ""),  # another namespace: not completed (Istio's tryFindFQDN)
        (HOST, ""),
    ],
)
def test_short_names_are_completed_with_the_proxy_domain(name: str, fqdn: str) -> None:
    proxy = parse_node("sidecar~10.0.0.1~c.default~default.svc.cluster.local", GRPC)
    assert expand_fqdn(name, proxy) == fqdn


def test_requested_ports_merge_and_a_bare_name_asks_for_every_port() -> None:
    proxy = parse_node("sidecar~10.0.0.1~c.default~default.svc.cluster.local", GRPC)
    hosts = requested_hosts(["echo:7070", "echo:7071", f"{HOST}:7070"], proxy)
    assert hosts[HOST].ports == {7070, 7071}
    assert hosts[HOST].spellings == {"echo", HOST}
    assert requested_hosts(["echo:7070", "echo"], proxy)[HOST].ports is None


def test_listener_per_requested_name_with_rds_named_like_the_cluster() -> None:
    listeners = generate(SERVICES, LISTENER, ["echo:7070", "nope:1"])
    assert sorted(listeners) == ["echo:7070"]  # an unknown host gets nothing: does-not-exist
    # As Istio: the ports asked for a host apply to every spelling of it (gRPC ignores the
    # listeners it did not ask for).
    both = generate(SERVICES, LISTENER, ["echo:7070", "echo.default:7071"])
    assert sorted(both) == ["echo.default:7070", "echo.default:7071", "echo:7070", "echo:7071"]
    lst = listeners["echo:7070"]
    hcm = unpack(lst.api_listener.api_listener, hcm_pb2.HttpConnectionManager)
    assert hcm.rds.route_config_name == f"outbound|7070||{HOST}"
    assert hcm.rds.config_source.HasField("ads")
    assert [f.name for f in hcm.http_filters] == [
        "envoy.filters.http.fault",
        "envoy.filters.http.router",
    ]
    assert (lst.address.socket_address.address, lst.address.socket_address.port_value) == (
        "10.96.0.7",
        7070,
    )


def test_bare_name_gets_every_port_and_wildcard_gets_every_service() -> None:
    assert sorted(generate(SERVICES, LISTENER, ["echo"])) == ["echo:7070", "echo:7071"]
    everything = generate(SERVICES, LISTENER, None)
    assert f"{HOST}:7070" in everything and "far.other.svc.cluster.local:7070" in everything


def test_a_sidecar_scope_limits_what_a_grpc_client_can_resolve() -> None:
    sidecar = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: ["./*"]
"""
    configs = SERVICES + "---\n" + sidecar
    assert generate(configs, LISTENER, ["far.other.svc.cluster.local:7070"]) == {}
    assert list(generate(configs, LISTENER, ["echo:7070"])) == ["echo:7070"]


# ---- RDS ------------------------------------------------------------------------------------

VIRTUAL_SERVICE = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http:
  - route:
    - destination: {host: echo, subset: v1}
      weight: 75
    - destination: {host: echo, subset: v2}
      weight: 25
    timeout: 3s
    fault:
      abort:
        httpStatus: 503
        percentage: {value: 10}
"""


def test_route_configuration_holds_only_the_requested_host_with_port_domains() -> None:
    name = f"outbound|7070||{HOST}"
    routes = generate(SERVICES + "---\n" + VIRTUAL_SERVICE, ROUTE, [name])
    config = routes[name]
    (vhost,) = config.virtual_hosts  # no other service, no catch-all
    assert vhost.name == f"{HOST}:7070"
    assert vhost.domains[:4] == [HOST, f"{HOST}:7070", "echo", "echo:7070"]
    assert "10.96.0.7:7070" in vhost.domains
    (route,) = vhost.routes
    weights = {w.name: w.weight.value for w in route.route.weighted_clusters.clusters}
    assert weights == {f"outbound|7070|v1|{HOST}": 75, f"outbound|7070|v2|{HOST}": 25}
    # gRPC reads the timeout from max_stream_duration.
    assert route.route.max_stream_duration.max_stream_duration.seconds == 3
    assert not route.route.max_stream_duration.HasField("grpc_timeout_header_max")
    assert "envoy.filters.http.fault" in route.typed_per_filter_config


def test_route_for_an_unknown_host_is_empty_and_a_bad_name_is_skipped() -> None:
    name = "outbound|7070||missing.default.svc.cluster.local"
    routes = generate(SERVICES, ROUTE, [name, "7070"])
    assert list(routes) == [name]
    assert not routes[name].virtual_hosts


def test_per_route_config_of_filters_grpc_lacks_is_dropped() -> None:
    """gRPC NACKs a route configuration naming a filter it does not implement (measured:
    `typed_per_filter_config[envoy.filters.http.cors] ... unsupported filter type`)."""
    route = route_pb2.Route(match=route_pb2.RouteMatch(prefix="/"))
    route.route.weighted_clusters.clusters.add(name="a").typed_per_filter_config[
        "envoy.filters.http.cors"
    ].CopyFrom(to_any(cors_pb2.CorsPolicy()))
    route.typed_per_filter_config["envoy.filters.http.cors"].CopyFrom(to_any(cors_pb2.CorsPolicy()))
    route.typed_per_filter_config["envoy.filters.http.fault"].CopyFrom(
        to_any(fault_pb2.HTTPFault())
    )
    adapt_route(route)
    assert list(route.typed_per_filter_config) == ["envoy.filters.http.fault"]
    assert not route.route.weighted_clusters.clusters[0].typed_per_filter_config


# ---- CDS ------------------------------------------------------------------------------------


def test_only_requested_clusters_with_the_policy_grpc_implements() -> None:
    names = [
        f"outbound|7070||{HOST}",
        f"outbound|7070|v1|{HOST}",
        f"outbound|7070|v2|{HOST}",
        f"outbound|7071||{HOST}",
        "outbound|7070||missing.default.svc.cluster.local",
    ]
    clusters = generate(SERVICES + "---\n" + DESTINATION_RULE, CLUSTER, names)
    assert sorted(clusters) == sorted(names[:4])
    for name, c in clusters.items():
        assert c.type == cluster_pb2.Cluster.EDS
        assert c.eds_cluster_config.service_name == name
        assert c.eds_cluster_config.eds_config.HasField("ads")
    plain = clusters[f"outbound|7070||{HOST}"]
    assert plain.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN  # gRPC's default: left unset
    assert not plain.HasField("circuit_breakers")
    admin = clusters[f"outbound|7071||{HOST}"]  # port-level settings
    assert admin.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST
    assert admin.circuit_breakers.thresholds[0].max_requests.value == 7
    v1 = clusters[f"outbound|7070|v1|{HOST}"]
    assert v1.lb_policy == cluster_pb2.Cluster.RING_HASH
    assert v1.ring_hash_lb_config.minimum_ring_size.value == 1024
    v2 = clusters[f"outbound|7070|v2|{HOST}"]  # gRPC has no maglev: a ring hash
    assert v2.lb_policy == cluster_pb2.Cluster.RING_HASH


def test_wildcard_cds_from_a_grpc_client_gets_nothing() -> None:
    assert generate(SERVICES, CLUSTER, None) == {}


# ---- EDS ------------------------------------------------------------------------------------


def test_every_locality_group_has_a_locality_and_a_weight() -> None:
    """gRPC rejects a group without `locality` and drops one without a weight."""
    name = f"outbound|7070|v1|{HOST}"
    (cla,) = generate(SERVICES + "---\n" + DESTINATION_RULE, ENDPOINT, [name]).values()
    (group,) = cla.endpoints
    assert group.HasField("locality")
    assert group.load_balancing_weight.value == 1
    assert [e.endpoint.address.socket_address.address for e in group.lb_endpoints] == ["10.1.0.1"]
