"""Hostile and broken xDS clients (issue 8, item 3), and a scenario that runs them against a real
istiod while a healthy client keeps converging.

Every client is a raw grpc.aio ADS stream on its own HTTP/2 connection:
- `refusal`: one request (a malformed node, an oversized message) and the status it gets;
- `burst`: N connections opened (node + CDS request) and closed at once;
- `NonReader`: subscribes and never reads (HTTP/2 flow control stalls istiod's writes);
- `Nacker`: NACKs every response, each NACK followed by an unattributable one (no nonce);
- `Healthy`: an Envoy-like CDS client that ACKs everything, to time convergence.

Full size (printed figures, see docs/reliability.md §3):

    .venv/bin/python -m benchmarks.hostile --connections 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

from benchmarks.adsclient import CDS, LDS, SOTW_METHOD
from benchmarks.istiod_proc import IstiodProcess

MAX_MESSAGE = 4 * 1024 * 1024
T = TypeVar("T")


def node(
    name: str = "app.default",
    ip: str = "127.0.20.1",
    metadata: Mapping[str, Any] | None = None,
    node_id: str | None = None,
) -> base_pb2.Node:
    namespace = name.split(".", 1)[1]
    fields: dict[str, Any] = {"NAMESPACE": namespace, "INSTANCE_IPS": ip}
    fields.update(metadata or {})
    md = struct_pb2.Struct()
    md.update(fields)
    if node_id is None:
        node_id = f"sidecar~{ip}~{name}~{namespace}.svc.cluster.local"
    return base_pb2.Node(id=node_id, metadata=md)


def request(
    type_url: str = CDS, nd: base_pb2.Node | None = None, **fields: Any
) -> discovery_pb2.DiscoveryRequest:
    out = discovery_pb2.DiscoveryRequest(type_url=type_url, **fields)
    if nd is not None:
        out.node.CopyFrom(nd)
    return out


class Stream:
    """One SotW ADS stream on its own connection."""

    def __init__(self, target: str, options: Sequence[tuple[str, Any]] = ()) -> None:
        self.channel = grpc.aio.insecure_channel(
            target, options=[("grpc.max_receive_message_length", 64 << 20), *options]
        )
        method = self.channel.stream_stream(
            SOTW_METHOD,
            request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
            response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
        )
        self.call: Any = method()

    async def send(self, req: discovery_pb2.DiscoveryRequest) -> None:
        await self.call.write(req)

    async def recv(self, timeout: float) -> discovery_pb2.DiscoveryResponse | None:
        """The next response; None at the end of the stream (or the call failing)."""
        try:
            got = await asyncio.wait_for(self.call.read(), timeout)
        except grpc.aio.AioRpcError:
            return None
        return None if got is grpc.aio.EOF else got

    async def status(self, timeout: float = 10.0) -> tuple[grpc.StatusCode, str]:
        """Read to the end and return the stream's status."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(TimeoutError):
            while await self.recv(max(0.01, deadline - time.monotonic())) is not None:
                pass
        code = await asyncio.wait_for(self.call.code(), timeout)
        return code, await self.call.details()

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


async def refusal(
    target: str, req: discovery_pb2.DiscoveryRequest, timeout: float = 10.0
) -> tuple[grpc.StatusCode, str]:
    """Send one request and return the status istiod ends the stream with."""
    stream = Stream(target)
    try:
        await stream.send(req)
        return await stream.status(timeout)
    finally:
        await stream.close()


@dataclass(frozen=True, slots=True)
class Burst:
    seconds: float
    answered: int  # connections that got their CDS response before closing


async def burst(target: str, count: int, concurrency: int = 200) -> Burst:
    """Open `count` connections (each a node + CDS request, waiting for the answer), then close
    them, `concurrency` at a time."""
    started = time.monotonic()
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> bool:
        async with gate:
            ip = f"127.21.{i // 250}.{i % 250 + 1}"
            stream = Stream(target)
            try:
                await stream.send(request(CDS, node(f"burst-{i}.default", ip)))
                return await stream.recv(30.0) is not None
            finally:
                await stream.close()

    answered = await asyncio.gather(*(one(i) for i in range(count)))
    return Burst(time.monotonic() - started, sum(answered))


class NonReader:
    """Subscribes to CDS and LDS and never reads: istiod's writes to it stall."""

    def __init__(self, target: str, name: str = "stuck.default", ip: str = "127.20.0.9") -> None:
        # A small window so a few responses fill it (no BDP probing to grow it).
        self.stream = Stream(
            target, [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]
        )
        self.node = node(name, ip)

    async def start(self) -> None:
        await self.stream.send(request(CDS, self.node))
        await self.stream.send(request(LDS))

    async def close(self) -> None:
        await self.stream.close()


class Nacker:
    """NACKs every response it gets (with its nonce), then NACKs again without a nonce."""

    def __init__(self, target: str, name: str = "nacker.default", ip: str = "127.20.0.8") -> None:
        self.stream = Stream(target)
        self.node = node(name, ip)
        self.responses: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.stream.send(request(CDS, self.node))
        await self.stream.send(request(LDS))
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            got = await self.stream.recv(3600.0)
            if got is None:
                return
            self.responses.append(time.monotonic())
            for nonce in (got.nonce, ""):
                await self.stream.send(
                    request(
                        got.type_url,
                        response_nonce=nonce,
                        error_detail={"code": 3, "message": "rejected by a hostile client"},
                    )
                )

    def since(self, at: float) -> int:
        return sum(1 for t in self.responses if t >= at)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.stream.close()


