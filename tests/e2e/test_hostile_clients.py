"""Hostile and broken xDS clients against a real istiod (issue 8, item 3): raw gRPC clients
(benchmarks/hostile.py) send malformed nodes, unknown types, oversized messages, bursts of
connections, never read, or NACK everything, while a healthy client keeps converging."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from benchmarks import hostile
from benchmarks.adsclient import CDS
from benchmarks.procs import pid_memory_mb
from tests.helpers.metrics import Scrape

from .istiod import IstiodProcess
from .net import split_host_port
from .traffic import request

CONVERGE_S = 5.0  # a config change reaches a healthy proxy within this, abuse or not


@pytest.fixture(scope="module")
def istiod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IstiodProcess]:
    workdir = tmp_path_factory.mktemp("hostile")
    proc = IstiodProcess(workdir)
    proc.config_dir.mkdir(parents=True, exist_ok=True)
    (proc.config_dir / "seed.yaml").write_text(hostile.service_yaml("seed"))
    with proc.start():
        yield proc


def clients(istiod: IstiodProcess) -> int:
    return int(istiod.get_json("/debug/connections")["totalClients"])


def metric(istiod: IstiodProcess, name: str) -> float:
    host, port = split_host_port(istiod.address("monitoring"))
    return Scrape.parse(request(host, port, "GET", "/metrics").body.decode()).value(name)


async def change_converges(istiod: IstiodProcess, healthy: hostile.Healthy, name: str) -> float:
    (istiod.config_dir / f"{name}.yaml").write_text(hostile.service_yaml(name))
    return await healthy.wait_for(name, CONVERGE_S)


BAD_NODES: dict[str, tuple[Any, str]] = {
    "empty-id": (hostile.node(node_id=""), "missing node information"),
    "two-parts": (hostile.node(node_id="sidecar~127.20.1.1"), "missing parts"),
    "five-parts": (hostile.node(node_id="sidecar~127.20.1.1~a.default~x~y"), "missing parts"),
    "bad-type": (
        hostile.node(node_id="pod~127.20.1.1~a.default~default.svc.cluster.local"),
        "invalid node type",
    ),
    "bad-ip": (
        hostile.node(
            node_id="sidecar~999.1.2.3~a.default~default.svc.cluster.local",
            metadata={"INSTANCE_IPS": "not-an-ip"},
        ),
        "no valid IP address",
    ),
    "labels-string": (hostile.node(metadata={"LABELS": "app=x"}), "LABELS"),
    "label-number": (hostile.node(metadata={"LABELS": {"version": 2}}), "LABELS['version']"),
    "namespace-number": (hostile.node(metadata={"NAMESPACE": 7}), "NAMESPACE"),
    "ips-list": (hostile.node(metadata={"INSTANCE_IPS": ["127.0.0.1"]}), "INSTANCE_IPS"),
}


async def test_malformed_nodes_get_invalid_argument_and_never_affect_others(
    istiod: IstiodProcess,
) -> None:
    healthy = hostile.Healthy(istiod.grpc_addr, ip="127.20.1.2")
    await healthy.start()
    try:
        await healthy.wait_for("seed", CONVERGE_S)
        for case, (node, message) in BAD_NODES.items():
            code, details = await hostile.refusal(istiod.grpc_addr, hostile.request(CDS, node))
            assert code is grpc.StatusCode.INVALID_ARGUMENT, (case, code, details)
            assert message in details, (case, details)
        await change_converges(istiod, healthy, "after-bad-nodes")
        assert clients(istiod) == 1
    finally:
        await healthy.close()


async def test_oversized_requests_are_refused_and_never_affect_others(
    istiod: IstiodProcess,
) -> None:
    """Istio's gRPC limit (4 MiB received): RESOURCE_EXHAUSTED, the stream closed."""
    healthy = hostile.Healthy(istiod.grpc_addr, ip="127.20.1.3")
    await healthy.start()
    try:
        await healthy.wait_for("seed", CONVERGE_S)
        huge = hostile.node(metadata={"PAD": "x" * (hostile.MAX_MESSAGE + 1024)})
        code, details = await hostile.refusal(istiod.grpc_addr, hostile.request(CDS, huge))
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
        assert "larger than max" in details
        # An oversized request later on an established stream closes that stream only.
        stream = hostile.Stream(istiod.grpc_addr)
        try:
            await stream.send(hostile.request(CDS, hostile.node("big.default", "127.20.1.4")))
            assert await stream.recv(CONVERGE_S) is not None
            await stream.send(hostile.request(CDS, error_detail={"message": "x" * (5 << 20)}))
            code, _ = await stream.status()
            assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            await stream.close()
        await change_converges(istiod, healthy, "after-oversized")
        await hostile.poll(lambda: clients(istiod) == 1, CONVERGE_S, "only the healthy client")
    finally:
        await healthy.close()


