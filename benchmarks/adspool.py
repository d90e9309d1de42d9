"""The simulated Envoys' worker processes, and the parent side that starts them and collects
what they report.

M clients (`benchmarks.adsclient.AdsClient`) are spread over a few processes (`run_worker`),
each running its share on one asyncio loop. A worker puts on one multiprocessing queue:
`WorkerReady` once started, batches of `Record` / `ClientEvent` every 20 ms, and `WorkerDone`
(with its CPU time) at the end. Every worker stops at an absolute deadline or when told to.

In the parent, `ClientPool` owns the processes, the queue and the go/stop events, and
`Collector` keeps what arrived: every response record, and each client's connect and synced
times and errors.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.adsclient import AdsClient, ClientEvent, ClientSpec, Record

# ---- worker process ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerReady:
    worker: int


@dataclass(frozen=True, slots=True)
class WorkerDone:
    worker: int
    cpu_seconds: float  # user+sys of the worker process
    clients: int


def run_worker(
    worker: int,
    specs: list[ClientSpec],
    target: str,
    delta: bool,
    out: Any,  # multiprocessing Queue: WorkerReady, lists of Record/ClientEvent, WorkerDone
    go: Any,  # multiprocessing Event: start connecting
    stop: Any,  # multiprocessing Event: stop now
    deadline: float,  # time.monotonic() after which every client stops
    connect_spread: float = 0.0,  # seconds over which client starts are spread
    reconnect: Any = None,  # multiprocessing Event: each time it is set, every client reconnects
) -> None:
    """Process entry point: run `specs` clients until `stop` or `deadline`."""
    try:
        asyncio.run(
            _worker_main(
                worker, specs, target, delta, out, go, stop, deadline, connect_spread, reconnect
            )
        )
    finally:
        cpu = os.times()
        out.put(WorkerDone(worker, cpu.user + cpu.system, len(specs)))


async def _worker_main(
    worker: int,
    specs: list[ClientSpec],
    target: str,
    delta: bool,
    out: Any,
    go: Any,
    stop_mp: Any,
    deadline: float,
    connect_spread: float,
    reconnect_mp: Any = None,
) -> None:
    batch: list[Record | ClientEvent] = []

    def emit(item: Record | ClientEvent) -> None:
        batch.append(item)

    async def flush_forever() -> None:
        while True:
            await asyncio.sleep(0.02)
            flush()

    def flush() -> None:
        if batch:
            out.put(list(batch))
            batch.clear()

    stop = asyncio.Event()
    out.put(WorkerReady(worker))
    loop = asyncio.get_running_loop()
    while not go.is_set():  # wait for the parent's go without blocking the loop for long
        if time.monotonic() > deadline or stop_mp.is_set():
            return
        await asyncio.sleep(0.005)

    reconnects = [asyncio.Event() for _ in specs]

    async def watch_stop() -> None:
        armed = True  # the parent's reconnect event is level-triggered: act once per setting
        while not stop_mp.is_set() and time.monotonic() < deadline:
            if reconnect_mp is not None and reconnect_mp.is_set():
                if armed:
                    for event in reconnects:
                        event.set()
                    armed = False
            else:
                armed = True
            await asyncio.sleep(0.02)
        stop.set()

    async def start_client(client: AdsClient, delay: float, reconnect: asyncio.Event) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await client.run(stop, reconnect)
        except Exception as e:  # keep the other clients going; report the failure
            emit(ClientEvent(client.spec.index, "error", time.monotonic(), repr(e)))

    flusher = loop.create_task(flush_forever())
    watcher = loop.create_task(watch_stop())
    clients = [AdsClient(spec, target, delta, emit) for spec in specs]
    step = connect_spread / max(1, len(clients))
    try:
        await asyncio.gather(
            *(start_client(c, i * step, reconnects[i]) for i, c in enumerate(clients))
        )
    finally:
        watcher.cancel()
        flusher.cancel()
        flush()


def drain(q: Any, timeout: float) -> list[Any]:
    """Everything available on a multiprocessing queue within `timeout` (at least one get)."""
    items: list[Any] = []
    try:
        items.append(q.get(timeout=timeout))
        while True:
            items.append(q.get_nowait())
    except queue.Empty:
        pass
    return items


# ---- parent side -------------------------------------------------------------------------


class Collector:
    """Everything the workers reported so far."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.records: list[Record] = []
        self.connected: dict[int, float] = {}
        self.synced: dict[int, float] = {}
        self.reconnected: dict[int, float] = {}  # the latest reconnect of each client
        self.errors: list[ClientEvent] = []
        self.ready: set[int] = set()
        self.done: dict[int, WorkerDone] = {}
        self.last_record_at = 0.0

    def add(self, items: Sequence[Any]) -> None:
        for item in items:
            if isinstance(item, WorkerReady):
                self.ready.add(item.worker)
            elif isinstance(item, WorkerDone):
                self.done[item.worker] = item
            else:
                for entry in item:
                    self._add(entry)

    def _add(self, entry: Record | ClientEvent) -> None:
        if isinstance(entry, Record):
            self.records.append(entry)
            self.last_record_at = max(self.last_record_at, entry.received)
        elif entry.kind == "connected":
            self.connected[entry.client] = entry.at
        elif entry.kind == "synced":
            self.synced[entry.client] = entry.at
        elif entry.kind == "reconnected":
            self.reconnected[entry.client] = entry.at
        elif entry.kind in ("error",):
            self.errors.append(entry)

    def since(self, t: float) -> list[Record]:
        return [r for r in self.records if r.received >= t]


