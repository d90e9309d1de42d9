"""Issue 7 (6): a VirtualService that passes our validation but that Envoy rejects is
attributed, marked rejected, and served at its last accepted version to every proxy —
including a proxy started after the rejection, which comes up LIVE — until it changes again.

The rejected change routes reviews to v2 behind a header match whose RE2 regex is valid and
1 kB short, but compiles to a program larger than Envoy's limit (istioctl bootstrap sets
`re2.max_program_size.error_level` to 32768, as Istio's bootstrap does): Envoy NACKs the route
configuration with "RE2 program size of 42004 > max program size of 32768". Which version is
live is seen from real traffic: v1 before and while the bad version is rejected, v2 once the
VirtualService is fixed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from istioctl.cmd_validate import validate_paths

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import (
    SERVICE_PORT,
    Bookinfo,
    configz_object,
    join_docs,
    problems,
    proxy_key,
    sample,
    sidecar_options,
    summarize_counters,
    syncz_entry,
    update_counters,
    wait_for_backend,
    write_config,
)
from .net import allocate_ip, wait_until

BAD_REGEX = "(abcdefghij|klmnopqrst|uvwxyz0123|456789ABCD){1000}"
ENVOY_SAYS = "RE2 program size of 42004 > max program size of 32768"
VS_PATH = "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"


def routing(subset: str, *, rejected_by_envoy: bool = False) -> str:
    """reviews → `subset`; with `rejected_by_envoy`, behind a header match Envoy rejects."""
    match = ""
    if rejected_by_envoy:
        match = f"""
              - match: [{{headers: {{x-id: {{regex: "{BAD_REGEX}"}}}}}}]
                route: [{{destination: {{host: reviews, subset: {subset}}}}}]"""
    return f"""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {{name: reviews, namespace: default}}
            spec:
              hosts: [reviews]
              http:{match}
              - route: [{{destination: {{host: reviews, subset: {subset}}}}}]
            """


def rejected_mark(istiod: IstiodProcess) -> dict[str, Any] | None:
    obj = configz_object(istiod, "VirtualService", "default", "reviews")
    mark = ((obj or {}).get("status") or {}).get("rejected")
    return dict(mark) if mark else None


def rejected_updates(envoy: EnvoyProcess) -> int:
    return summarize_counters(update_counters(envoy)).get("rds.update_rejected", 0)


def route_provenance(envoy: EnvoyProcess) -> set[str]:
    """The `istio.config` metadata of every route Envoy holds for reviews."""
    out = set()
    for entry in envoy.config_section("RoutesConfigDump").get("dynamic_route_configs", []):
        for vhost in entry["route_config"].get("virtual_hosts", []):
            if not vhost["name"].startswith("reviews."):
                continue
            for route in vhost.get("routes", []):
                istio = route.get("metadata", {}).get("filter_metadata", {}).get("istio", {})
                out.add(str(istio.get("config", "")))
    return out


def cluster(subset: str) -> str:
    return f"outbound|{SERVICE_PORT}|{subset}|reviews.default.svc.cluster.local"


def served_clusters(istiod: IstiodProcess, proxy: str) -> set[str]:
    """The clusters of reviews' routes in what istiod serves `proxy` now (its config_dump)."""
    dump = istiod.get_json(f"/debug/config_dump?proxyID={proxy}&types=RDS")
    out = set()
    for section in dump.get("configs", []):
        for entry in section.get("dynamicRouteConfigs", []):
            for vhost in entry["routeConfig"].get("virtualHosts", []):
                if vhost["name"].startswith("reviews."):
                    out.update(r.get("route", {}).get("cluster") for r in vhost.get("routes", []))
    return out


