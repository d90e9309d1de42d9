"""(f)+(e) istiod restarted (SIGTERM, and SIGKILL) while Envoy serves traffic, over SotW and
Delta ADS.

Envoy keeps serving its last config while istiod is down; it reconnects to the same port and,
the config being unchanged, istiod sends it nothing (content-hash versions: SotW
`version_info`, Delta `initial_resource_versions`). Checked on both sides: Envoy's xDS update
counters are unchanged across the reconnect, and istiod's /debug/syncz shows no response sent
on the new stream, while showing every type SYNCED (the proxy proved it holds the current
versions). A change made afterwards still reaches Envoy over the new stream.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from istioctl.bootstrap import XdsApi

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import (
    SERVICE_PORT,
    XDS_APIS,
    Bookinfo,
    join_docs,
    proxy_key,
    received_updates,
    sidecar_options,
    summarize_counters,
    syncz_entry,
    update_counters,
    wait_for_backend,
    wait_synced,
    write_config,
)
from .net import allocate_ip, wait_until
from .traffic import LoadGenerator

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
WATCHED = (CDS, EDS, LDS, RDS)


def adsz_client(istiod: IstiodProcess, proxy: str) -> dict[str, Any] | None:
    for client in istiod.get_json("/debug/adsz").get("clients", []):
        cid = str(client.get("connectionId", ""))  # Istio's form: NAME.NS-N
        if cid.startswith(f"{proxy}-") or f"~{proxy}~" in cid:
            return dict(client)
    return None


def resubscribed(istiod: IstiodProcess, proxy: str) -> dict[str, Any] | None:
    """The proxy's stream on this istiod, once istiod has handled its request for each of
    CDS, EDS, LDS and RDS (EDS and RDS with their names)."""
    client = adsz_client(istiod, proxy)
    if client is None:
        return None
    watches = client.get("watches", {})
    if not all(t in watches for t in WATCHED):
        return None
    if not watches[EDS] or not watches[RDS]:
        return None
    return client


@pytest.mark.parametrize("graceful", [True, False], ids=["sigterm", "sigkill"])
@pytest.mark.parametrize("xds_api", XDS_APIS)
def test_istiod_restart_under_load(
    xds_api: XdsApi,
    graceful: bool,
    tmp_path: Path,
    istiod_factory: Callable[..., IstiodProcess],
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
) -> None:
    app = Bookinfo.start(backend_factory, ("reviews-v1", "reviews-v2", "details-v1"))
    ip = allocate_ip()
    config = tmp_path / "config"
    config.mkdir()
    write_config(
        config,
        "services.yaml",
        join_docs(
            app.service_entry("reviews"),
            app.subsets("reviews", ("v1", "v2")),
            app.kube_service("details"),
            app.weighted_vs("reviews", {"v1": 100, "v2": 0}),
        ),
    )
    istiod = istiod_factory(config)
    opts = sidecar_options(istiod, "productpage-v1", ip, {"app": "productpage"}, xds_api)
    envoy = envoy_factory(options=opts)
    proxy = proxy_key(opts)
    wait_for_backend(ip, SERVICE_PORT, "reviews-v1", host="reviews")
    wait_synced(istiod, proxy)
    wait_until(lambda: resubscribed(istiod, proxy), 5.0, 0.05, "adsz watches")
    assert envoy.stat("control_plane.connected_state") == 1
    before = update_counters(envoy)
    assert summarize_counters(before)["cds.update_success"] >= 1, before

    # 100 req/s through Envoy while istiod stops, starts again and Envoy reconnects.
    with LoadGenerator(ip, SERVICE_PORT, rate=100, duration=20.0, host="reviews") as load:
        wait_until(lambda: len(load.samples) >= 20, 5.0, 0.02, "load running")
        old_pid = istiod.pid
        code = istiod.restart(graceful=graceful)
        assert code == (0 if graceful else -9), istiod.log_tail()
        assert istiod.pid != old_pid
        wait_until(
            lambda: resubscribed(istiod, proxy), 15.0, 0.05, f"{proxy} back on the new istiod"
        )
        envoy.wait_for(
            lambda: envoy.stat("control_plane.connected_state") == 1, 5.0, "connected_state 1"
        )
        seen = len(load.samples)
        wait_until(lambda: len(load.samples) >= seen + 20, 5.0, 0.02, "load after reconnect")
    assert len(load.samples) >= 60, load.summary()
    assert not load.failures(), load.summary()
    assert set(load.backends()) == {"reviews-v1"}, load.backends()

    # istiod answered every request of the new stream with nothing: no nonce sent...
    entry = syncz_entry(istiod, proxy)
    assert entry is not None
    sent = {t: r.get("sent", "") for t, r in entry.get("resources", {}).items()}
    assert set(WATCHED) <= set(sent), entry
    assert not any(sent.values()), f"istiod sent responses after the reconnect: {entry}"
    # ...yet it knows the proxy is up to date: SYNCED (it presented the current versions).
    status = {t: entry["resources"][t].get("status") for t in WATCHED}
    assert set(status.values()) == {"SYNCED"}, f"an up-to-date proxy not SYNCED: {entry}"
    # ...and Envoy received no update at all: every subscription saw the stream fail
    # (update_failure) and nothing else.
    after = update_counters(envoy)
    totals = summarize_counters(after)
    assert totals["cds.update_failure"] > summarize_counters(before)["cds.update_failure"], (
        f"Envoy never saw its xDS stream fail: {totals}"
    )
    got_before, got_after = received_updates(before), received_updates(after)
    assert got_after == got_before, (
        f"Envoy was sent config after the reconnect: "
        f"{summarize_counters(before)} → {totals}; changed: "
        f"{ {k: (got_before.get(k), v) for k, v in got_after.items() if got_before.get(k) != v} }"
    )

    # The new stream works: a change still reaches Envoy.
    write_config(config, "reviews-vs.yaml", app.weighted_vs("reviews", {"v1": 0, "v2": 100}))
    wait_for_backend(ip, SERVICE_PORT, "reviews-v2", host="reviews")
    wait_synced(istiod, proxy, types=("route",))
    final = summarize_counters(update_counters(envoy))
    assert final["rds.update_success"] > summarize_counters(before)["rds.update_success"], final
    assert not any(v for k, v in final.items() if k.endswith("update_rejected")), final
