"""Clients that fetch full xDS responses over and over, for the side-by-side run against
sovereign (`benchmarks.sovereign_compare`).

One *fetch* is one full discovery response, received whole by a client that knows nothing:
- **ads** (pyistio, gRPC): a new SotW ADS stream on the client's own HTTP/2 connection, one
  DiscoveryRequest (node, type URL, names, no version, no nonce), read the one response, cancel
  the stream. This is what a restarted Envoy costs istiod, and the only way SotW ADS re-sends
  a full response without a config change (istiod sends an up-to-date stream nothing).
- **rest** (sovereign, HTTP/1.1 REST xDS, the only transport sovereign has): POST
  /v3/discovery:{clusters,routes} on the client's own keep-alive connection, with the same node
  as JSON and `version_info: ""` (so sovereign answers 200 with the full body, never 304), read
  the whole body.

Neither client parses the responses it counts, except its first one (the warm-up, not
counted), which is decoded whole and checked (type, resource count). Request bodies are
serialized once per client. The node is `benchmarks.adsclient.node_for(spec)`, for both.

Clients run closed-loop (the next fetch starts when the previous one is read) on one asyncio
loop per worker process, all starting at the same `start_at` (CLOCK_MONOTONIC, shared by all
processes) after their warm-up, and stopping at `end_at` or after `max_responses`: a fetch
started before `end_at` is completed and counted in `responses`, and in `in_window` when it
completed by `end_at`. Worker processes are spawned once and run one job after another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import queue
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.adsclient import CDS, RDS, SOTW_METHOD, ClientSpec, node_for

TYPE_URLS = {"CDS": CDS, "RDS": RDS}
# What each type's full fetch asks for: every cluster; the one route config of the benchmark's
# sidecars (port 80's, named by its listener).
NAMES: dict[str, tuple[str, ...]] = {"CDS": (), "RDS": ("80",)}
REST_TYPES = {"CDS": "clusters", "RDS": "routes"}


@dataclass(frozen=True, slots=True)
class FetchJob:
    protocol: str  # "ads" | "rest"
    target: str  # ads: host:port; rest: http://host:port
    type: str  # "CDS" | "RDS"
    specs: tuple[ClientSpec, ...]
    start_at: float  # time.monotonic(): counting starts (after every client's warm-up)
    end_at: float  # no fetch starts after this
    max_responses: int  # this worker's share of the bound
    request_timeout: float = 60.0


@dataclass
class FetchResult:
    worker: int
    responses: int = 0  # completed fetches started in [start_at, end_at]
    in_window: int = 0  # of those, completed by end_at
    bytes: int = 0  # response bytes of `responses` (gRPC message / HTTP body)
    min_size: int = 0
    max_size: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # this worker process's user+sys from start_at to its last fetch
    warmup_resources: list[int] = field(default_factory=list)  # per client, first response
    warmup_sizes: list[int] = field(default_factory=list)
    late_clients: int = 0  # clients whose warm-up ended after start_at
    done_at: float = 0.0


def request_body(protocol: str, type_: str, spec: ClientSpec) -> bytes:
    """The request a client sends for one full fetch, serialized once."""
    node = node_for(spec)
    if protocol == "ads":
        from envoy.service.discovery.v3 import discovery_pb2

        req = discovery_pb2.DiscoveryRequest(
            type_url=TYPE_URLS[type_], resource_names=list(NAMES[type_]), node=node
        )
        return bytes(req.SerializeToString())
    from google.protobuf import json_format

    body = {
        "node": json_format.MessageToDict(node, preserving_proto_field_name=True),
        "version_info": "",
        "resource_names": list(NAMES[type_]),
        "type_url": TYPE_URLS[type_],
    }
    return json.dumps(body, separators=(",", ":")).encode()


# ---- one client per protocol -----------------------------------------------------------

Fetch = Callable[[], Awaitable[bytes]]


class _AdsClient:
    def __init__(self, target: str, payload: bytes, timeout: float) -> None:
        import grpc

        self._grpc = grpc
        self.channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.use_local_subchannel_pool", 1),  # a connection of its own
                ("grpc.max_receive_message_length", -1),
            ],
        )
        self.method: Any = self.channel.stream_stream(
            SOTW_METHOD, request_serializer=None, response_deserializer=None
        )
        self.payload = payload
        self.timeout = timeout

    async def fetch(self) -> bytes:
        call = self.method(timeout=self.timeout)
        try:
            await call.write(self.payload)
            raw = await call.read()
        finally:
            call.cancel()
        if raw is self._grpc.aio.EOF:
            raise RuntimeError("ADS stream ended without a response")
        return bytes(raw)

    @staticmethod
    def check(raw: bytes, type_: str) -> int:
        from envoy.service.discovery.v3 import discovery_pb2

        resp = discovery_pb2.DiscoveryResponse.FromString(raw)
        if resp.type_url != TYPE_URLS[type_]:
            raise RuntimeError(f"ADS answered {resp.type_url!r} to a {type_} request")
        return len(resp.resources)

    async def close(self) -> None:
        await self.channel.close()


class _RestClient:
    def __init__(self, base_url: str, type_: str, payload: bytes, timeout: float) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1),  # one keep-alive connection of its own
            timeout=aiohttp.ClientTimeout(total=timeout),
        )
        self.url = f"{base_url}/v3/discovery:{REST_TYPES[type_]}"
        self.payload = payload
        self.headers = {"Content-Type": "application/json"}

    async def fetch(self) -> bytes:
        async with self.session.post(self.url, data=self.payload, headers=self.headers) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {body[:200]!r}")
            return body

    @staticmethod
    def check(raw: bytes, type_: str) -> int:
        doc = json.loads(raw)
        resources = doc.get("resources") or []
        wrong = {r.get("@type") for r in resources} - {TYPE_URLS[type_]}
        if wrong:
            raise RuntimeError(f"REST answered {wrong} to a {type_} request")
        return len(resources)

    async def close(self) -> None:
        await self.session.close()


# ---- worker process ---------------------------------------------------------------------


async def run_job(worker: int, job: FetchJob) -> FetchResult:
    result = FetchResult(worker)
    clients: list[_AdsClient | _RestClient] = []
    for spec in job.specs:
        payload = request_body(job.protocol, job.type, spec)
        if job.protocol == "ads":
            clients.append(_AdsClient(job.target, payload, job.request_timeout))
        else:
            clients.append(_RestClient(job.target, job.type, payload, job.request_timeout))
    check = _AdsClient.check if job.protocol == "ads" else _RestClient.check
    started = 0
    cpu0 = 0.0

    def error(e: BaseException) -> None:
        result.errors += 1
        if len(result.error_samples) < 5:
            result.error_samples.append(repr(e)[:300])

    async def one(client: _AdsClient | _RestClient) -> None:
        nonlocal started
        try:  # warm-up: connect, one full response, decoded and checked; not counted
            raw = await client.fetch()
            result.warmup_resources.append(check(raw, job.type))
            result.warmup_sizes.append(len(raw))
        except Exception as e:
            error(e)
            return
        if time.monotonic() > job.start_at:
            result.late_clients += 1
        await asyncio.sleep(max(0.0, job.start_at - time.monotonic()))
        failures = 0
        while True:
            t0 = time.monotonic()
            if t0 >= job.end_at or started >= job.max_responses:
                return
            started += 1
            try:
                raw = await client.fetch()
            except Exception as e:
                error(e)
                failures += 1
                if failures >= 20:
                    return
                await asyncio.sleep(0.05)
                continue
            t1 = time.monotonic()
            n = len(raw)
            if result.responses == 0:
                result.min_size = result.max_size = n
            else:
                result.min_size = min(result.min_size, n)
                result.max_size = max(result.max_size, n)
            result.responses += 1
            result.bytes += n
            result.latencies_ms.append((t1 - t0) * 1000)
            if t1 <= job.end_at:
                result.in_window += 1

    async def cpu_at_start() -> None:
        nonlocal cpu0
        await asyncio.sleep(max(0.0, job.start_at - time.monotonic()))
        t = os.times()
        cpu0 = t.user + t.system

    try:
        await asyncio.gather(cpu_at_start(), *(one(c) for c in clients))
    finally:
        t = os.times()
        result.cpu_s = t.user + t.system - cpu0
        result.done_at = time.monotonic()
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()
    return result


def worker_main(worker: int, commands: Any, results: Any) -> None:
    """Process entry point: run the jobs from `commands` until None."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        results.put(("ready", worker))
        while True:
            job = await loop.run_in_executor(None, commands.get)
            if job is None:
                return
            try:
                results.put(("result", await run_job(worker, job)))
            except Exception as e:  # report, and stay available for the next job
                results.put(("failed", worker, repr(e)))

    asyncio.run(main())