def test_rejected_virtual_service_serves_last_good_to_old_and_new_proxies(
    tmp_path: Path,
    istiod_factory: Callable[..., IstiodProcess],
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
) -> None:
    app = Bookinfo.start(backend_factory, ("reviews-v1", "reviews-v2"))
    config = tmp_path / "config"
    config.mkdir()
    write_config(
        config,
        "services.yaml",
        join_docs(app.service_entry("reviews"), app.subsets("reviews", ("v1", "v2"))),
    )
    write_config(config, "reviews-vs.yaml", routing("v1"))
    # These Envoys use the plaintext port (anonymous): let their NACKs revert (the default,
    # "authenticated", is tested in tests/pilot/xds/test_rejections.py).
    istiod = istiod_factory(config, env={"PILOT_REVERT_REJECTED_CONFIG": "all"})
    ip_a = allocate_ip()
    opts_a = sidecar_options(istiod, "productpage-a", ip_a, {"app": "productpage"}, "sotw")
    envoy_a = envoy_factory(options=opts_a)
    wait_for_backend(ip_a, SERVICE_PORT, "reviews-v1", host="reviews")

    # The bad version passes our validation (istioctl validate, and istiod's file source)...
    bad = tmp_path / "bad-vs.yaml"
    bad.write_text(join_docs(routing("v2", rejected_by_envoy=True)))
    out, err = io.StringIO(), io.StringIO()
    assert validate_paths([str(bad)], "default", out, err) == 0, err.getvalue()
    write_config(config, "reviews-vs.yaml", routing("v2", rejected_by_envoy=True))

    # ...Envoy rejects it; istiod marks the VirtualService rejected with Envoy's message.
    mark = wait_until(lambda: rejected_mark(istiod), 10.0, 0.05, "configz rejected mark")
    assert ENVOY_SAYS in mark["message"], mark
    assert mark["proxy"] == proxy_key(opts_a)
    assert mark["typeUrl"].endswith("RouteConfiguration")
    # The rejected version and the one served instead (resourceVersions, as configz shows).
    obj = configz_object(istiod, "VirtualService", "default", "reviews")
    assert mark["version"] == obj["metadata"].get("resourceVersion", mark["version"])
    assert mark["serving"] and mark["version"] != mark["serving"]
    assert rejected_updates(envoy_a) >= 1
    assert not problems(istiod)  # no validation problem: only a proxy could find this one
    log = istiod.log_path.read_text(errors="replace")
    assert "VirtualService/default/reviews" in log and "rejected by proxy" in log

    # Traffic keeps flowing to v1 through the proxy that rejected it.
    assert sample(ip_a, SERVICE_PORT, 30, host="reviews") == {"reviews-v1": 30}

    # Once istiod serves the last good version (the revert is pushed like any change, after
    # the debounce), a proxy started from then on comes up LIVE with it and never NACKs.
    wait_until(
        lambda: served_clusters(istiod, proxy_key(opts_a)) == {cluster("v1")},
        5.0,
        0.05,
        "istiod serving the last good routes",
    )
    ip_b = allocate_ip()
    opts_b = sidecar_options(istiod, "productpage-b", ip_b, {"app": "productpage"}, "delta")
    envoy_b = envoy_factory(options=opts_b)  # waits for LIVE
    wait_for_backend(ip_b, SERVICE_PORT, "reviews-v1", host="reviews")
    assert route_provenance(envoy_b) == {VS_PATH}
    assert rejected_updates(envoy_b) == 0
    entry = wait_until(lambda: syncz_entry(istiod, proxy_key(opts_b)), 5.0, 0.05, "syncz B")
    assert "program size" not in json.dumps(entry), entry
    assert sample(ip_a, SERVICE_PORT, 20, host="reviews") == {"reviews-v1": 20}

    # Fixed (a valid change to v2): tried afresh, live on both, the mark is gone.
    write_config(config, "reviews-vs.yaml", routing("v2"))
    wait_for_backend(ip_a, SERVICE_PORT, "reviews-v2", host="reviews")
    wait_for_backend(ip_b, SERVICE_PORT, "reviews-v2", host="reviews")
    assert rejected_mark(istiod) is None

    # Bad again (back to v1 behind the bad match): reverted to the version accepted last, v2.
    write_config(config, "reviews-vs.yaml", routing("v1", rejected_by_envoy=True))
    mark = wait_until(lambda: rejected_mark(istiod), 10.0, 0.05, "configz rejected mark again")
    assert ENVOY_SAYS in mark["message"], mark
    assert sample(ip_a, SERVICE_PORT, 20, host="reviews") == {"reviews-v2": 20}
    assert sample(ip_b, SERVICE_PORT, 20, host="reviews") == {"reviews-v2": 20}
    assert envoy_a.running and envoy_b.running
    assert envoy_a.state() == "LIVE" and envoy_b.state() == "LIVE"
