"""The Kubernetes registry through the real client and the fake API server: Services,
EndpointSlices, Pods and Nodes created and changed through the API become endpoints, and each
change is pushed the way Istio pushes it (EDS-only, per-proxy, full, or not at all)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pilot.bootstrap.environment import Environment
from pilot.config.kube import KubeConfigSource
from pilot.config.store import ConfigStore
from pilot.model.endpoint import IstioEndpoint
from pilot.model.proxy import Proxy, parse_node
from pilot.model.push_request import PushRequest, TriggerReason
from pkg.config.mesh import MeshConfig
from pkg.config.model import ConfigKey, Kind
from pkg.kube.client import KubeClient
from tests.helpers.aio import eventually
from tests.helpers.kube import workloads as k
from tests.helpers.kube.conftest import fake_apiserver, kube  # noqa: F401

NS = "default"
HOST = f"reviews.{NS}.svc.cluster.local"
ENDPOINTS = ConfigKey(Kind.ENDPOINTS, HOST, NS)


@dataclass
class Registry:
    kube: KubeClient
    store: ConfigStore
    env: Environment
    pushes: list[PushRequest]
    proxies: list[Proxy] = field(default_factory=list)

    def endpoints(self) -> list[IstioEndpoint]:
        return sorted(self.env.endpoint_index().get(HOST, NS), key=lambda e: e.address)

    async def seen(self, kind: Kind, name: str, rv: str, ns: str = NS) -> None:
        """Wait until the store holds version `rv` of the object (its push is then decided)."""

        def there() -> bool:
            config = self.store.get(ConfigKey(kind, name, ns))
            return config is not None and config.meta.resource_version == rv

        await eventually(there, timeout=5, message=f"{kind}/{name} at {rv}")

    async def gone(self, kind: Kind, name: str, ns: str = NS) -> None:
        key = ConfigKey(kind, name, ns)
        await eventually(lambda: self.store.get(key) is None, timeout=5, message=f"{key} gone")


def rv(obj: Any) -> str:
    return str(obj.metadata.resource_version)


@pytest.fixture
async def reg(kube: KubeClient) -> AsyncIterator[Registry]:  # noqa: F811
    core, disc = kube.core(), kube.discovery()
    core.create_node(k.node("node-a", "us-east1", "us-east1-b"))
    core.create_namespaced_service(NS, k.service("reviews", NS, [("http", 9080, 9080)]))
    core.create_namespaced_pod(NS, k.pod("r1", NS, "10.1.0.1", {"app": "reviews", "v": "1"}))
    disc.create_namespaced_endpoint_slice(
        NS,
        k.endpoint_slice("reviews", NS, [("http", 9080)], [k.slice_endpoint("10.1.0.1", "r1", NS)]),
    )
    store = ConfigStore()
    env = Environment(store, MeshConfig(), "cluster.local", require_pods=True)
    pushes: list[PushRequest] = []
    registry = Registry(kube, store, env, pushes)
    env.connected_proxies = lambda: registry.proxies
    source = KubeConfigSource(kube, store)
    source.start()
    try:
        await eventually(source.synced.is_set, timeout=10, message="synced")
        env.set_push_handler(pushes.append)
        assert [e.address for e in registry.endpoints()] == ["10.1.0.1"]
        yield registry
    finally:
        await source.stop()


def only_eds(pushes: list[PushRequest]) -> None:
    assert len(pushes) == 1, pushes
    assert pushes[0].endpoints_only
    assert pushes[0].configs_updated == {ENDPOINTS}
    assert dict(pushes[0].reasons) == {TriggerReason.ENDPOINT: 1}


async def test_pod_label_change_is_an_eds_only_push(reg: Registry) -> None:
    pod = reg.kube.core().patch_namespaced_pod("r1", NS, {"metadata": {"labels": {"v": "2"}}})
    await reg.seen(Kind.POD, "r1", rv(pod))
    only_eds(reg.pushes)
    [ep] = reg.endpoints()
    assert ep.labels["v"] == "2" and ep.locality == "us-east1/us-east1-b/"


async def test_readiness_flip_is_an_eds_only_push(reg: Registry) -> None:
    body = {"endpoints": [k.slice_endpoint("10.1.0.1", "r1", NS, ready=False)]}
    sl = reg.kube.discovery().patch_namespaced_endpoint_slice("reviews-abcde", NS, body)
    await reg.seen(Kind.ENDPOINT_SLICE, "reviews-abcde", rv(sl))
    only_eds(reg.pushes)
    assert [e.health.value for e in reg.endpoints()] == ["UNHEALTHY"]


async def test_new_endpoint_waits_for_its_pod_then_is_an_eds_push(reg: Registry) -> None:
    body = {
        "endpoints": [
            k.slice_endpoint("10.1.0.1", "r1", NS),
            k.slice_endpoint("10.1.0.2", "r2", NS),
        ]
    }
    sl = reg.kube.discovery().patch_namespaced_endpoint_slice("reviews-abcde", NS, body)
    await reg.seen(Kind.ENDPOINT_SLICE, "reviews-abcde", rv(sl))
    assert reg.pushes == []  # its pod is not known: nothing to send yet
    pod = reg.kube.core().create_namespaced_pod(
        NS, k.pod("r2", NS, "10.1.0.2", {"app": "reviews", "v": "2"})
    )
    await reg.seen(Kind.POD, "r2", rv(pod))
    only_eds(reg.pushes)
    assert [(e.address, e.labels["v"]) for e in reg.endpoints()] == [
        ("10.1.0.1", "1"),
        ("10.1.0.2", "2"),
    ]


async def test_node_label_change_is_an_eds_only_push(reg: Registry) -> None:
    node = reg.kube.core().patch_node(
        "node-a", {"metadata": {"labels": {"topology.kubernetes.io/zone": "us-east1-c"}}}
    )
    await reg.seen(Kind.NODE, "node-a", rv(node), ns="")
    only_eds(reg.pushes)
    assert reg.endpoints()[0].locality == "us-east1/us-east1-c/"


async def test_pod_of_no_service_pushes_only_its_own_proxy(reg: Registry) -> None:
    core = reg.kube.core()
    pod = core.create_namespaced_pod(NS, k.pod("client", NS, "10.1.0.9", {"app": "client"}))
    await reg.seen(Kind.POD, "client", rv(pod))
    pod = core.patch_namespaced_pod("client", NS, {"metadata": {"labels": {"v": "2"}}})
    await reg.seen(Kind.POD, "client", rv(pod))
    assert reg.pushes == []  # no endpoint, no connected proxy: no push at all

    reg.proxies.append(parse_node(f"sidecar~10.1.0.9~client.{NS}~{NS}.svc.cluster.local", {}))
    pod = core.patch_namespaced_pod("client", NS, {"metadata": {"labels": {"v": "3"}}})
    await reg.seen(Kind.POD, "client", rv(pod))
    assert len(reg.pushes) == 1
    assert reg.pushes[0].configs_updated == {ConfigKey(Kind.POD, "client", NS)}
    assert dict(reg.pushes[0].reasons) == {TriggerReason.PROXY: 1}
    # A status change that is not an identity change (e.g. a container restart count).
    pod = core.patch_namespaced_pod("client", NS, {"status": {"startTime": "2026-11-22T10:00:00Z"}})
    await reg.seen(Kind.POD, "client", rv(pod))
    assert len(reg.pushes) == 1
    # Deleted: the proxy at its (former) IP is pushed, whatever the proxy calls itself.
    reg.proxies[:] = [parse_node(f"sidecar~10.1.0.9~other.{NS}~{NS}.svc.cluster.local", {})]
    core.delete_namespaced_pod("client", NS)
    await reg.gone(Kind.POD, "client")
    assert len(reg.pushes) == 2
    assert reg.pushes[1].configs_updated == {ConfigKey(Kind.POD, "client", NS)}


async def test_service_change_is_full_and_delete_removes_it(reg: Registry) -> None:
    svc = reg.kube.core().patch_namespaced_service(
        "reviews", NS, {"spec": {"ports": [{"name": "http", "port": 9081, "targetPort": 9080}]}}
    )
    await reg.seen(Kind.SERVICE, "reviews", rv(svc))
    assert len(reg.pushes) == 1 and not reg.pushes[0].endpoints_only
    assert ConfigKey(Kind.SERVICE, "reviews", NS) in reg.pushes[0].configs_updated
    reg.kube.core().delete_namespaced_service("reviews", NS)
    await reg.gone(Kind.SERVICE, "reviews")
    assert all(s.hostname != HOST for s in reg.env.registry.services)
    assert reg.endpoints() == []


async def test_a_list_is_one_store_change(kube: KubeClient) -> None:  # noqa: F811
    """Thousands of pods listed at start (or relisted after 410 Gone) rebuild the registry
    once, not once per pod: the source hands the store each list as one change."""
    for i in range(20):
        kube.core().create_namespaced_pod(NS, k.pod(f"p{i}", NS, f"10.2.0.{i + 1}", {"app": "x"}))
    store = ConfigStore()
    pod_batches: list[int] = []
    store.add_handler(
        lambda events: pod_batches.append(sum(e.key.kind is Kind.POD for e in events))
    )
    source = KubeConfigSource(kube, store)
    source.start()
    try:
        await eventually(source.synced.is_set, timeout=10, message="synced")
    finally:
        await source.stop()
    assert [n for n in pod_batches if n] == [20]
