"""A loopback TCP forwarder standing in for one endpoint of istiod's Kubernetes Service.

In Kubernetes, Envoy dials istiod's Service and kube-proxy picks a ready replica for each new
connection; a replica that is not ready gets no new connections while its established ones
stay. `Gate` is that for one replica: it listens on its own 127.0.x.y address and forwards each
connection to the replica's xDS port. `close()` stops accepting (new connections are refused)
and leaves established connections flowing; `open()` listens again on the same address. When
the replica behind it dies, its connections are closed, and a new connection is accepted then
closed at once (as a connection to a dead pod's address fails), so Envoy tries again.

Tests use it to decide which replica a proxy lands on (Envoy picks among the addresses of its
`xds-grpc` cluster at random); the bytes pass through unchanged.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from .net import split_host_port

_CHUNK = 65536


class Gate:
    def __init__(self, listen: str, upstream: str) -> None:
        """`listen` is HOST:PORT (port 0: any, fixed at the first open()); `upstream` is the
        replica's xDS HOST:PORT."""
        self.listen = listen
        self.upstream = upstream
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.accepted = 0

    # -- listening -------------------------------------------------------------------------

    def open(self) -> Gate:
        with self._lock:
            if self._server is not None:
                return self
            host, port = split_host_port(self.listen)
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind((host, port))
            server.listen(16)
            # Port 0 binds an ephemeral port, kept for every later open().
            self.listen = f"{host}:{server.getsockname()[1]}"
            self._server = server
        self._spawn(self._accept_loop, server)
        return self

    def close(self) -> None:
        """Stop accepting; established connections keep flowing."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)  # wakes accept()
            server.close()

    def shutdown(self) -> None:
        """Close the listener and every connection, and join the threads."""
        self.close()
        with self._lock:
            sockets, self._sockets = set(self._sockets), set()
            threads, self._threads = list(self._threads), []
        for sock in sockets:
            _close(sock)
        for thread in threads:
            thread.join(5.0)

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._server is not None

    # -- forwarding ------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"gate-{self.listen}")
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            self._spawn(self._connect, client)

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(split_host_port(self.upstream), timeout=1.0)
        except OSError:
            _close(client)  # the replica is gone: the connection fails, Envoy retries
            return
        upstream.settimeout(None)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._sockets |= {client, upstream}
        self._spawn(self._pump, upstream, client)
        self._pump(client, upstream)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        """Copy src → dst until either side ends; then end both (HTTP/2 never half-closes)."""
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _close(sock)
                with self._lock:
                    self._sockets.discard(sock)

    def __enter__(self) -> Gate:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
