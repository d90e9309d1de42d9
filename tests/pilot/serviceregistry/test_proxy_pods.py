"""A connecting proxy is its pod: found by IP among the ready pods of its namespace, else by
the node id's NAME.NS; its labels and service account come from the pod, and a change of
that pod concerns that proxy only."""

from __future__ import annotations

from typing import Any

from pilot.model.proxy import parse_node
from pilot.model.proxy_view import ProxyView, proxy_view
from pilot.model.push_context import PushContext, PushInputs
from pilot.model.push_request import PushRequest, TriggerReason
from pilot.serviceregistry.aggregate import build_registry
from pilot.xds.proxy_dependencies import proxy_needs_push
from pkg.config.model import Config, ConfigKey, Kind
from pkg.config.schema import parse_object
from tests.helpers.kube import workloads as k

NS = "default"


def view(node_name: str, ip: str, *pods: dict[str, Any]) -> ProxyView:
    by_kind: dict[Kind, tuple[Config[Any], ...]] = {}
    for doc in (*pods, k.node("node-a", "r1", "z1")):
        config = parse_object(doc, observed=True).config
        assert config is not None
        by_kind[config.meta.kind] = (*by_kind.get(config.meta.kind, ()), config)
    snapshot = build_registry(by_kind, "cluster.local", "cluster.local", require_pods=True)
    by_ip, by_name = snapshot.pods.workloads()
    push = PushContext.build(PushInputs(pods_by_ip=by_ip, pods_by_name=by_name))
    metadata = {"LABELS": {"app": "from-metadata"}, "SERVICE_ACCOUNT": "claimed"}
    proxy = parse_node(f"sidecar~{ip}~{node_name}.{NS}~{NS}.svc.cluster.local", metadata)
    return proxy_view(proxy, push)


PRODUCTPAGE = k.pod(
    "productpage-v1-abc",
    NS,
    "10.1.0.7",
    {"app": "productpage", "version": "v1"},
    service_account="bookinfo-productpage",
)


def test_proxy_found_by_ip_takes_labels_and_service_account_from_its_pod() -> None:
    v = view("whatever", "10.1.0.7", PRODUCTPAGE)
    assert v.workload is not None and v.workload.name == "productpage-v1-abc"
    assert v.labels["app"] == "productpage" and v.labels["version"] == "v1"
    assert v.labels["topology.kubernetes.io/zone"] == "z1"
    assert v.service_account == "bookinfo-productpage"


def test_proxy_found_by_node_id_name_when_its_ip_is_not_indexed() -> None:
    # Not ready yet (not in the IP index), or an IP the node id does not carry.
    not_ready = k.pod("productpage-v1-abc", NS, "10.1.0.7", {"app": "productpage"}, ready=False)
    v = view("productpage-v1-abc", "10.9.9.9", not_ready)
    assert v.workload is not None and v.labels["app"] == "productpage"
    # Another namespace's pod of that name is not it; no pod: node metadata labels.
    assert view("productpage-v1-abc", "10.9.9.9").labels == {"app": "from-metadata"}


def test_a_pod_change_concerns_only_the_proxy_it_is() -> None:
    request = PushRequest.of([ConfigKey(Kind.POD, "productpage-v1-abc", NS)], TriggerReason.PROXY)
    assert proxy_needs_push(view("productpage-v1-abc", "10.1.0.7", PRODUCTPAGE), request)
    assert proxy_needs_push(view("other-name", "10.1.0.7", PRODUCTPAGE), request)  # by IP
    assert not proxy_needs_push(view("reviews-v1-x", "10.1.0.8", PRODUCTPAGE), request)