class Healthy:
    """An Envoy-like CDS client: ACKs every response and remembers the clusters it has."""

    def __init__(self, target: str, name: str = "healthy.default", ip: str = "127.20.0.2") -> None:
        self.stream = Stream(target)
        self.node = node(name, ip)
        self.clusters: set[str] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.stream.send(request(CDS, self.node))
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            got = await self.stream.recv(3600.0)
            if got is None:
                return
            self.clusters = {cluster_pb2.Cluster.FromString(r.value).name for r in got.resources}
            self._changed.set()
            await self.stream.send(
                request(got.type_url, version_info=got.version_info, response_nonce=got.nonce)
            )

    async def wait_for(self, needle: str, timeout: float) -> float:
        """Seconds until a cluster containing `needle` arrives (TimeoutError past `timeout`)."""
        started = time.monotonic()
        async with asyncio.timeout(timeout):
            while not any(needle in c for c in self.clusters):
                self._changed.clear()
                await self._changed.wait()
        return time.monotonic() - started

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.stream.close()


async def poll(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """Await until `predicate()` is truthy (checked every 50 ms) and return it; TimeoutError
    naming `what` past `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s (last: {value!r})")
        await asyncio.sleep(0.05)


def service_yaml(name: str, port: int = 80) -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        f"spec:\n  hosts: [{name}.example.com]\n"
        f"  ports: [{{number: {port}, name: http, protocol: HTTP}}]\n"
        "  resolution: STATIC\n  endpoints: [{address: 10.9.0.1}]\n"
    )


@dataclass(frozen=True, slots=True)
class Figures:
    connections: int
    bursts: list[Burst]
    stuck: int
    stuck_dropped_s: float
    rss_before_mb: float
    rss_after_burst_mb: list[float]
    rss_after_mb: float
    clients_after: int
    convergence_s: list[float]
    nacker_responses: int
    changes: int

    def lines(self) -> list[str]:
        conv = ", ".join(f"{c * 1000:.0f}" for c in self.convergence_s)
        rounds = ", ".join(f"{b.seconds:.1f}s ({b.answered} answered)" for b in self.bursts)
        rss = " / ".join(f"{r:.0f}" for r in self.rss_after_burst_mb)
        return [
            f"bursts of {self.connections} connections opened and closed: {rounds}",
            f"{self.stuck} clients that never read: all dropped {self.stuck_dropped_s:.1f}s "
            "after connecting",
            f"RSS MiB before: {self.rss_before_mb:.0f}; after each burst: {rss}; "
            f"at the end: {self.rss_after_mb:.0f}",
            f"clients left at the end: {self.clients_after} (the healthy one)",
            f"healthy proxy convergence per change during the abuse (ms): {conv}",
            f"responses to the NACKing client over {self.changes} changes: {self.nacker_responses}",
        ]


async def scenario(
    istiod: IstiodProcess, config_dir: Path, connections: int, rounds: int = 3, stuck: int = 20
) -> Figures:
    target = istiod.grpc

    def connected() -> int:
        return int(istiod.get_json("/debug/connections")["totalClients"])

    healthy = Healthy(target)
    nacker = Nacker(target)
    readers = [NonReader(target, f"stuck-{i}.default", f"127.22.0.{i + 1}") for i in range(stuck)]
    await healthy.start()
    await healthy.wait_for("seed", 10.0)
    rss_before = istiod.rss_mb()[0]
    await nacker.start()
    stuck_at = time.monotonic()
    for reader in readers:
        await reader.start()
    convergence = []
    nack_start = time.monotonic()
    loop = asyncio.get_running_loop()
    first = loop.create_task(burst(target, connections))
    changes = 3
    for i in range(changes):
        (config_dir / f"change-{i}.yaml").write_text(service_yaml(f"change-{i}"))
        convergence.append(await healthy.wait_for(f"change-{i}", 30.0))
    bursts = [await first]
    rss_after_burst = [istiod.rss_mb()[0]]
    for _ in range(rounds - 1):
        bursts.append(await burst(target, connections))
        rss_after_burst.append(istiod.rss_mb()[0])
    await poll(lambda: connected() == 2, 60.0, "stuck streams dropped")
    stuck_dropped = time.monotonic() - stuck_at
    nacker_responses = nacker.since(nack_start)
    for reader in readers:
        await reader.close()
    await nacker.close()
    await poll(lambda: connected() == 1, 30.0, "only the healthy client connected")
    clients = connected()
    rss_after = istiod.rss_mb()[0]
    await healthy.close()
    return Figures(
        connections,
        bursts,
        stuck,
        stuck_dropped,
        rss_before,
        rss_after_burst,
        rss_after,
        clients,
        convergence,
        nacker_responses,
        changes,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stuck", type=int, default=20)
    parser.add_argument("--send-timeout", default="5s", help="PILOT_XDS_SEND_TIMEOUT")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        config_dir = Path(tmp) / "config"
        config_dir.mkdir()
        # ~100 KB of CDS: enough to fill the HTTP/2 window of a client that never reads.
        docs = [service_yaml("seed"), *(service_yaml(f"svc-{i}") for i in range(300))]
        (config_dir / "seed.yaml").write_text("---\n".join(docs))
        istiod = IstiodProcess(
            config_dir, Path(tmp) / "work", env={"PILOT_XDS_SEND_TIMEOUT": args.send_timeout}
        ).start()
        try:
            figures = asyncio.run(
                scenario(istiod, config_dir, args.connections, args.rounds, args.stuck)
            )
        finally:
            istiod.stop()
    for line in figures.lines():
        print(line)


if __name__ == "__main__":
    main()
