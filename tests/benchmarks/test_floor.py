"""The floor server (`benchmarks.floor`): fed istiod's own responses, it brings simulated
Envoys to sync with the same resources, and each push kind reaches every client with the
expected types. CPU figures are not asserted beyond "it was measured"."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from envoy.service.discovery.v3 import discovery_pb2

from benchmarks.adsclient import client_specs
from benchmarks.adsparse import first_string_field
from benchmarks.adspool import ClientPool
from benchmarks.changes import write_initial
from benchmarks.floor import FloorServer, fetch_responses
from benchmarks.istiod_proc import IstiodProcess
from benchmarks.render import render_to, resolve_template

CLIENTS = 3


def _pump_until(pool: ClientPool, done: Callable[[], bool], deadline: float) -> bool:
    while not done():
        if time.monotonic() > deadline:
            return False
        pool.pump(0.02)
    return True


@pytest.fixture(scope="module")
def responses(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("floor")
    config = root / "config"
    config.mkdir()
    render_to(resolve_template("virtualservice"), config, 3)
    write_initial(config)  # the bench-target service whose endpoints a push carries
    istiod = IstiodProcess(config, root / "istiod", log_level="warning")
    try:
        istiod.start()
        return fetch_responses(istiod.grpc, client_specs(1)[0], timeout=20)
    finally:
        istiod.stop()


@pytest.mark.parametrize("shared_bytes", [False, True], ids=["per-stream", "shared-bytes"])
def test_floor_serves_and_pushes(
    responses: dict[str, bytes], shared_bytes: bool, tmp_path: Path
) -> None:
    parsed = {t: discovery_pb2.DiscoveryResponse.FromString(raw) for t, raw in responses.items()}
    counts = {t: len(r.resources) for t, r in parsed.items()}
    assert set(counts) == {"CDS", "EDS", "LDS", "RDS"}
    assert counts["EDS"] >= 2 and all(counts.values())
    names = [first_string_field(a.value) for a in parsed["EDS"].resources]
    assert any("bench-target" in n for n in names), names  # what a push carries

    floor = FloorServer(shared_bytes=shared_bytes)
    pool = ClientPool(CLIENTS)
    deadline = time.monotonic() + 30
    try:
        floor.start(responses, timeout=20)
        assert floor.target.startswith("127.0.0.1:") and floor.pid > 0
        cpu0 = floor.cpu_seconds()
        pool.start(
            client_specs(CLIENTS),
            floor.target,
            delta=False,
            workers=1,
            deadline=deadline,
            connect_spread=0,
            ready_by=deadline,
        )
        pool.go()
        c = pool.collector
        assert _pump_until(pool, lambda: len(c.synced) == CLIENTS or bool(c.errors), deadline)
        assert c.errors == []
        for client in range(CLIENTS):
            got = sorted((r.type, r.resources) for r in c.records if r.client == client)
            assert got == sorted(counts.items())
        assert floor.streams() == CLIENTS

        expected = {
            "route": [("RDS", counts["RDS"])],
            "cluster": [("CDS", counts["CDS"]), ("EDS", 1)],
            "endpoint": [("EDS", 1)],
        }
        for kind, want in expected.items():
            t = time.monotonic()
            assert floor.push(kind) == CLIENTS

            def heard(t: float = t, n: int = len(want)) -> bool:
                return all(sum(1 for r in c.since(t) if r.client == i) >= n for i in range(CLIENTS))

            assert _pump_until(pool, heard, deadline), kind
            for client in range(CLIENTS):
                got = [(r.type, r.resources) for r in c.since(t) if r.client == client]
                assert got == want, (kind, client)
            versions = {r.version for r in c.since(t)}
            assert len(versions) == 1 and versions.isdisjoint(
                r.version_info for r in parsed.values()
            )

        # Every response was ACKed, and the server took each ACK as one (nothing re-sent).
        total = len(c.records)
        assert total == CLIENTS * (4 + 1 + 2 + 1)
        assert _pump_until(pool, lambda: floor.stats()["acks"] >= total, deadline)
        stats = floor.stats()
        assert (stats["acks"], stats["writes"], stats["ignored"]) == (total, total, 0)
        assert c.errors == []
        # CPU is read in clock ticks (10 ms): push until the server's CPU has moved.
        while floor.cpu_seconds() <= cpu0 and time.monotonic() < deadline:
            assert floor.push("route") == CLIENTS
            pool.pump(0.001)
        assert floor.cpu_seconds() > cpu0
    finally:
        try:
            pool.stop()
            pool.close()
        finally:
            exit_code = floor.stop()
    assert exit_code == 0  # SIGTERM: a clean shutdown