async def test_unknown_type_urls_are_ignored_without_breaking_the_stream(
    istiod: IstiodProcess,
) -> None:
    """Istio answers nothing for a type it has no generator for; the stream goes on. A client
    inventing type URLs holds at most 16 such watches (its memory in istiod is bounded)."""
    stream = hostile.Stream(istiod.grpc_addr)
    try:
        nd = hostile.node("curious.default", "127.20.1.5")
        await stream.send(hostile.request("type.googleapis.com/no.such.Type", nd))
        for i in range(40):
            await stream.send(hostile.request(f"example.com/unknown.{i}"))
        await stream.send(hostile.request(CDS))
        first = await stream.recv(CONVERGE_S)
        assert first is not None and first.type_url == CDS  # nothing came for the others
        await stream.send(
            hostile.request(CDS, version_info=first.version_info, response_nonce=first.nonce)
        )
        (adsz,) = [
            c for c in istiod.get_json("/debug/adsz")["clients"] if "curious" in c["connectionId"]
        ]
        unknown = [t for t in adsz["watches"] if t != CDS]
        assert len(unknown) == 16
        (istiod.config_dir / "after-unknown.yaml").write_text(hostile.service_yaml("after-unk"))
        pushed = await stream.recv(CONVERGE_S)
        assert pushed is not None and pushed.type_url == CDS
    finally:
        await stream.close()


async def test_burst_of_connections_leaves_istiod_clean(istiod: IstiodProcess) -> None:
    """Connections opened and closed at once: istiod stays healthy, a healthy proxy converges
    during the burst, no stream is left behind and memory comes back near its baseline."""
    healthy = hostile.Healthy(istiod.grpc_addr, ip="127.20.1.6")
    await healthy.start()
    try:
        await healthy.wait_for("seed", CONVERGE_S)
        rss_before = pid_memory_mb(istiod.pid)[0]
        burst = hostile.asyncio.get_running_loop().create_task(hostile.burst(istiod.grpc_addr, 300))
        await change_converges(istiod, healthy, "during-burst")
        opened = await burst
        assert opened.answered == 300 and opened.seconds < 30, opened
        await hostile.poll(lambda: clients(istiod) == 1, 10.0, "burst streams gone")
        assert metric(istiod, "pilot_xds") == 1  # Istio's gauge of connected proxies
        rss_first = pid_memory_mb(istiod.pid)[0]
        again = await hostile.burst(istiod.grpc_addr, 300)
        assert again.answered == 300, again
        await hostile.poll(lambda: clients(istiod) == 1, 10.0, "burst streams gone")
        rss_after = pid_memory_mb(istiod.pid)[0]
        # Near the baseline, and a second burst does not add to the first (no leak).
        assert rss_after - rss_before < 40, (rss_before, rss_first, rss_after)
        assert rss_after - rss_first < 15, (rss_before, rss_first, rss_after)
        assert istiod.get("/ready").status == 200
    finally:
        await healthy.close()


