"""(b)+(e) A sidecar in NONE interception mode, scoped by a Sidecar resource, over SotW and
Delta ADS.

The Sidecar resource selects the proxy by its labels and binds the HTTP egress port 9080 on
the proxy's own loopback IP with hosts ["./*"]: the proxy reaches services of its namespace by
short name and by full name (reviews from a ServiceEntry, details from a Kubernetes Service +
WorkloadEntry), and knows nothing of another namespace's services.
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
    SERVICE_PORT,
    XDS_APIS,
    Bookinfo,
    assert_config_dump_matches,
    bound_addresses,
    join_docs,
    proxy_key,
    sample,
    sidecar_options,
    wait_for_backend,
    wait_synced,
    write_config,
)
from .net import allocate_ip


def sidecar_resource(bind: str, namespace: str = "default") -> str:
    return f"""
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {{name: productpage, namespace: {namespace}}}
        spec:
          workloadSelector:
            labels: {{app: productpage}}
          egress:
          - port: {{number: {SERVICE_PORT}, protocol: HTTP, name: http}}
            bind: {bind}
            hosts: ["./*"]
        """


@pytest.mark.parametrize("xds_api", XDS_APIS)
def test_sidecar_none_mode_short_and_full_names(
    xds_api: XdsApi,
    tmp_path: Path,
    istiod_factory: Callable[..., IstiodProcess],
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
) -> None:
    app = Bookinfo.start(backend_factory, ("reviews-v1", "reviews-v2", "details-v1"))
    other = Bookinfo.start(backend_factory, ("ratings-v1",), namespace="other")
    sidecar_ip = allocate_ip()
    config = tmp_path / "config"
    config.mkdir()
    write_config(
        config,
        "default.yaml",
        join_docs(
            app.service_entry("reviews"), app.kube_service("details"), sidecar_resource(sidecar_ip)
        ),
    )
    write_config(config, "other.yaml", join_docs(other.service_entry("ratings")))
    istiod = istiod_factory(config)

    opts = sidecar_options(
        istiod,
        "productpage-v1",
        sidecar_ip,
        {"app": "productpage", "version": "v1"},
        xds_api,
    )
    sidecar = envoy_factory(options=opts)

    # The egress listener is bound where the Sidecar resource says: the proxy's own IP.
    addresses = bound_addresses(sidecar)
    assert (sidecar_ip, SERVICE_PORT) in addresses, addresses

    # Short name, short name with port, namespace-qualified and fully qualified names.
    reviews = {"reviews-v1", "reviews-v2"}
    for host in (
        "reviews",
        f"reviews:{SERVICE_PORT}",
        "reviews.default",
        "reviews.default.svc.cluster.local",
        f"reviews.default.svc.cluster.local:{SERVICE_PORT}",
    ):
        counts = sample(sidecar_ip, SERVICE_PORT, 20, host=host)
        assert set(counts) <= reviews and sum(counts.values()) == 20, (host, counts)
    both = sample(sidecar_ip, SERVICE_PORT, 60, host="reviews")
    assert set(both) == reviews, both  # no VirtualService: every endpoint takes traffic

    # A Kubernetes Service + WorkloadEntry, by short and full name.
    wait_for_backend(sidecar_ip, SERVICE_PORT, "details-v1", host="details", confirm=10)
    full = sample(sidecar_ip, SERVICE_PORT, 10, host="details.default.svc.cluster.local")
    assert full == {"details-v1": 10}

    # hosts ["./*"]: the other namespace's service is not part of this proxy's config.
    assert not any("ratings" in name for name in sidecar.cluster_names())
    far = sample(sidecar_ip, SERVICE_PORT, 5, host="ratings.other.svc.cluster.local")
    assert "ratings-v1" not in far, far
    assert other["ratings-v1"].request_count == 0

    wait_synced(istiod, proxy_key(opts))
    assert_config_dump_matches(istiod, sidecar, proxy_key(opts))