class ClientPool:
    """`clients` simulated Envoys in worker processes (spawned, so nothing of the parent's
    state leaks in), started together on `go()`."""

    def __init__(self, clients: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._ctx = ctx
        self._queue: Any = ctx.Queue()
        self._go: Any = ctx.Event()
        self._stop: Any = ctx.Event()
        self._reconnect: Any = ctx.Event()
        self.procs: list[Any] = []
        self.collector = Collector(clients)

    def start(
        self,
        specs: list[ClientSpec],
        target: str,
        delta: bool,
        workers: int,
        deadline: float,
        connect_spread: float,
        ready_by: float,
    ) -> None:
        """Start the worker processes (up to `workers`, at most one per client) and wait
        until each has reported ready; the clients connect only on `go()`."""
        workers = max(1, min(workers, len(specs)))
        for w in range(workers):
            chunk = specs[w::workers]
            proc = self._ctx.Process(
                target=run_worker,
                args=(
                    w,
                    chunk,
                    target,
                    delta,
                    self._queue,
                    self._go,
                    self._stop,
                    deadline,
                    connect_spread,
                    self._reconnect,
                ),
                name=f"ads-worker-{w}",
                daemon=True,
            )
            proc.start()
            self.procs.append(proc)
        while len(self.collector.ready) < workers:
            if time.monotonic() > ready_by:
                raise TimeoutError("ADS worker processes did not start")
            if any(p.exitcode not in (None, 0) for p in self.procs):
                raise RuntimeError("an ADS worker process died at start")
            self.pump(0.05)

    def go(self) -> None:
        """Every client connects now (or over its worker's connect spread)."""
        self._go.set()

    def reconnect(self) -> None:
        """Every client drops its stream and connection and resumes on a new one (once per
        call; `reconnected()` re-arms)."""
        self._reconnect.set()

    def reconnected(self) -> None:
        self._reconnect.clear()

    def pump(self, timeout: float) -> None:
        """Take what the workers reported within `timeout` (waits for at least one item)."""
        self.collector.add(drain(self._queue, timeout))

    def stop(self, grace: float = 10.0) -> None:
        """Tell every worker to stop, collect their last reports, and join them (terminating
        any still alive after `grace` seconds)."""
        self._stop.set()
        end = time.monotonic() + grace
        while len(self.collector.done) < len(self.procs) and time.monotonic() < end:
            self.pump(0.05)
        for proc in self.procs:
            proc.join(max(0.1, end - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(2)

    def close(self) -> None:
        self._queue.close()
        self._queue.join_thread()

    @property
    def cpu_seconds(self) -> float:
        """User+sys CPU of the worker processes that reported done."""
        return sum(d.cpu_seconds for d in self.collector.done.values())
