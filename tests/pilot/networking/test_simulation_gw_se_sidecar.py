"""Sidecar scoping and outboundTrafficPolicy, by simulated calls and by the size of what a
proxy receives.

Cases: testdata/sidecar-egress-scope.yaml (egress hosts, a Sidecar's own REGISTRY_ONLY),
sidecar-outbound-policy.yaml (mesh-wide REGISTRY_ONLY, a Sidecar's ALLOW_ANY override),
sidecar-capture-modes.yaml (captured and uncaptured ingress and egress listeners).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.simulate import Call, CallMode, Error, Protocol, Simulation, simulate_case
from tests.helpers.xds import CLUSTER, ENDPOINT, LISTENER, ROUTE, FakeDiscovery, ProxySpec

TESTDATA = Path(__file__).resolve().parent / "testdata"
REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"


def simulation(case: str, proxy: ProxySpec | None = None, **overrides: Any) -> Simulation:
    return simulate_case(TESTDATA / f"{case}.yaml", proxy, **overrides)


# ---- egress hosts ---------------------------------------------------------------------------


def test_scope_keeps_only_imported_services() -> None:
    clusters = set(simulation("sidecar-egress-scope").clusters)
    outbound = {c for c in clusters if c.startswith("outbound|")}
    assert outbound == {
        "outbound|15010||istiod.istio-system.svc.cluster.local",
        "outbound|443||istiod.istio-system.svc.cluster.local",
        "outbound|3306||mysql.db.svc.cluster.local",
        "outbound|8080||checkout.default.svc.cluster.local",
        "outbound|8080||payments.team-a.svc.cluster.local",  # a VirtualService destination
        "outbound|9080||details.default.svc.cluster.local",
        "outbound|9080||productpage.default.svc.cluster.local",
        "outbound|9080||ratings.default.svc.cluster.local",
        "outbound|9080||reviews.default.svc.cluster.local",
    }


def test_imported_service_is_reachable() -> None:
    sim = simulation("sidecar-egress-scope")
    result = sim.run(Call(address="10.96.0.30", port=9080, host="reviews"))
    assert (result.error, result.cluster) == (None, REVIEWS)
    checkout = sim.run(Call(address="10.96.0.50", port=8080, host="checkout"))
    assert checkout.cluster == "outbound|8080||payments.team-a.svc.cluster.local"
    db = sim.run(Call(address="10.96.3.6", port=3306, protocol=Protocol.TCP))
    assert db.cluster == "outbound|3306||mysql.db.svc.cluster.local"


@pytest.mark.parametrize(
    "call",
    [
        Call(address="10.96.21.1", port=9200, host="search.team-b"),  # out of scope
        Call(address="10.96.3.7", port=6379, protocol=Protocol.TCP),  # db/redis: not imported
        Call(address="203.0.113.9", port=443, protocol=Protocol.TCP),  # outside the mesh
    ],
)
def test_out_of_scope_destinations_are_blackholed(call: Call) -> None:
    # The Sidecar's own outboundTrafficPolicy REGISTRY_ONLY: virtualOutbound's catch-all.
    result = simulation("sidecar-egress-scope").run(call)
    assert (result.listener, result.cluster) == ("virtualOutbound", "BlackHoleCluster")


def test_unknown_host_on_an_http_port_gets_502() -> None:
    result = simulation("sidecar-egress-scope").run(
        Call(address="10.96.0.30", port=9080, host="search.team-b.svc.cluster.local")
    )
    assert (result.virtual_host, result.direct_response) == ("block_all", 502)


# ---- the config size drop --------------------------------------------------------------------

NAMESPACES = 6
SERVICES_PER_NAMESPACE = 10


def _mesh_yaml(with_sidecar: bool) -> str:
    docs = []
    for n in range(NAMESPACES):
        for s in range(SERVICES_PER_NAMESPACE):
            docs.append(
                f"""apiVersion: v1
kind: Service
metadata: {{name: svc-{s}, namespace: ns-{n}}}
spec:
  clusterIP: 10.100.{n}.{s + 1}
  selector: {{app: svc-{s}}}
  ports:
  - {{name: http, port: 8080}}
  - {{name: grpc-api, port: 9090}}
  - {{name: tcp-db, port: 5432}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: svc-{s}-1, namespace: ns-{n}}}
spec:
  address: 10.200.{n}.{s + 1}
  labels: {{app: svc-{s}}}
"""
            )
    if with_sidecar:
        docs.append(
            """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns-0}
spec:
  egress:
  - hosts: ["./*"]
