"""Proxyless gRPC for end-to-end tests: an echo server and an xDS client, each its own process.

`python -m tests.e2e.grpc_echo server --name NAME --bind IP:PORT` serves the unary method
`/pyistio.test.Echo/Who` (raw bytes, a generic handler: no codegen) with grpc.aio, answering
`{"name": NAME}`; it prints `listening IP:PORT` once bound and exits when its stdin closes.

`python -m tests.e2e.grpc_echo client --target xds:///HOST:PORT` (with GRPC_XDS_BOOTSTRAP set)
opens one channel and then answers commands read from stdin, one JSON line each:
`run N [KEY=VALUE ...]` makes N calls (bounded: at most MAX_CALLS, within RUN_BUDGET seconds)
with that metadata and reports `{"counts": {name: n}, "errors": {"CODE: details": n},
"seconds": elapsed}`.
gRPC's xDS client is process-global and reads its bootstrap once, hence one process per
bootstrap (DESIGN.md §4); the channel lives as long as the process, so a test sees a running
client follow pushed changes.

`EchoServer` and `XdsClient` drive those processes from a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

METHOD = "/pyistio.test.Echo/Who"
MAX_CALLS = 2000
RUN_BUDGET = 20.0  # seconds one `run` may take at most
CALL_TIMEOUT = 2.0
_REPO_ROOT = Path(__file__).resolve().parents[2]


# ---- the processes ---------------------------------------------------------------------------


async def _serve(name: str, bind: str) -> None:
    import grpc

    async def who(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return json.dumps({"name": name}).encode()

    handler = grpc.method_handlers_generic_handler(
        "pyistio.test.Echo", {"Who": grpc.unary_unary_rpc_method_handler(who)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    host, _, _ = bind.rpartition(":")
    port = server.add_insecure_port(bind)
    await server.start()
    print(f"listening {host}:{port}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the test closes our stdin
    await server.stop(0.5)


def _run(channel: Any, count: int, metadata: list[tuple[str, str]]) -> dict[str, Any]:
    import grpc

    call = channel.unary_unary(METHOD)
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    started = time.monotonic()
    deadline = started + RUN_BUDGET
    for _ in range(min(count, MAX_CALLS)):
        if time.monotonic() > deadline:
            errors["RUN_BUDGET_EXCEEDED"] += 1
            break
        try:
            reply = json.loads(call(b"", timeout=CALL_TIMEOUT, metadata=metadata or None))
        except grpc.RpcError as err:
            errors[f"{err.code().name}: {err.details()}"[:200]] += 1
            continue
        counts[reply["name"]] += 1
    seconds = round(time.monotonic() - started, 4)
    return {"counts": dict(counts), "errors": dict(errors), "seconds": seconds}


def _client(target: str) -> None:
    import grpc

    channel = grpc.insecure_channel(target)
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] != "run" or len(words) < 2:
            print(json.dumps({"error": f"bad command {line!r}"}), flush=True)
            continue
        metadata = [(key, value) for key, _, value in (w.partition("=") for w in words[2:])]
        print(json.dumps(_run(channel, int(words[1]), metadata)), flush=True)
    channel.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="grpc_echo")
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server")
    server.add_argument("--name", required=True)
    server.add_argument("--bind", required=True)
    client = sub.add_parser("client")
    client.add_argument("--target", required=True)
    args = parser.parse_args(argv)
    if args.role == "server":
        asyncio.run(_serve(args.name, args.bind))
    else:
        _client(args.target)


# ---- driving them from a test ----------------------------------------------------------------


class _Process:
    """A child running this module, with its stdout lines on a queue (read by a thread)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_REPO_ROOT), full_env.get("PYTHONPATH", "")) if p
        )
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.grpc_echo", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=_REPO_ROOT,
            env=full_env,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        self._pump_thread = threading.Thread(
            target=self._pump, args=(self.proc.stdout,), daemon=True
        )
        self._pump_thread.start()
        self.log_path = log

    def _pump(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read_line(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout}s\n{self.log_tail()}") from None
        if line is None:
            raise AssertionError(f"process exited ({self.proc.poll()})\n{self.log_tail()}")
        return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()  # the child's signal to finish
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5.0)
        self._pump_thread.join(5.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


class EchoServer(_Process):
    def __init__(self, name: str, ip: str, workdir: Path) -> None:
        super().__init__(
            ["server", "--name", name, "--bind", f"{ip}:0"], {}, workdir / f"server-{name}.log"
        )
        self.name = name
        try:
            line = self.read_line(15.0)
            assert line.startswith("listening "), line
        except BaseException:
            self.stop()
            raise
        host, _, port = line.split()[1].rpartition(":")
        self.ip, self.port = host, int(port)


class XdsClient(_Process):
    """A gRPC client process whose channel resolves `target` through xDS."""

    def __init__(self, target: str, bootstrap: Path, workdir: Path) -> None:
        super().__init__(
            ["client", "--target", target],
            {"GRPC_XDS_BOOTSTRAP": str(bootstrap)},
            workdir / "client.log",
        )
        try:
            assert self.read_line(15.0) == "ready"
        except BaseException:
            self.stop()
            raise

    def run(self, count: int, **metadata: str) -> dict[str, Any]:
        extra = " ".join(f"{k}={v}" for k, v in metadata.items())
        self.send(f"run {count} {extra}".strip())
        result: dict[str, Any] = json.loads(self.read_line(RUN_BUDGET + 10.0))
        return result


def write_bootstrap(path: Path, xds_address: str, node_id: str, metadata: dict[str, Any]) -> Path:
    """A GRPC_XDS_BOOTSTRAP file: istiod's plaintext xDS address, this node's id and metadata
    (what pilot-agent writes for proxyless gRPC, `GENERATOR: grpc` included)."""
    bootstrap = {
        "xds_servers": [
            {
                "server_uri": xds_address,
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"],
            }
        ],
        "node": {"id": node_id, "metadata": metadata, "locality": {}},
    }
    path.write_text(json.dumps(bootstrap, indent=1), encoding="utf-8")
    return path


if __name__ == "__main__":
    main()