class FetchPool:
    """`workers` spawned client processes; `submit` hands each its share of a job's clients,
    `collect` waits for their results."""

    def __init__(self, workers: int, ready_timeout: float = 60.0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.results: Any = ctx.Queue()
        self.commands: list[Any] = []
        self.procs: list[Any] = []
        self._pending = 0
        for w in range(workers):
            q = ctx.Queue()
            proc = ctx.Process(
                target=worker_main, args=(w, q, self.results), name=f"fetch-worker-{w}"
            )
            proc.daemon = True
            proc.start()
            self.commands.append(q)
            self.procs.append(proc)
        ready: set[int] = set()
        deadline = time.monotonic() + ready_timeout
        while len(ready) < workers:
            if any(p.exitcode not in (None, 0) for p in self.procs):
                self.close()
                raise RuntimeError("a fetch worker died at start")
            try:
                kind, w = self.results.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                self.close()
                raise TimeoutError("fetch workers did not start") from None
            if kind == "ready":
                ready.add(w)

    @property
    def workers(self) -> int:
        return len(self.procs)

    def submit(
        self,
        protocol: str,
        target: str,
        type_: str,
        specs: Sequence[ClientSpec],
        seconds: float,
        max_responses: int,
        lead: float = 2.0,
        request_timeout: float = 60.0,
    ) -> tuple[float, float]:
        """Start a job on every worker; returns its (start_at, end_at)."""
        start_at = time.monotonic() + lead
        end_at = start_at + seconds
        busy = [w for w in range(self.workers) if specs[w :: self.workers]]
        for w in busy:
            share = max_responses // len(busy) + (1 if w < max_responses % len(busy) else 0)
            self.commands[w].put(
                FetchJob(
                    protocol,
                    target,
                    type_,
                    tuple(specs[w :: self.workers]),
                    start_at,
                    end_at,
                    share,
                    request_timeout,
                )
            )
        self._pending = len(busy)
        return start_at, end_at

    def collect(self, timeout: float) -> list[FetchResult]:
        out: list[FetchResult] = []
        deadline = time.monotonic() + timeout
        while len(out) < self._pending:
            try:
                item = self.results.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(
                    f"{self._pending - len(out)} fetch worker(s) did not report"
                ) from None
            if item[0] == "result":
                out.append(item[1])
            elif item[0] == "failed":
                raise RuntimeError(f"fetch worker {item[1]} failed: {item[2]}")
        return out

    def close(self, grace: float = 5.0) -> None:
        for q in self.commands:
            with contextlib.suppress(Exception):
                q.put(None)
        end = time.monotonic() + grace
        for proc in self.procs:
            proc.join(max(0.1, end - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(2)
