"""Test backends: an HTTP/1.1 server that answers with its own name, and a TCP echo server.

Both run in a background thread, bind `ip:port` (port 0 = ephemeral, read `.port` after
start), count what they receive, set TCP_NODELAY (Python writes headers and body separately;
with Nagle + delayed ACK every request would cost 40 ms) and, on stop, cut open keep-alive
connections so a stopped backend really stops answering.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_IDLE_TIMEOUT = 60.0  # seconds an idle connection's handler thread lingers


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    host: str
    headers: Mapping[str, str]
    body: bytes


class _TrackingMixin:
    """Remembers accepted sockets so `cut_connections` can close them all."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._conns_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        super().__init__(*args, **kwargs)

    def track(self, sock: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(sock)

    def cut_connections(self) -> None:
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _HttpServer(_TrackingMixin, ThreadingHTTPServer):
    daemon_threads = True
    backend: Backend


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = _IDLE_TIMEOUT
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        backend = self.server.backend
        body = self._read_body()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        host = headers.get("host", "")
        count = backend.record(ReceivedRequest(self.command, self.path, host, headers, body))
        payload = {
            "name": backend.name,
            "path": self.path,
            "method": self.command,
            "headers": headers,
            "host": host,
        }
        data = json.dumps(payload).encode()
        failing = backend.fail_every > 0 and count % backend.fail_every == 0
        self.send_response(backend.fail_status if failing else backend.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-backend", backend.name)
        for name, value in backend.extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve


class Backend:
    """HTTP/1.1 server answering every request with 200 (or `.status`) and a JSON echo.

    Body: {"name", "path", "method", "headers", "host"}; response header `x-backend: NAME`.
    With `fail_every=N`, every Nth request it receives (N, 2N, ...) is answered with
    `fail_status` instead.
    """

    def __init__(
        self,
        name: str,
        ip: str = "127.0.0.1",
        port: int = 0,
        *,
        status: int = 200,
        extra_headers: Mapping[str, str] | None = None,
        keep_requests: int = 1000,
        fail_every: int = 0,
        fail_status: int = 503,
    ) -> None:
        self.name = name
        self.ip = ip
        self.status = status  # may be changed while running
        self.extra_headers = dict(extra_headers or {})
        self.fail_every = fail_every  # may be changed while running
        self.fail_status = fail_status
        self._requested_port = port
        self._lock = threading.Lock()
        self._count = 0
        self._requests: deque[ReceivedRequest] = deque(maxlen=keep_requests)
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Backend:
        server = _HttpServer((self.ip, self._requested_port), _Handler)
        server.backend = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.name = f"backend-{self.name}"
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"backend {self.name} is not started")
        port: int = self._server.server_address[1]
        return port

    @property
    def address(self) -> tuple[str, int]:
        return self.ip, self.port

    def record(self, req: ReceivedRequest) -> int:
        """Remember a request; returns how many this backend has received (this one too)."""
        with self._lock:
            self._count += 1
            self._requests.append(req)
            return self._count

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._count

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._count = 0
            self._requests.clear()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.cut_connections()
        if self._thread is not None:
            self._thread.join(5.0)

    def __enter__(self) -> Backend:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{self.ip}:{self.port}" if self._server else "stopped"
        return f"Backend({self.name!r}, {where})"


class _TcpServer(_TrackingMixin, socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    echo: TcpEcho


class _EchoHandler(socketserver.BaseRequestHandler):
    server: _TcpServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(_IDLE_TIMEOUT)
        self.server.track(sock)
        self.server.echo.connected()
        try:
            sock.sendall(f"{self.server.echo.name}\n".encode())
            while data := sock.recv(65536):
                sock.sendall(data)
        except OSError:
            pass
        finally:
            self.server.untrack(sock)


class TcpEcho:
    """TCP server: sends `NAME\\n` on connect, then echoes everything back."""

    def __init__(self, name: str, ip: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self.ip = ip
        self._requested_port = port
        self._lock = threading.Lock()
        self._connections = 0
        self._server: _TcpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TcpEcho:
        server = _TcpServer((self.ip, self._requested_port), _EchoHandler)
        server.echo = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.name = f"tcp-echo-{self.name}"
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"tcp echo {self.name} is not started")
        port: int = self._server.server_address[1]
        return port

    @property
    def address(self) -> tuple[str, int]:
        return self.ip, self.port

    def connected(self) -> None:
        with self._lock:
            self._connections += 1

    @property
    def connection_count(self) -> int:
        with self._lock:
            return self._connections

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.cut_connections()
        if self._thread is not None:
            self._thread.join(5.0)

    def __enter__(self) -> TcpEcho:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tcp_exchange(ip: str, port: int, payload: bytes = b"ping\n", timeout: float = 2.0) -> str:
    """Connect, read the greeting line, send `payload`, read it back; return the name."""
    # The reader is closed too, also on a timeout: else its socket outlives the call.
    with (
        socket.create_connection((ip, port), timeout=timeout) as sock,
        sock.makefile("rb") as reader,
    ):
        greeting = reader.readline()
        if not greeting.endswith(b"\n"):
            raise ConnectionError(f"no greeting from {ip}:{port}: {greeting!r}")
        sock.sendall(payload)
        echoed = reader.read(len(payload))
        if echoed != payload:
            raise ConnectionError(f"echo mismatch from {ip}:{port}: {echoed!r}")
        return greeting.decode().rstrip("\n")
