"""A stand-in for `istiod` that honours only its process contract (DESIGN.md §2.1).

Used by test_harness.py to exercise IstiodProcess without the real istiod: binds every
`--<name>-addr` (`:0` = ephemeral), prints `listening <name> <host:port>` on stderr, serves
`/ready` (503 until FAKE_ISTIOD_READY_DELAY seconds have passed, then 200), `/version` and
`/debug/fake` over HTTP, counts its starts in the state dir, and exits 0 on SIGTERM.
FAKE_ISTIOD_NOISE=N writes N lines of filler to stderr before listening (a parent that does
not drain the pipe would block it); FAKE_ISTIOD_IGNORE_TERM=1 ignores SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_ADDR_FLAGS = ("grpc", "secure-grpc", "http", "monitoring", "webhook")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fake-istiod")
    parser.add_argument("--config-dir", action="append", default=[])
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--mesh-config")
    for name in _ADDR_FLAGS:
        parser.add_argument(f"--{name}-addr", dest=name.replace("-", "_"))
    return parser.parse_args(argv)


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    info: dict[str, Any] = {}
    ready_at = 0.0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/ready":
            ready = time.monotonic() >= self.ready_at
            self._send(200 if ready else 503, {"ready": ready})
        elif self.path == "/version":
            self._send(200, {"version": "fake"})
        elif self.path == "/debug/fake":
            self._send(200, self.info)
        else:
            self._send(404, {"error": "not found"})

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    starts_file = state / "starts"
    starts = int(starts_file.read_text()) + 1 if starts_file.exists() else 1
    starts_file.write_text(str(starts))

    for i in range(int(os.environ.get("FAKE_ISTIOD_NOISE", "0"))):
        print(f"noise {i:06d} " + "x" * 200, file=sys.stderr)

    stop = threading.Event()
    if os.environ.get("FAKE_ISTIOD_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())

    sockets: list[socket.socket] = []
    bound: dict[str, str] = {}
    http_server: ThreadingHTTPServer | None = None
    for name in _ADDR_FLAGS:
        addr = getattr(args, name.replace("-", "_"))
        if addr is None:
            continue
        if name == "http":
            http_server = ThreadingHTTPServer(_split(addr), _Handler)
            http_server.daemon_threads = True
            host, port = str(http_server.server_address[0]), http_server.server_address[1]
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(_split(addr))
            sock.listen(16)
            sockets.append(sock)
            host, port = sock.getsockname()[:2]
        bound[name] = f"{host}:{port}"
        print(f"2026-01-01T00:00:00Z\tinfo\tlistening {name} {host}:{port}", file=sys.stderr)

    _Handler.info = {"pid": os.getpid(), "starts": starts, "addresses": bound}
    _Handler.ready_at = time.monotonic() + float(os.environ.get("FAKE_ISTIOD_READY_DELAY", "0"))
    if http_server is not None:
        threading.Thread(target=http_server.serve_forever, daemon=True).start()
    while not stop.wait(0.1):
        pass
    if http_server is not None:
        http_server.shutdown()
        http_server.server_close()
    for sock in sockets:
        sock.close()
    print("fake istiod: terminated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
