"""Endpoints from EndpointSlices + Pods + Nodes, as Istio's EndpointBuilder makes them, from
objects shaped exactly as a real API server returns them."""

from __future__ import annotations

from typing import Any

import pytest

from pilot.model.endpoint import HealthStatus, IstioEndpoint, TlsMode
from pilot.serviceregistry.aggregate import RegistrySnapshot, build_registry
from pkg.config.model import Config, Kind
from pkg.config.schema import parse_object
from tests.helpers.kube import workloads as k

HOST = "reviews.default.svc.cluster.local"


def parse(doc: dict[str, Any]) -> Config[Any]:
    result = parse_object(doc, observed=True)
    assert result.config is not None, result.errors
    assert not result.warnings
    return result.config


def build(*docs: dict[str, Any], require_pods: bool = True, **kw: Any) -> RegistrySnapshot:
    by_kind: dict[Kind, tuple[Config[Any], ...]] = {}
    for doc in docs:
        c = parse(doc)
        by_kind[c.meta.kind] = (*by_kind.get(c.meta.kind, ()), c)
    return build_registry(by_kind, "cluster.local", "example.org", require_pods=require_pods, **kw)


def eps(snapshot: RegistrySnapshot, host: str = HOST) -> list[IstioEndpoint]:
    return sorted(snapshot.endpoints.get((host, "default"), ()), key=lambda e: e.address)


SVC = k.service("reviews", "default", [("http", 9080, 9080)])


def test_api_server_shaped_objects_parse_and_only_observed_reads_pods() -> None:
    pod = k.pod("reviews-v1-x", "default", "10.1.0.5", {"app": "reviews"}, ports=[("http", 9080)])
    for doc in (
        SVC,
        k.endpoint_slice(
            "reviews",
            "default",
            [("http", 9080)],
            [k.slice_endpoint("10.1.0.5", "reviews-v1-x", "default", zone="zone-a")],
        ),
        pod,
        k.node("node-a", "us-east1", "us-east1-b"),
    ):
        parse(doc)
    # Without `observed` (a config dir, istioctl validate) a Pod or Node is ignored, as before.
    for doc in (pod, k.node("node-a")):
        result = parse_object(doc)
        assert result.ignored and result.config is None and not result.errors
    # An unknown field of a Pod is skipped, never an error (observed state, not config).
    future = {**pod, "spec": {**pod["spec"], "someFutureField": {"x": 1}}}
    assert parse(future).spec.spec.node_name == "node-a"


def test_endpoint_takes_labels_identity_tls_mode_and_locality_from_pod_and_node() -> None:
    snapshot = build(
        SVC,
        k.endpoint_slice(
            "reviews",
            "default",
            [("http", 9080)],
            [
                k.slice_endpoint("10.1.0.5", "reviews-v1-x", "default"),
                k.slice_endpoint("10.1.0.6", "reviews-v2-y", "default", node="node-b"),
            ],
        ),
        k.pod(
            "reviews-v1-x",
            "default",
            "10.1.0.5",
            {"app": "reviews", "version": "v1", "security.istio.io/tlsMode": "istio"},
            service_account="bookinfo-reviews",
            deployment="reviews-v1",
        ),
        k.pod(
            "reviews-v2-y",
            "default",
            "10.1.0.6",
            {"app": "reviews", "version": "v2"},
            node="node-b",
        ),
        k.node("node-a", "us-east1", "us-east1-b", "rack7"),
        k.node("node-b"),
    )
    v1, v2 = eps(snapshot)
    assert v1.labels == {
        "app": "reviews",
        "version": "v1",
        "security.istio.io/tlsMode": "istio",
        "pod-template-hash": "7d4b9c8f5",
        "topology.kubernetes.io/region": "us-east1",
        "topology.kubernetes.io/zone": "us-east1-b",
        "topology.istio.io/subzone": "rack7",
        "topology.istio.io/cluster": "Kubernetes",
        "kubernetes.io/hostname": "node-a",
    }
    assert v1.service_account == "spiffe://example.org/ns/default/sa/bookinfo-reviews"
    assert v1.tls_mode is TlsMode.ISTIO
    assert v1.locality == "us-east1/us-east1-b/rack7"
    assert v1.workload_name == "reviews-v1"  # the Deployment, not the ReplicaSet
    # No tlsMode label: plaintext (a pod without a sidecar), whatever its service account.
    assert v2.tls_mode is TlsMode.DISABLED
    assert v2.service_account == "spiffe://example.org/ns/default/sa/default"
    assert v2.locality == "" and v2.labels["version"] == "v2"
    assert v2.workload_name == "reviews-v2-y"