"""
        )
    return "---\n".join(docs)


def _sizes(with_sidecar: bool) -> dict[str, int]:
    discovery = FakeDiscovery(_mesh_yaml(with_sidecar))
    spec = ProxySpec(ip="10.200.0.1", name="svc-0-1.ns-0", labels={"app": "svc-0"})
    resources = discovery.resources(spec)
    return {
        kind: sum(len(r.any_bytes) for r in resources.built[type_url])
        for kind, type_url in (("cds", CLUSTER), ("eds", ENDPOINT), ("lds", LISTENER))
    } | {"rds": sum(len(r.any_bytes) for r in resources.built[ROUTE])}


def test_sidecar_scope_shrinks_every_type() -> None:
    # 60 services in 6 namespaces; the Sidecar imports its own namespace's 10 (./*).
    full = _sizes(with_sidecar=False)
    scoped = _sizes(with_sidecar=True)
    for kind in ("cds", "eds", "lds", "rds"):
        assert scoped[kind] < full[kind], (kind, scoped, full)
    # Each service has an HTTP, a gRPC and a TCP port: clusters, endpoints, routes and the
    # per-VIP TCP listeners scale with the services (10 of 60 is about a sixth; listeners keep
    # virtualInbound/virtualOutbound and the shared HTTP ones).
    for kind, factor in (("cds", 4), ("eds", 4), ("lds", 2), ("rds", 4)):
        assert scoped[kind] * factor < full[kind], (kind, scoped, full)
    assert sum(scoped.values()) * 4 < sum(full.values()), (scoped, full)


# ---- outboundTrafficPolicy ---------------------------------------------------------------------

LEGACY = ProxySpec(ip="10.10.0.77", name="legacy-6d5f-x.default", labels={"app": "legacy"})


@pytest.mark.parametrize(
    ("proxy", "cluster", "vhost", "status"),
    [
        (None, "BlackHoleCluster", "block_all", 502),  # mesh-wide REGISTRY_ONLY
        (LEGACY, "PassthroughCluster", "allow_any", 0),  # the Sidecar's ALLOW_ANY
    ],
)
def test_outbound_traffic_policy(
    proxy: ProxySpec | None, cluster: str, vhost: str, status: int
) -> None:
    sim = simulation("sidecar-outbound-policy", proxy)
    unknown_ip = sim.run(Call(address="203.0.113.9", port=443, protocol=Protocol.TCP))
    assert (unknown_ip.listener, unknown_ip.cluster) == ("virtualOutbound", cluster)
    # An unknown destination on a port a TCP service listens on (its VIP listener's fallback).
    sibling = sim.run(Call(address="10.96.3.99", port=3306, protocol=Protocol.TCP))
    assert sibling.cluster == cluster
    unknown_host = sim.run(Call(address="10.96.0.30", port=9080, host="httpbin.org"))
    assert (unknown_host.virtual_host, unknown_host.direct_response) == (vhost, status)
    if status == 0:
        assert unknown_host.cluster == "PassthroughCluster"
    known = sim.run(Call(address="10.96.0.30", port=9080, host="reviews"))
    assert known.cluster == REVIEWS


# ---- captured and uncaptured listeners ---------------------------------------------------------


def test_captured_ingress_hands_to_default_endpoint() -> None:
    result = simulation("sidecar-capture-modes").run(
        Call(address="10.20.0.7", port=9080, host="frontend", mode=CallMode.INBOUND)
    )
    assert (result.listener, result.cluster, result.endpoints) == (
        "virtualInbound",
        "inbound|9080||",
        ("127.0.0.1:8080",),
    )


def test_uncaptured_ingress_binds_its_own_listener() -> None:
    result = simulation("sidecar-capture-modes").run(
        Call(address="10.20.0.7", port=9443, protocol=Protocol.TCP, mode=CallMode.DIRECT)
    )
    # defaultEndpoint 0.0.0.0:8443 means the workload's own IP.
    assert (result.listener, result.cluster, result.endpoints) == (
        "10.20.0.7_9443",
        "inbound|9443||",
        ("10.20.0.7:8443",),
    )


def test_uncaptured_egress_binds_localhost() -> None:
    sim = simulation("sidecar-capture-modes")
    result = sim.run(Call(address="127.0.0.1", port=9080, host="reviews", mode=CallMode.DIRECT))
    assert (result.listener, result.cluster) == ("127.0.0.1_9080", REVIEWS)
    # Only reviews is imported on that listener: ratings falls to the catch-all (ALLOW_ANY).
    other = sim.run(Call(address="127.0.0.1", port=9080, host="ratings", mode=CallMode.DIRECT))
    assert other.virtual_host == "allow_any"
    # It binds a socket of its own, and redirected traffic to reviews' VIP does not reach it.
    listener = sim.listeners["127.0.0.1_9080"]
    assert not listener.HasField("bind_to_port") or listener.bind_to_port.value
    captured = sim.run(Call(address="10.96.0.30", port=9080, host="reviews"))
    assert captured.listener == "virtualOutbound"


def test_captured_egress_listener_on_the_vip() -> None:
    result = simulation("sidecar-capture-modes").run(
        Call(address="10.96.3.6", port=3306, protocol=Protocol.TCP)
    )
    assert (result.listener, result.cluster) == (
        "10.96.3.6_3306",
        "outbound|3306||mysql.db.svc.cluster.local",
    )
    assert result.error is None


def test_no_listener_for_unbound_direct_calls() -> None:
    result = simulation("sidecar-capture-modes").run(
        Call(address="10.96.3.6", port=3306, protocol=Protocol.TCP, mode=CallMode.DIRECT)
    )
    assert result.error is Error.NO_LISTENER