async def test_a_client_that_nacks_everything_causes_no_push_loop(
    istiod: IstiodProcess,
) -> None:
    """Each response is NACKed with its nonce and again without one (unattributable): a NACK
    is never answered, and last-known-good reverts stay bounded per change."""
    healthy = hostile.Healthy(istiod.grpc_addr, ip="127.20.1.7")
    nacker = hostile.Nacker(istiod.grpc_addr, ip="127.20.1.8")
    await healthy.start()
    await nacker.start()
    try:
        await healthy.wait_for("seed", CONVERGE_S)
        await hostile.poll(lambda: len(nacker.responses) >= 2, CONVERGE_S, "CDS and LDS")
        changes = 3
        for i in range(changes):
            await change_converges(istiod, healthy, f"nacked-{i}")
        # A bounded window after the last change: the count must have stopped growing.
        settled = await _settled(nacker)
        # Initial CDS + LDS, then per change at most its push and one revert, per type.
        assert settled <= 2 + changes * 4, nacker.responses
    finally:
        await nacker.close()
        await healthy.close()


async def _settled(nacker: hostile.Nacker, quiet: float = 1.0, limit: float = 10.0) -> int:
    """The NACKer's response count once no response came for `quiet` seconds (bounded)."""
    deadline = hostile.time.monotonic() + limit
    while hostile.time.monotonic() < deadline:
        seen = len(nacker.responses)
        try:
            await hostile.poll(
                lambda seen=seen: len(nacker.responses) > seen, quiet, "another response"
            )
        except TimeoutError:
            return seen
    raise AssertionError(f"the NACKing client is still sent responses: {len(nacker.responses)}")


def _stuck_config(config_dir: Path) -> None:
    # Enough clusters (~100 KB of CDS) to fill the HTTP/2 window of a client that never reads.
    docs = [hostile.service_yaml(f"svc-{i}") for i in range(300)]
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "services.yaml").write_text("---\n".join([hostile.service_yaml("seed"), *docs]))


async def test_a_client_that_never_reads_is_dropped_after_the_send_timeout(
    istiod_factory: Callable[..., IstiodProcess], tmp_path: Path
) -> None:
    """PILOT_XDS_SEND_TIMEOUT: istiod forgets a stream whose proxy has not taken a response
    within it; the connection itself is closed at --keepalive-max-server-connection-age."""
    config = tmp_path / "stuck-config"
    _stuck_config(config)
    proc = istiod_factory(
        config,
        env={"PILOT_XDS_SEND_TIMEOUT": "1s"},
        extra_args=["--keepalive-max-server-connection-age", "1s"],
    )
    healthy = hostile.Healthy(proc.grpc_addr, ip="127.20.1.9")
    stuck = hostile.NonReader(proc.grpc_addr, ip="127.20.1.10")
    await healthy.start()
    await healthy.wait_for("seed", CONVERGE_S)
    rss_before = pid_memory_mb(proc.pid)[0]
    try:
        await stuck.start()
        await hostile.poll(lambda: clients(proc) == 2, CONVERGE_S, "the stuck client connected")
        (config / "more.yaml").write_text(hostile.service_yaml("more"))
        await healthy.wait_for("more", CONVERGE_S)
        await hostile.poll(lambda: clients(proc) == 1, 5.0, "the stuck stream dropped")
        assert metric(proc, "pilot_xds_write_timeout") >= 1
        assert "timeout sending a response" in proc.log_tail(200)
        (config / "after.yaml").write_text(hostile.service_yaml("after"))
        await healthy.wait_for("after", CONVERGE_S)
        assert pid_memory_mb(proc.pid)[0] - rss_before < 20
        # The HTTP/2 connection is closed past its maximum age (+10% jitter) and 10 s grace.
        code, details = await stuck.stream.status(timeout=20.0)
        assert code is grpc.StatusCode.UNAVAILABLE, (code, details)
    finally:
        await stuck.close()
        await healthy.close()
