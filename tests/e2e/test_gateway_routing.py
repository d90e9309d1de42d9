"""(a)+(e) An ingress gateway serving Bookinfo-style routing, over SotW and Delta ADS.

The Bookinfo Gateway (selector istio: ingressgateway, port 8080 HTTP, hosts "*") and a
VirtualService bound to it: /productpage → productpage; /reviews with `end-user: jason` →
reviews v2; other /reviews → an 80/20 split between reviews v1 and v3. The gateway proxy is a
real Envoy (`--type router`) that binds 8080 on its own loopback IP.
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
    assert_config_dump_matches,
    bound_addresses,
    gateway_options,
    join_docs,
    proxy_key,
    sample,
    sidecar_options,
    wait_for_backend,
    wait_synced,
    write_config,
)
from .net import allocate_ip

BOOKINFO_HOST = "bookinfo.example.com"

GATEWAY = """
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: bookinfo-gateway, namespace: default}
    spec:
      selector:
        istio: ingressgateway
      servers:
      - port: {number: 8080, name: http, protocol: HTTP}
        hosts: ["*"]
    """

GATEWAY_VS = f"""
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {{name: bookinfo, namespace: default}}
    spec:
      hosts: [{BOOKINFO_HOST}]
      gateways: [bookinfo-gateway]
      http:
      - match:
        - uri: {{exact: /productpage}}
        - uri: {{prefix: /static}}
        route:
        - destination: {{host: productpage, port: {{number: 9080}}}}
      - match:
        - uri: {{prefix: /reviews}}
          headers:
            end-user: {{exact: jason}}
        route:
        - destination: {{host: reviews, subset: v2}}
      - match:
        - uri: {{prefix: /reviews}}
        route:
        - destination: {{host: reviews, subset: v1}}
          weight: 80
        - destination: {{host: reviews, subset: v3}}
          weight: 20
    """


@pytest.mark.parametrize("xds_api", XDS_APIS)
def test_bookinfo_gateway_routing(
    xds_api: XdsApi,
    tmp_path: Path,
    istiod_factory: Callable[..., IstiodProcess],
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
    loopback_ip: str,
) -> None:
    app = Bookinfo.start(
        backend_factory, ("productpage-v1", "reviews-v1", "reviews-v2", "reviews-v3")
    )
    config = tmp_path / "config"
    config.mkdir()
    write_config(
        config,
        "services.yaml",
        join_docs(
            app.kube_service("productpage"), app.service_entry("reviews"), app.subsets("reviews")
        ),
    )
    write_config(config, "bookinfo-gateway.yaml", join_docs(GATEWAY, GATEWAY_VS))
    istiod = istiod_factory(config)

    opts = gateway_options(istiod, "istio-ingressgateway", loopback_ip, xds_api)
    gateway = envoy_factory(options=opts)
    gw = loopback_ip

    # The Gateway server port is bound on the gateway's own loopback IP.
    assert (gw, GATEWAY_PORT) in bound_addresses(gateway), bound_addresses(gateway)

    def send(n: int, path: str, **headers: str) -> dict[str, int]:
        return dict(sample(gw, GATEWAY_PORT, n, host=BOOKINFO_HOST, path=path, headers=headers))

    wait_for_backend(
        gw, GATEWAY_PORT, "productpage-v1", host=BOOKINFO_HOST, path="/productpage", confirm=10
    )
    assert send(10, "/static/app.css") == {"productpage-v1": 10}
    assert send(10, "/") == {"<404>": 10}  # no route matches

    # 80/20 between v1 and v3 over 1,000 requests, within ±5 points.
    path = "/reviews/0"
    split = send(1000, path)
    assert set(split) <= {"reviews-v1", "reviews-v3"}, split
    assert sum(split.values()) == 1000, split
    assert 750 <= split["reviews-v1"] <= 850, split
    assert 150 <= split["reviews-v3"] <= 250, split

    # The header match always wins.
    jason = send(50, path, **{"end-user": "jason"})
    assert jason == {"reviews-v2": 50}, jason
    other_user = send(50, path, **{"end-user": "mike"})
    assert set(other_user) <= {"reviews-v1", "reviews-v3"}, other_user

    # No VirtualService binds this host to the gateway: 404 from the gateway itself.
    assert sample(gw, GATEWAY_PORT, 20, host="unknown.example.com") == {"<404>": 20}

    # A sidecar joins (productpage, NONE mode, on its own IP): it reaches reviews in-mesh.
    sidecar_ip = allocate_ip()
    side_opts = sidecar_options(
        istiod,
        "productpage-v1",
        sidecar_ip,
        {"app": "productpage", "version": "v1"},
        xds_api,
    )
    sidecar = envoy_factory(options=side_opts)
    in_mesh = sample(sidecar_ip, SERVICE_PORT, 30, host="reviews")
    assert set(in_mesh) <= {"reviews-v1", "reviews-v2", "reviews-v3"}, in_mesh
    assert sum(in_mesh.values()) == 30, in_mesh

    # istiod lists both proxies as synced, and what it would send each is what each holds.
    for proxy, envoy, kind in ((opts, gateway, "router"), (side_opts, sidecar, "sidecar")):
        entry = wait_synced(istiod, proxy_key(proxy))
        assert entry["proxy_type"] == kind, entry
        assert_config_dump_matches(istiod, envoy, proxy_key(proxy))
    listed = {e["proxy"] for e in istiod.get_json("/debug/syncz")}
    assert listed == {proxy_key(opts), proxy_key(side_opts)}, listed
    assert "outbound|9080|v2|reviews.default.svc.cluster.local" in gateway.cluster_names()
