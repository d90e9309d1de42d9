"""Kubernetes mode: istiod (`--kubeconfig`) takes its Istio config from an API server.

A real istiod watches a fake API server (real `kubernetes` client on istiod's side). Until the
initial lists are in, istiod is not ready: /ready answers 503 and ADS streams are refused with
UNAVAILABLE. Then objects created through the API reach a real Envoy, and a change made
through the API changes where its traffic goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from pkg.kube.client import KubeClient
from tests.helpers.kube.fake_apiserver import FakeApiServer

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import SERVICE_PORT, Bookinfo, sidecar_options, wait_for_backend
from .net import allocate_ip, wait_until

ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
NOT_READY = "server is not ready to serve discovery information"


class UnsyncedIstiod(IstiodProcess):
    """Started once it listens (not once ready): the test watches it become ready."""

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_until(
            lambda: not self.running or all(n in self.addresses for n in self.required),
            timeout,
            0.05,
            "istiod listening",
        )
        if not self.running:
            raise self.error(f"istiod exited with {self.returncode} during start")


def ads_refusal(istiod: IstiodProcess) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(istiod.grpc_addr) as channel:
        call = channel.stream_stream(ADS)(iter([b""]), timeout=5)
        try:
            next(iter(call))
        except grpc.RpcError as e:
            return e.code(), str(e.details())
    raise AssertionError("the ADS stream was served")


def create(kube: KubeClient, doc: str) -> dict[str, Any]:
    obj = yaml.safe_load(doc)
    group, version = obj["apiVersion"].split("/")
    plural = {"ServiceEntry": "serviceentries", "DestinationRule": "destinationrules"}.get(
        obj["kind"], obj["kind"].lower() + "s"
    )
    ns = obj["metadata"]["namespace"]
    result: dict[str, Any] = kube.custom().create_namespaced_custom_object(
        group, version, ns, plural, obj
    )
    return result


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    # Serving (istiod needs istio-ca-secret before it listens, as Istio's istiod does), but
    # its lists of VirtualServices wait until the test releases them: istiod stays unsynced.
    server = FakeApiServer().start()
    server.hold_lists("virtualservices")
    yield server
    server.close()


def test_config_from_the_api_server(
    tmp_path: Path,
    api: FakeApiServer,
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
) -> None:
    app = Bookinfo.start(backend_factory, ("reviews-v1", "reviews-v2"))
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    istiod = UnsyncedIstiod(tmp_path / "istiod", extra_args=["--kubeconfig", str(kubeconfig)])
    istiod.start()
    try:
        assert istiod.get("/ready").status == 503
        assert ads_refusal(istiod) == (grpc.StatusCode.UNAVAILABLE, NOT_READY)

        began = time.monotonic()
        api.release_lists()
        wait_until(lambda: istiod.get("/ready").status == 200, 15, 0.05, "istiod ready")
        synced_after = time.monotonic() - began
        assert synced_after < 15

        kube = api.client()
        ip = allocate_ip()
        create(kube, app.service_entry("reviews"))
        create(kube, app.subsets("reviews", ("v1", "v2")))
        create(
            kube,
            f"""
            apiVersion: networking.istio.io/v1
            kind: Sidecar
            metadata: {{name: productpage, namespace: default}}
            spec:
              workloadSelector:
                labels: {{app: productpage}}
              egress:
              - port: {{number: {SERVICE_PORT}, protocol: HTTP, name: http}}
                bind: {ip}
                hosts: ["./*"]
            """,
        )
        create(kube, app.weighted_vs("reviews", {"v1": 100, "v2": 0}))
        opts = sidecar_options(istiod, "productpage-v1", ip, {"app": "productpage"}, "sotw")
        envoy_factory(options=opts)
        wait_for_backend(ip, SERVICE_PORT, "reviews-v1", host="reviews")

        # A change through the API changes the route Envoy uses.
        kube.custom().patch_namespaced_custom_object(
            "networking.istio.io",
            "v1",
            "default",
            "virtualservices",
            "reviews",
            {"spec": {"http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]}},
        )
        wait_for_backend(ip, SERVICE_PORT, "reviews-v2", host="reviews")
        vs = next(
            o
            for o in istiod.get_json("/debug/configz")
            if o.get("kind") == "VirtualService" and o["metadata"]["name"] == "reviews"
        )
        server_vs = kube.custom().get_namespaced_custom_object(
            "networking.istio.io", "v1", "default", "virtualservices", "reviews"
        )
        assert vs["metadata"]["resourceVersion"] == server_vs["metadata"]["resourceVersion"]
        kube.close()
    finally:
        began = time.monotonic()
        assert istiod.stop() == 0
        assert time.monotonic() - began < 8, "istiod did not stop its watches promptly"
