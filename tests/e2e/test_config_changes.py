"""(c)+(d)+(e) Editing, adding and deleting files in istiod's config dir changes traffic
without a restart; an invalid document changes nothing and is reported.

A NONE-mode sidecar (productpage) calls reviews (v1, v2, v3; ServiceEntry + DestinationRule
subsets) and details (Kubernetes Service + WorkloadEntry) on its own IP, port 9080. Every
change is waited for by its effect on real traffic, with a deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from istioctl.bootstrap import XdsApi

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import (
    GATEWAY_PORT,
    SERVICE_PORT,
    XDS_APIS,
    Bookinfo,
    configz_object,
    gateway_options,
    join_docs,
    problems,
    remove_config,
    sample,
    sidecar_options,
    wait_for_backend,
    write_config,
)
from .net import WaitTimeout, allocate_ip, wait_until

CANARY = {"x-canary": "true"}


class Mesh:
    """istiod + one NONE-mode sidecar + Bookinfo-style backends, for one test."""

    def __init__(
        self,
        tmp_path: Path,
        xds_api: XdsApi,
        istiod_factory: Callable[..., IstiodProcess],
        envoy_factory: Callable[..., EnvoyProcess],
        backend_factory: Callable[..., Backend],
        extra_backends: tuple[str, ...] = (),
    ) -> None:
        self.app = Bookinfo.start(
            backend_factory,
            ("reviews-v1", "reviews-v2", "reviews-v3", "details-v1", *extra_backends),
        )
        self.ip = allocate_ip()
        self.config = tmp_path / "config"
        self.config.mkdir()
        self.write(
            "services.yaml",
            join_docs(
                self.app.service_entry("reviews"),
                self.app.subsets("reviews"),
                self.app.kube_service("details"),
                f"""
                apiVersion: networking.istio.io/v1
                kind: Sidecar
                metadata: {{name: productpage, namespace: default}}
                spec:
                  workloadSelector:
                    labels: {{app: productpage}}
                  egress:
                  - port: {{number: {SERVICE_PORT}, protocol: HTTP, name: http}}
                    bind: {self.ip}
                    hosts: ["./*"]
                """,
            ),
        )
        self.write("reviews-vs.yaml", self.app.weighted_vs("reviews", {"v1": 100, "v2": 0}))
        self.istiod = istiod_factory(self.config)
        opts = sidecar_options(
            self.istiod,
            "productpage-v1",
            self.ip,
            {"app": "productpage", "version": "v1"},
            xds_api,
        )
        self.sidecar = envoy_factory(options=opts)

    def write(self, filename: str, *docs: str) -> None:
        write_config(self.config, filename, join_docs(*docs))

    def wait_for(
        self,
        host: str,
        expected: str,
        headers: dict[str, str] | None = None,
        confirm: int = 30,
    ) -> None:
        wait_for_backend(
            self.ip, SERVICE_PORT, expected, host=host, headers=headers, confirm=confirm
        )

    def sample(self, host: str, n: int, headers: dict[str, str] | None = None) -> dict[str, int]:
        return dict(sample(self.ip, SERVICE_PORT, n, host=host, headers=headers))


def canary_vs() -> str:
    """details: requests with x-canary: true go to reviews v3, the rest to details."""
    return """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: details-canary, namespace: default}
        spec:
          hosts: [details]
          http:
          - match:
            - headers:
                x-canary: {exact: "true"}
            route:
            - destination: {host: reviews, subset: v3}
          - route:
            - destination: {host: details}
        """


@pytest.mark.parametrize("xds_api", XDS_APIS)
def test_edit_add_delete_config_files_without_restart(
    xds_api: XdsApi,
    tmp_path: Path,
    istiod_factory: Callable[..., IstiodProcess],
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
) -> None:
    mesh = Mesh(tmp_path, xds_api, istiod_factory, envoy_factory, backend_factory)
    istiod, sidecar = mesh.istiod, mesh.sidecar
    istiod_pid, envoy_pid = istiod.pid, sidecar.pid

    mesh.wait_for("reviews", "reviews-v1")
    assert mesh.sample("details", 10, CANARY) == {"details-v1": 10}

    # Edit: flip the weights 100/0 → 0/100 (file rewritten atomically with os.replace).
    mesh.write("reviews-vs.yaml", mesh.app.weighted_vs("reviews", {"v1": 0, "v2": 100}))
    mesh.wait_for("reviews", "reviews-v2")
    mesh.wait_for("reviews.default.svc.cluster.local", "reviews-v2", confirm=10)

    # Add: a new file with a new VirtualService and its route.
    mesh.write("details-canary.yaml", canary_vs())
    mesh.wait_for("details", "reviews-v3", headers=CANARY)
    assert mesh.sample("details", 20) == {"details-v1": 20}

    # Delete it: traffic returns to where it went before.
    remove_config(mesh.config, "details-canary.yaml")
    mesh.wait_for("details", "details-v1", headers=CANARY)
    assert mesh.sample("reviews", 20) == {"reviews-v2": 20}  # untouched by the add/delete

    # A new WorkloadEntry file joins the Kubernetes Service details; deleting it leaves it.
    extra = backend_factory("details-v2")
    mesh.write(
        "details-v2.yaml",
        f"""
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {{name: details-v2, namespace: default}}
        spec:
          address: {extra.ip}
          labels: {{app: details, version: v2}}
          ports: {{http: {extra.port}}}
        """,
    )
    wait_until(
        lambda: set(mesh.sample("details", 10)) == {"details-v1", "details-v2"},
        10.0,
        0.02,
        "details served by both WorkloadEntries",
    )
    remove_config(mesh.config, "details-v2.yaml")
    mesh.wait_for("details", "details-v1")

    # Flip back: 0/100 → 100/0.
    mesh.write("reviews-vs.yaml", mesh.app.weighted_vs("reviews", {"v1": 100, "v2": 0}))
    mesh.wait_for("reviews", "reviews-v1")

    assert (istiod.pid, sidecar.pid) == (istiod_pid, envoy_pid)
    assert istiod.starts == 1 and istiod.running and sidecar.running
    assert not problems(istiod)


@pytest.mark.parametrize("xds_api", XDS_APIS)
def test_invalid_document_keeps_traffic_and_is_reported(
    xds_api: XdsApi,
    tmp_path: Path,
    istiod_factory: Callable[..., IstiodProcess],
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
) -> None:
    mesh = Mesh(tmp_path, xds_api, istiod_factory, envoy_factory, backend_factory, ("ratings-v1",))
    istiod = mesh.istiod
    mesh.wait_for("reviews", "reviews-v1")
    mesh.wait_for("details", "details-v1", headers=CANARY)
    last_good = configz_object(istiod, "VirtualService", "default", "reviews")
    assert last_good is not None

    # 1. An edit that makes a known object invalid: a misspelt field (sourcelabels), and a
    #    route that would move all traffic to v2 if it were taken.
    mesh.write(
        "reviews-vs.yaml",
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: default}
        spec:
          hosts: [reviews]
          http:
          - match:
            - sourcelabels: {app: productpage}
            route:
            - destination: {host: reviews, subset: v2}
          - route:
            - destination: {host: reviews, subset: v2}
        """,
    )
    # 2. A new file whose VirtualService has a negative weight.
    mesh.write(
        "details-bad.yaml",
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: details-bad, namespace: default}
        spec:
          hosts: [details]
          http:
          - route:
            - destination: {host: details}
              weight: -5
            - destination: {host: reviews, subset: v3}
              weight: 105
        """,
    )

    def reported() -> list[str]:
        found = problems(istiod)
        want = ("reviews-vs.yaml", "details-bad.yaml")
        return found if all(any(w in p for p in found) for w in want) else []

    found = wait_until(reported, 10.0, 0.05, "/debug/push_status problems for both files")
    text = "\n".join(found)
    assert "sourcelabels" in text, text
    assert "weight" in text, text

    # A barrier: a valid change made after the invalid ones (a new service). Once the proxy
    # serves it, every push that the invalid files could have caused has reached the proxy.
    mesh.write("ratings.yaml", mesh.app.service_entry("ratings"))
    mesh.wait_for("ratings", "ratings-v1", confirm=5)

    # Traffic is exactly as it was.
    assert mesh.sample("reviews", 50) == {"reviews-v1": 50}
    assert mesh.sample("details", 25) == {"details-v1": 25}
    assert mesh.sample("details", 25, CANARY) == {"details-v1": 25}
    # /debug/configz still holds the last good reviews VirtualService, and no details-bad.
    assert configz_object(istiod, "VirtualService", "default", "reviews") == last_good
    assert configz_object(istiod, "VirtualService", "default", "details-bad") is None
    # Nothing invalid reached Envoy (it had nothing to reject).
    rejected = mesh.sidecar.stats(filter=r"update_rejected$")
    assert rejected and not any(rejected.values()), rejected

    # Fixing the file takes effect and clears its problem; the other one is still reported.
    mesh.write("reviews-vs.yaml", mesh.app.weighted_vs("reviews", {"v1": 0, "v2": 100}))
    mesh.wait_for("reviews", "reviews-v2")

    def reviews_cleared() -> list[str]:
        found = problems(istiod)
        return [] if any("reviews-vs.yaml" in p for p in found) else found

    remaining = wait_until(
        reviews_cleared,
        10.0,
        0.05,
        "the reviews-vs.yaml problem to clear",
    )
    assert any("details-bad.yaml" in p for p in remaining), remaining

    # A file that is not even YAML (a half-written edit) keeps its last good objects too.
    good = configz_object(istiod, "VirtualService", "default", "reviews")
    (mesh.config / "reviews-vs.yaml").write_text("kind: VirtualService\nspec: {hosts: [revi")
    wait_until(
        lambda: any("reviews-vs.yaml" in p for p in problems(istiod)),
        10.0,
        0.05,
        "the unparsable reviews-vs.yaml reported",
    )
    # Barrier: a valid change after it (ratings removed) reaches the proxy first.
    remove_config(mesh.config, "ratings.yaml")
    mesh.sidecar.wait_for(
        lambda: not any("ratings" in c for c in mesh.sidecar.cluster_names()),
        10.0,
        "the ratings clusters removed",
    )
    assert mesh.sample("reviews", 50) == {"reviews-v2": 50}
    assert configz_object(istiod, "VirtualService", "default", "reviews") == good

    mesh.write("reviews-vs.yaml", mesh.app.weighted_vs("reviews", {"v1": 100, "v2": 0}))
    remove_config(mesh.config, "details-bad.yaml")
    mesh.wait_for("reviews", "reviews-v1")
    wait_until(lambda: problems(istiod) == [], 10.0, 0.05, "no problems left")


@pytest.mark.parametrize("xds_api", XDS_APIS)
def test_proxies_start_on_empty_config_dir_and_follow_first_files(
    xds_api: XdsApi,
    tmp_path: Path,
    istiod_factory: Callable[..., IstiodProcess],
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
) -> None:
    """An empty mesh: a sidecar with no services and a gateway with no Gateway have no
    listeners. istiod still answers each initial request (Istio does, with an empty response),
    so both Envoys initialize (the bootstrap's initial_fetch_timeout is 0: they would wait
    forever); the first files added then bring traffic, and deleting them takes it away."""
    config = tmp_path / "config"
    config.mkdir()
    istiod = istiod_factory(config)
    side_ip, gw_ip = allocate_ip(), allocate_ip()
    side_opts = sidecar_options(istiod, "productpage-v1", side_ip, {"app": "productpage"}, xds_api)
    gw_opts = gateway_options(istiod, "istio-ingressgateway", gw_ip, xds_api)
    proxies = [envoy_factory(options=o, wait_live=False) for o in (side_opts, gw_opts)]

    def states() -> dict[str, str]:
        return {p.name: p.state() for p in proxies}

    try:
        wait_until(lambda: set(states().values()) == {"LIVE"}, 5.0, 0.05)  # Istio: at once
    except WaitTimeout:
        detail = {
            p.name: (
                p.state(),
                p.stats(filter=r"^(cluster_manager\.cds|listener_manager\.lds)\.update_"),
            )
            for p in proxies
        }
        raise AssertionError(f"proxies not LIVE on an empty mesh: {detail}") from None
    for proxy in proxies:
        assert proxy.stat("listener_manager.lds.update_success") == 1, proxy.name
        assert not proxy.listener_names(), proxy.name

    app = Bookinfo.start(backend_factory, ("reviews-v1",))
    write_config(config, "reviews.yaml", join_docs(app.service_entry("reviews")))
    write_config(
        config,
        "gateway.yaml",
        """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: default}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 8080, name: http, protocol: HTTP}
            hosts: ["*"]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: front, namespace: default}
        spec:
          hosts: ["*"]
          gateways: [gw]
          http:
          - route:
            - destination: {host: reviews}
        """,
    )
    wait_for_backend(side_ip, SERVICE_PORT, "reviews-v1", host="reviews")
    wait_for_backend(gw_ip, GATEWAY_PORT, "reviews-v1", host="anything.example.com")

    remove_config(config, "gateway.yaml")
    remove_config(config, "reviews.yaml")
    for proxy in proxies:
        proxy.wait_for(lambda p=proxy: not p.listener_names(), 10.0, "listeners removed")
