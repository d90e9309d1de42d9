"""The floor: an ideal SotW ADS server that does no translation, to measure istiod against.

The goal: istiod's per-proxy CPU cost of a push is at most 3 times the cost of just serializing
and writing the same bytes. The floor measures the latter in the same run:

1. `fetch_responses` takes the very DiscoveryResponses istiod sends a sidecar (raw bytes per
   type) over one SotW ADS stream in Envoy's order: CDS wildcard → EDS (the clusters' EDS
   names) → LDS wildcard → RDS (the listeners' route names), each ACKed.
2. `FloorServer` runs `python -m benchmarks.floor serve --responses FILE --port 0`, a process
   of its own whose CPU (user+sys, all threads, gRPC C-core included) is read from /proc like
   istiod's. It parses the responses once and serves ADS StreamAggregatedResources (grpc.aio,
   127.0.0.1, no message size limits). Per stream and type URL it keeps the nonce last sent
   and the names last requested: that nonce with the same names is an ACK (nothing is sent);
   a first request, an empty nonce or new names get the whole held response of that type
   (EDS and RDS whole too: the clients subscribe to exactly those names); a stale nonce is
   ignored.
3. `push(kind)` writes to every stream that has the types: "route" → the RDS response;
   "cluster" → the CDS response, then an EDS response with only the ClusterLoadAssignment of
   `bench-target` (else the first); "endpoint" → that EDS response alone. A push gets a new
   version_info, each write a new nonce. It returns once every write has completed; the
   server reads the clients' ACKs (counted in `stats()`).

Default (per stream): the held message gets the stream's nonce set in place (no copy of the
resources) and is serialized for that stream, then written: "serializing and writing the same
bytes", once per proxy. `shared_bytes=True` (`--shared-bytes`) is the lower floor of a server
caching bytes: one serialization per version (one nonce), the same bytes to every stream.

Control lines (stdin/stdout): `ready PORT PID`; `push KIND` → `pushed KIND N`;
`stats` → `stats {json}`; `quit` or EOF ends the server, as do SIGTERM and SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from benchmarks.adsclient import CDS, EDS, LDS, RDS, SHORT, SOTW_METHOD, ClientSpec, node_for
from benchmarks.adsparse import eds_service_name, first_string_field, listener_route_names
from benchmarks.procs import pid_cpu_seconds, terminate

REPO_ROOT = Path(__file__).resolve().parents[1]
TYPE_URLS = {short: url for url, short in SHORT.items()}
TARGET_MARK = "bench-target"
# Held messages a push writes, in order ("EDS1": EDS with the one target assignment).
PUSH_KEYS: dict[str, tuple[str, ...]] = {
    "route": ("RDS",),
    "cluster": ("CDS", "EDS1"),
    "endpoint": ("EDS1",),
}
_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
_LARGE = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
Response = discovery_pb2.DiscoveryResponse
Request = discovery_pb2.DiscoveryRequest


class FloorError(RuntimeError):
    pass


# ---- what istiod sends ---------------------------------------------------------------------


def fetch_responses(target: str, spec: ClientSpec, timeout: float) -> dict[str, bytes]:
    """istiod's raw DiscoveryResponse per short type ("CDS", "EDS", "LDS", "RDS"), fetched
    like Envoy does at start-up (a type is missing only when nothing subscribes to it)."""
    return asyncio.run(asyncio.wait_for(_fetch(target, spec), timeout))


async def _fetch(target: str, spec: ClientSpec) -> dict[str, bytes]:
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        method: Any = channel.stream_stream(
            SOTW_METHOD, request_serializer=Request.SerializeToString, response_deserializer=None
        )
        call = method()
        try:
            return await _envoy_order(call, spec)
        finally:
            call.cancel()


async def _envoy_order(call: Any, spec: ClientSpec) -> dict[str, bytes]:
    """CDS → EDS(names) → ACK CDS → LDS → ACK EDS → RDS(names) → ACK LDS → ACK RDS."""
    got: dict[str, bytes] = {}
    wanted: dict[str, set[str]] = {}  # type URL → names requested (present once requested)

    async def request(
        type_url: str, names: Iterable[str], nonce: str = "", version: str = ""
    ) -> None:
        req = Request(
            type_url=type_url,
            resource_names=sorted(names),
            version_info=version,
            response_nonce=nonce,
        )
        if not wanted:
            req.node.CopyFrom(node_for(spec))
        wanted.setdefault(type_url, set(req.resource_names))
        await call.write(req)

    await request(CDS, ())
    while LDS not in wanted or any(SHORT[t] not in got for t in wanted):
        raw = await call.read()
        if raw is grpc.aio.EOF:
            raise FloorError(f"the ADS stream ended; have {sorted(got)}")
        resp = Response.FromString(raw)
        type_url = resp.type_url
        if type_url not in SHORT:
            continue
        got[SHORT[type_url]] = bytes(raw)
        if type_url == CDS:
            eds = {n for n in (eds_service_name(a.value) for a in resp.resources) if n}
            if eds and EDS not in wanted:
                await request(EDS, eds)
        elif type_url == LDS:
            routes: set[str] = set()
            for any_ in resp.resources:
                routes.update(listener_route_names(any_.value))
            if routes and RDS not in wanted:
                await request(RDS, routes)
        if LDS not in wanted and "CDS" in got and (EDS not in wanted or "EDS" in got):
            await request(LDS, ())
        await request(type_url, wanted[type_url], resp.nonce, resp.version_info)  # ACK
    return got


def save_responses(path: Path, responses: dict[str, bytes]) -> None:
    data = {k: base64.b64encode(v).decode() for k, v in responses.items()}
    path.write_text(json.dumps(data))


def load_responses(path: Path) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in json.loads(path.read_text()).items()}


# ---- the server (runs in the subprocess) ---------------------------------------------------


class _Stream:
    __slots__ = ("context", "lock", "names", "nonces")

    def __init__(self, context: Any) -> None:
        self.context = context
        self.lock = asyncio.Lock()  # one write at a time on a call
        self.nonces: dict[str, str] = {}  # type URL → nonce last sent
        self.names: dict[str, list[str]] = {}  # type URL → names last requested


class FloorService:
    def __init__(self, responses: dict[str, bytes], shared_bytes: bool) -> None:
        self.messages: dict[str, Any] = {
            short: Response.FromString(responses[short])
            if short in responses
            else Response(type_url=url)
            for short, url in TYPE_URLS.items()
        }
        eds = self.messages["EDS"]
        names = [first_string_field(a.value) for a in eds.resources]
        pick = next((i for i, n in enumerate(names) if TARGET_MARK in n), 0)
        one = Response(type_url=EDS, version_info=eds.version_info)
        if eds.resources:
            one.resources.append(eds.resources[pick])
        self.messages["EDS1"] = one
        self.shared = shared_bytes
        self.cache: dict[str, tuple[str, bytes]] = {}  # shared mode: key → (nonce, bytes)
        self.streams: set[_Stream] = set()
        self.nonces = itertools.count(1)
        self.counts = {"requests": 0, "acks": 0, "ignored": 0, "writes": 0, "pushes": 0}

    def _encode(self, key: str) -> tuple[str, bytes]:
        if self.shared and key in self.cache:
            return self.cache[key]
        msg = self.messages[key]
        msg.nonce = nonce = str(next(self.nonces))
        encoded = (nonce, msg.SerializeToString())
        if self.shared:
            self.cache[key] = encoded
        return encoded

    async def _send(self, stream: _Stream, key: str) -> None:
        nonce, data = self._encode(key)  # synchronous: no other task sees `msg.nonce` change
        stream.nonces[self.messages[key].type_url] = nonce
        await stream.context.write(data)
        self.counts["writes"] += 1

    async def stream(self, _requests: Any, context: Any) -> None:
        stream = _Stream(context)
        self.streams.add(stream)
        try:
            while True:
                req = await context.read()
                if req is grpc.aio.EOF:
                    return
                await self._on_request(stream, req)
        finally:
            self.streams.discard(stream)

    async def _on_request(self, stream: _Stream, req: Any) -> None:
        self.counts["requests"] += 1
        type_url = req.type_url
        if type_url not in SHORT:
            return
        names = list(req.resource_names)
        last = stream.nonces.get(type_url)
        if last is not None and req.response_nonce:
            if req.response_nonce != last:
                self.counts["ignored"] += 1  # stale nonce
                return
            if names == stream.names.get(type_url):
                self.counts["acks"] += 1  # ACK (or NACK): nothing to send
                return
        stream.names[type_url] = names
        async with stream.lock:
            await self._send(stream, SHORT[type_url])

    async def push(self, kind: str) -> int:
        keys = PUSH_KEYS[kind]
        self.counts["pushes"] += 1
        version = f"floor-push-{self.counts['pushes']}"
        for key in (*keys, "EDS") if "EDS1" in keys else keys:
            self.messages[key].version_info = version
        self.cache.clear()
        need = {self.messages[k].type_url for k in keys}
        targets = [s for s in self.streams if need <= s.nonces.keys()]
        done = await asyncio.gather(*(self._push_one(s, keys) for s in targets))
        return sum(done)

    async def _push_one(self, stream: _Stream, keys: Sequence[str]) -> bool:
        try:
            async with stream.lock:
                for key in keys:
                    await self._send(stream, key)
        except Exception:  # the stream went away
            return False
        return True

    def stats(self) -> dict[str, int]:
        return {"streams": len(self.streams), **self.counts}


async def serve(responses: dict[str, bytes], port: int, shared_bytes: bool) -> None:
    """Serve until SIGTERM/SIGINT, `quit` or EOF on stdin; control lines on stdin/stdout."""
    service = FloorService(responses, shared_bytes)
    server = grpc.aio.server(options=_LARGE)
    handler: Any = grpc.stream_stream_rpc_method_handler(
        service.stream, request_deserializer=Request.FromString, response_serializer=None
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(_SERVICE, {"StreamAggregatedResources": handler}),)
    )
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async def control() -> None:
        while raw := await reader.readline():  # b"" at EOF
            line = raw.decode().strip()
            words = line.split()
            if not words:
                continue
            if words == ["quit"]:
                return
            if words == ["stats"]:
                say(f"stats {json.dumps(service.stats())}")
            elif len(words) == 2 and words[0] == "push" and words[1] in PUSH_KEYS:
                say(f"pushed {words[1]} {await service.push(words[1])}")
            else:
                say(f"error unknown command {line!r}")

    say(f"ready {bound} {os.getpid()}")
    tasks = {asyncio.ensure_future(control()), asyncio.ensure_future(stop.wait())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await server.stop(0.5)


# ---- the parent side -----------------------------------------------------------------------


class FloorServer:
    """The floor server as a subprocess, driven over its stdin/stdout."""

    def __init__(self, shared_bytes: bool = False) -> None:
        self.shared_bytes = shared_bytes
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._buf = b""

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self._running().pid

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise FloorError("the floor server is not running")
        return self._proc

    def start(self, responses: dict[str, bytes], timeout: float = 30.0) -> FloorServer:
        self._dir = tempfile.TemporaryDirectory(prefix="xds-floor-")
        path = Path(self._dir.name) / "responses.json"
        save_responses(path, responses)
        argv = [sys.executable, "-m", "benchmarks.floor", "serve", "--responses", str(path)]
        argv += ["--port", "0", *(["--shared-bytes"] if self.shared_bytes else [])]
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=REPO_ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
                bufsize=0,
            )
        try:
            words = self._line(time.monotonic() + timeout).split()
            if words[:1] != ["ready"] or len(words) < 2:
                raise FloorError(f"unexpected line from the floor server: {words}")
            self.port = int(words[1])
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def log_path(self) -> Path:
        if self._dir is None:
            raise FloorError("the floor server was not started")
        return Path(self._dir.name) / "floor.log"

    def _line(self, deadline: float) -> str:
        stdout: IO[bytes] = self._running().stdout  # type: ignore[assignment]
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from the floor server\n{self.tail()}")
            if select.select([stdout], [], [], left)[0]:
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    raise FloorError(f"the floor server exited\n{self.tail()}")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def _command(self, line: str, timeout: float) -> str:
        stdin: IO[bytes] = self._running().stdin  # type: ignore[assignment]
        stdin.write(line.encode() + b"\n")
        stdin.flush()
        answer = self._line(time.monotonic() + timeout)
        if answer.startswith("error"):
            raise FloorError(answer)
        return answer

    def push(self, kind: str, timeout: float = 60.0) -> int:
        """Write a push of `kind` to every stream; returns once all writes are done, with the
        number of streams written to."""
        if kind not in PUSH_KEYS:
            raise ValueError(f"unknown push kind {kind!r}")
        words = self._command(f"push {kind}", timeout).split()
        if words[:2] != ["pushed", kind] or len(words) != 3:
            raise FloorError(f"unexpected answer to push: {words}")
        return int(words[2])

    def stats(self, timeout: float = 10.0) -> dict[str, int]:
        """streams, requests, acks, ignored (stale nonces), writes, pushes."""
        word, _, data = self._command("stats", timeout).partition(" ")
        if word != "stats":
            raise FloorError(f"unexpected answer to stats: {word} {data}")
        result: dict[str, int] = json.loads(data)
        return result

    def streams(self, timeout: float = 10.0) -> int:
        return self.stats(timeout)["streams"]

    def cpu_seconds(self) -> float:
        """user+sys CPU seconds of the server process (all threads) so far."""
        return pid_cpu_seconds(self.pid)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, FloorError):
            return ""

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        proc, code = self._proc, None
        if proc is not None:
            terminate(proc, timeout)
            for pipe in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    if pipe is not None:
                        pipe.close()
            code = proc.returncode
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor")
    serve_p = parser.add_subparsers(dest="command", required=True).add_parser("serve")
    serve_p.add_argument("--responses", type=Path, required=True, help="from save_responses")
    serve_p.add_argument("--port", type=int, default=0)
    serve_p.add_argument("--shared-bytes", action="store_true")
    args = parser.parse_args(argv)
    asyncio.run(serve(load_responses(args.responses), args.port, args.shared_bytes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
