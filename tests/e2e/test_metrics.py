"""istiod's /metrics with a real Envoy connected: Istio's names parse with Prometheus's text
parser on both the HTTP and the monitoring port, pilot_xds counts the one proxy, the config
size histogram has samples for each full type URL, and a VirtualService change moves
pilot_xds_pushes{type="rds"} (by exactly the RDS responses Envoy counted) and
pilot_proxy_convergence_time; istiod logs one structured line for the push and one when it
has reached the proxy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from pkg.version import VERSION
from tests.helpers.metrics import Scrape

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import (
    SERVICE_PORT,
    Bookinfo,
    join_docs,
    proxy_key,
    received_updates,
    sidecar_options,
    summarize_counters,
    update_counters,
    wait_for_backend,
    wait_synced,
    write_config,
)
from .net import allocate_ip, split_host_port, wait_until
from .traffic import request

TYPE_URLS = {
    "cds": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "eds": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    "lds": "type.googleapis.com/envoy.config.listener.v3.Listener",
    "rds": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
}
PAIR = re.compile(r'(\w+)=("[^"]*"|\S+)')


def scrape(istiod: IstiodProcess, server: str = "http") -> Scrape:
    host, port = split_host_port(istiod.address(server))
    resp = request(host, port, "GET", "/metrics", timeout=5.0)
    assert resp.status == 200, resp.body[:300]
    assert resp.headers.get("content-type", "").startswith("text/plain"), resp.headers
    return Scrape.parse(resp.body.decode())


def rds_responses(envoy: EnvoyProcess) -> int:
    return summarize_counters(received_updates(update_counters(envoy))).get("rds.responses", 0)


def push_lines(istiod: IstiodProcess, prefix: str) -> list[dict[str, str]]:
    text = istiod.log_path.read_text(errors="replace")
    return [
        dict(PAIR.findall(line.split(prefix, 1)[1])) for line in text.splitlines() if prefix in line
    ]


def test_metrics_move_as_a_route_change_reaches_a_real_envoy(
    tmp_path: Path,
    istiod_factory: Callable[..., IstiodProcess],
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
) -> None:
    app = Bookinfo.start(backend_factory, ("reviews-v1", "reviews-v2"))
    ip = allocate_ip()
    config = tmp_path / "config"
    config.mkdir()
    write_config(
        config,
        "services.yaml",
        join_docs(app.service_entry("reviews"), app.subsets("reviews", ("v1", "v2"))),
    )
    write_config(config, "reviews-vs.yaml", app.weighted_vs("reviews", {"v1": 100, "v2": 0}))
    istiod = istiod_factory(config)
    opts = sidecar_options(istiod, "productpage-v1", ip, {"app": "productpage"}, "sotw")
    envoy = envoy_factory(options=opts)
    proxy = proxy_key(opts)
    wait_for_backend(ip, SERVICE_PORT, "reviews-v1", host="reviews")
    wait_synced(istiod, proxy)

    before = scrape(istiod)
    monitoring = scrape(istiod, "monitoring")
    for name in ("pilot_xds", "pilot_xds_pushes", "pilot_proxy_convergence_time"):
        assert monitoring.families[name].type == before.families[name].type, name
    # One proxy, under the Istio version its bootstrap reports.
    assert before.value("pilot_xds") == 1
    assert before.value("pilot_xds", version=VERSION) == 1
    for short, url in TYPE_URLS.items():
        assert before.value("pilot_xds_config_size_bytes_count", type=url) >= 1, url
        assert before.value("pilot_xds_pushes", type=short) >= 1, short
    rds_before = rds_responses(envoy)

    write_config(config, "reviews-vs.yaml", app.weighted_vs("reviews", {"v1": 0, "v2": 100}))
    wait_for_backend(ip, SERVICE_PORT, "reviews-v2", host="reviews")
    wait_synced(istiod, proxy)
    after = wait_until(
        lambda: (
            s
            if (s := scrape(istiod)).value("pilot_proxy_convergence_time_count")
            > before.value("pilot_proxy_convergence_time_count")
            else None
        ),
        5.0,
        0.05,
        "pilot_proxy_convergence_time_count to move",
    )
    assert after is not None
    rds_pushed = after.value("pilot_xds_pushes", type="rds") - before.value(
        "pilot_xds_pushes", type="rds"
    )
    assert rds_pushed >= 1
    assert rds_pushed == rds_responses(envoy) - rds_before  # every one reached Envoy
    converged = after.value("pilot_proxy_convergence_time_sum") - before.value(
        "pilot_proxy_convergence_time_sum"
    )
    assert 0 < converged < 10, converged
    assert after.value("pilot_xds") == 1
    assert after.value("pilot_total_xds_rejects") == 0

    # The push's structured log line, and its completion once it reached the proxy.
    started = [
        line
        for line in push_lines(istiod, "XDS: Pushing ")
        if line.get("configs") == "VirtualService/default/reviews"
    ]
    assert started and started[-1]["scope"] == "full" and started[-1]["proxies"] == "1"
    version = started[-1]["version"]
    done = wait_until(
        lambda: [d for d in push_lines(istiod, "XDS: Push complete ") if d["version"] == version],
        5.0,
        0.05,
        f"the completion line of push {version}",
    )
    assert done[0]["pushed"] == "1" and done[0]["gone"] == "0"
    assert int(done[0]["responses"]) >= 1 and int(done[0]["bytes"]) > 0
