"""The Kubernetes registry end to end: Services, EndpointSlices and Pods created through a
(fake) API server become clusters and endpoints of a real Envoy, through a real istiod
(`--kubeconfig`, the real `kubernetes` client).

One istiod and one fake API server serve the module; each test has its own namespace, so
tests stay independent. Each backend is its own 127.0.x.y, described by a Pod (labels,
readiness) and an endpoint of its Service's EndpointSlice, as the EndpointSlice controller
would write it. Push types are checked with istiod's `pilot_xds_pushes{type}` counters. A
proxy is its pod: the pod's labels (not node metadata) select its Sidecar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from istioctl.cmd_apply import istiod_config_dir
from pkg.kube.client import KubeClient
from tests.helpers.kube import workloads as k
from tests.helpers.kube.fake_apiserver import FakeApiServer
from tests.helpers.metrics import Scrape

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import SERVICE_PORT, sidecar_options, wait_for_backend
from .net import allocate_ip, split_host_port, wait_until
from .traffic import count_backends, request

NET = ("networking.istio.io", "v1")
PLURALS = {"DestinationRule": "destinationrules", "VirtualService": "virtualservices",
           "Sidecar": "sidecars"}  # fmt: skip


class Cluster:
    def __init__(self, api: FakeApiServer, istiod: IstiodProcess) -> None:
        self.api = api
        self.istiod = istiod
        self.kube: KubeClient = api.client()

    def istio(self, ns: str, doc: str) -> None:
        obj = yaml.safe_load(doc)
        obj["metadata"]["namespace"] = ns
        plural = PLURALS[obj["kind"]]
        self.kube.custom().create_namespaced_custom_object(*NET, ns, plural, obj)

    def pushes(self) -> dict[str, float]:
        host, port = split_host_port(self.istiod.address("http"))
        resp = request(host, port, "GET", "/metrics", timeout=5.0)
        scrape = Scrape.parse(resp.body.decode())
        return {t: scrape.value("pilot_xds_pushes", type=t) for t in ("cds", "eds", "lds", "rds")}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp: Path = tmp_path_factory.mktemp("kube-registry")
    with FakeApiServer() as api:
        kubeconfig = api.write_kubeconfig(tmp / "kubeconfig")
        istiod = IstiodProcess(tmp / "istiod", extra_args=["--kubeconfig", str(kubeconfig)])
        istiod.start()
        c = Cluster(api, istiod)
        try:
            yield c
        finally:
            c.kube.close()
            assert istiod.stop() == 0


class App:
    """The `reviews` Service of one namespace: backends, their pods and one EndpointSlice."""

    def __init__(self, cluster: Cluster, ns: str, backends: dict[str, Backend]) -> None:
        self.cluster, self.ns, self.backends = cluster, ns, backends
        self.port = next(iter(backends.values())).port
        self.ready = dict.fromkeys(backends, True)
        core = cluster.kube.core()
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        core.create_namespaced_service(
            ns, k.service("reviews", ns, [("http", SERVICE_PORT, self.port)])
        )
        for name, b in backends.items():
            labels = {"app": "reviews", "version": name.rsplit("-", 1)[1]}
            core.create_namespaced_pod(ns, k.pod(name, ns, b.ip, labels, ports=[("http", b.port)]))
        cluster.kube.discovery().create_namespaced_endpoint_slice(
            ns, k.endpoint_slice("reviews", ns, [("http", self.port)], self._endpoints())
        )

    def _endpoints(self) -> list[dict[str, Any]]:
        return [
            k.slice_endpoint(b.ip, name, self.ns, ready=self.ready[name])
            for name, b in self.backends.items()
        ]

    def set_ready(self, name: str, ready: bool) -> None:
        """What kubelet and the EndpointSlice controller do when a readiness probe flips."""
        self.ready[name] = ready
        status = "True" if ready else "False"
        conditions = [{"type": t, "status": status} for t in ("Ready", "ContainersReady")]
        self.cluster.kube.core().patch_namespaced_pod(
            name, self.ns, {"status": {"conditions": conditions}}
        )
        self.cluster.kube.discovery().patch_namespaced_endpoint_slice(
            "reviews-abcde", self.ns, {"endpoints": self._endpoints()}
        )

    def client(self, envoy_factory: Callable[..., EnvoyProcess]) -> tuple[str, EnvoyProcess]:
        """A sidecar (NONE mode) whose outbound listener for the service binds its own IP."""
        ip = allocate_ip()
        self.cluster.istio(
            self.ns,
            f"""
            apiVersion: networking.istio.io/v1
            kind: Sidecar
            metadata: {{name: client}}
            spec:
              workloadSelector: {{labels: {{app: client}}}}
              egress:
              - port: {{number: {SERVICE_PORT}, protocol: HTTP, name: http}}
                bind: {ip}
                hosts: ["./*"]
            """,
        )
        opts = sidecar_options(
            self.cluster.istiod, "client", ip, {"app": "client"}, "sotw", self.ns
        )
        return ip, envoy_factory(options=opts)


def reach_all(ip: str, names: set[str], timeout: float = 10.0) -> None:
    """Wait until 30 requests in a row land on exactly `names` (each at least once)."""
    last: list[dict[str, int]] = [{}]

    def spread() -> bool:
        last[0] = dict(count_backends(ip, SERVICE_PORT, 30, host="reviews"))
        return set(last[0]) == names

    wait_until(spread, timeout, 0.05, f"traffic to {sorted(names)} (last: {last[0]})")


def only_eds(before: dict[str, float], after: dict[str, float]) -> None:
    assert after["eds"] > before["eds"], (before, after)
    assert {t: after[t] for t in ("cds", "lds", "rds")} == {
        t: before[t] for t in ("cds", "lds", "rds")
    }, (before, after)


def test_traffic_follows_pods_readiness_and_subsets(
    cluster: Cluster,
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
) -> None:
    first = backend_factory("reviews-v1")
    backends = {"reviews-v1": first, "reviews-v2": backend_factory("reviews-v2", port=first.port)}
    app = App(cluster, "shop", backends)
    ip, _ = app.client(envoy_factory)
    reach_all(ip, {"reviews-v1", "reviews-v2"})
    # Pods are observed state, not config: /debug/configz leaves them out (the Service stays).
    kinds = {o["kind"] for o in cluster.istiod.get_json("/debug/configz")}
    assert "Service" in kinds and "Pod" not in kinds

    # Readiness false → the endpoint leaves Envoy through an EDS-only push.
    before = cluster.pushes()
    app.set_ready("reviews-v1", False)
    wait_for_backend(ip, SERVICE_PORT, "reviews-v2", host="reviews")
    only_eds(before, cluster.pushes())
    app.set_ready("reviews-v1", True)
    reach_all(ip, {"reviews-v1", "reviews-v2"})

    # A DestinationRule subset by pod label, and a VirtualService routing to it only.
    cluster.istio(
        "shop",
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews}
        spec:
          host: reviews
          subsets:
          - {name: v1, labels: {version: v1}}
          - {name: v2, labels: {version: v2}}
        """,
    )
    cluster.istio(
        "shop",
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          http: [{route: [{destination: {host: reviews, subset: v1}}]}]
        """,
    )
    wait_for_backend(ip, SERVICE_PORT, "reviews-v1", host="reviews")

    # Relabelling a pod moves it into the subset: an EDS-only push.
    before = cluster.pushes()
    cluster.kube.core().patch_namespaced_pod(
        "reviews-v2", "shop", {"metadata": {"labels": {"version": "v1"}}}
    )
    reach_all(ip, {"reviews-v1", "reviews-v2"})
    only_eds(before, cluster.pushes())


def test_deleting_the_service_removes_its_cluster(
    cluster: Cluster,
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
) -> None:
    app = App(cluster, "gone", {"reviews-v1": backend_factory("reviews-v1")})
    ip, envoy = app.client(envoy_factory)
    wait_for_backend(ip, SERVICE_PORT, "reviews-v1", host="reviews", confirm=5)
    cluster_name = f"outbound|{SERVICE_PORT}||reviews.gone.svc.cluster.local"
    assert cluster_name in envoy.cluster_names()
    cluster.kube.core().delete_namespaced_service("reviews", "gone")
    envoy.wait_for(lambda: cluster_name not in envoy.cluster_names(), 10, "cluster removed")


def test_a_proxy_is_its_pod(
    cluster: Cluster,
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
) -> None:
    """Labels come from the proxy's pod (found by IP), not node metadata; relabelling the pod
    re-pushes the proxy: here its Sidecar (selected by the pod's label) stops applying."""
    App(cluster, "podid", {"reviews-v1": backend_factory("reviews-v1")})
    ip, bind = allocate_ip(), allocate_ip()
    pod = k.pod("client-0", "podid", ip, {"app": "client"})
    cluster.kube.core().create_namespaced_pod("podid", pod)
    cluster.istio(
        "podid",
        f"""
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {{name: client}}
        spec:
          workloadSelector: {{labels: {{app: client}}}}
          egress:
          - port: {{number: {SERVICE_PORT}, protocol: HTTP, name: http}}
            bind: {bind}
            hosts: ["./*"]
        """,
    )
    # The node metadata claims other labels: only the pod's make the Sidecar apply.
    opts = sidecar_options(cluster.istiod, "client-0", ip, {"app": "metadata"}, "sotw", "podid")
    envoy = envoy_factory(options=opts)
    wait_for_backend(bind, SERVICE_PORT, "reviews-v1", host="reviews", confirm=5)
    listener = f"{bind}_{SERVICE_PORT}"
    assert listener in envoy.listener_names()
    cluster.kube.core().patch_namespaced_pod(
        "client-0", "podid", {"metadata": {"labels": {"app": "moved"}}}
    )
    envoy.wait_for(lambda: listener not in envoy.listener_names(), 10, "the Sidecar unapplied")


def test_apply_without_a_config_dir_points_to_the_api_server(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="Kubernetes API server") as error:
        istiod_config_dir(cluster.istiod.http_url)
    assert "kubectl" in str(error.value)