def test_locality_of_an_endpoint_without_pod_comes_from_the_slice_node() -> None:
    # A hand-made slice (no targetRef): the pod is guessed by IP in the namespace, else the
    # endpoint keeps the locality of the slice's nodeName.
    snapshot = build(
        SVC,
        k.endpoint_slice(
            "reviews",
            "default",
            [("http", 9080)],
            [
                k.slice_endpoint("10.9.0.1", None, "default", node="node-a"),
                k.slice_endpoint("10.1.0.5", None, "default"),
            ],
        ),
        k.pod("reviews-v1-x", "default", "10.1.0.5", {"app": "reviews", "version": "v1"}),
        k.node("node-a", "eu", "eu-1"),
    )
    by_ip, bare = eps(snapshot)
    assert by_ip.labels["version"] == "v1" and by_ip.workload_name == "reviews-v1-x"
    assert bare.locality == "eu/eu-1/" and bare.labels == {} and bare.service_account == ""


@pytest.mark.parametrize(
    ("ready", "terminating", "health"),
    [
        (True, False, HealthStatus.HEALTHY),
        (False, False, HealthStatus.UNHEALTHY),
        (False, True, HealthStatus.TERMINATING),
    ],
)
def test_conditions_map_as_istio(ready: bool, terminating: bool, health: HealthStatus) -> None:
    snapshot = build(
        SVC,
        k.endpoint_slice(
            "reviews",
            "default",
            [("http", 9080)],
            [k.slice_endpoint("10.1.0.5", "p", "default", ready=ready, terminating=terminating)],
        ),
        k.pod("p", "default", "10.1.0.5", {"app": "reviews"}, ready=ready),
        send_unhealthy=True,
    )
    [ep] = eps(snapshot)
    assert ep.health is health and ep.send_unhealthy


def test_endpoint_waits_for_its_pod_in_kubernetes_mode_only() -> None:
    slice_doc = k.endpoint_slice(
        "reviews", "default", [("http", 9080)], [k.slice_endpoint("10.1.0.5", "late", "default")]
    )
    assert eps(build(SVC, slice_doc)) == []  # the pod is not known yet: left out
    pod = k.pod("late", "default", "10.1.0.5", {"app": "reviews", "version": "v3"})
    [ep] = eps(build(SVC, slice_doc, pod))
    assert ep.labels["version"] == "v3"
    # Standalone config dirs have no pods: the endpoint is kept bare, as before.
    [bare] = eps(build(SVC, slice_doc, require_pods=False))
    assert bare.labels == {} and bare.workload_name == "late"


def test_pod_workloads_index_ready_pods_by_ip_and_every_pod_by_name() -> None:
    snapshot = build(
        k.pod("a", "default", "10.1.0.5", {"app": "a"}, service_account="sa-a"),
        k.pod("b", "default", "10.1.0.6", {"app": "b"}, ready=False),
    )
    by_ip, by_name = snapshot.pods.workloads()
    assert set(by_ip) == {("default", "10.1.0.5")}
    assert by_ip[("default", "10.1.0.5")].service_account == "sa-a"
    assert by_ip[("default", "10.1.0.5")].kind == "Pod"
    assert set(by_name) == {("default", "a"), ("default", "b")}


def test_a_terminal_or_deleting_pod_is_not_indexed_by_ip() -> None:
    done = k.pod("done", "default", "10.1.0.7", {"app": "x"})
    done["status"]["phase"] = "Succeeded"
    going = k.pod("going", "default", "10.1.0.8", {"app": "x"})
    going["metadata"]["deletionTimestamp"] = "2026-11-22T09:05:00Z"
    going["metadata"]["deletionGracePeriodSeconds"] = 30
    snapshot = build(done, going)
    assert snapshot.pods.by_ip == {}
    assert parse(going).meta.deletion_timestamp > 0
