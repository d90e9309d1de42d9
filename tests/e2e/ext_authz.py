"""Small external authorization servers for CUSTOM AuthorizationPolicy tests, as Envoy's
ext_authz filter calls them (and as Istio's ext-authz sample behaves):

- `HttpExtAuthz`: Envoy sends the request's method, path (after the provider's `pathPrefix`)
  and headers; 200 allows, anything else denies with that status.
- `GrpcExtAuthz`: `envoy.service.auth.v3.Authorization/Check`; an OK status allows.

Both allow a request that carries `x-ext-authz: allow` and deny every other one (403), and
remember the paths they were asked about, so a test can check that Envoy consulted them.
They listen on a loopback IP of the test's choosing, in a background thread / their own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2, status_pb2

DECISION_HEADER = "x-ext-authz"
ALLOW = "allow"
CHECKED_HEADER = "x-ext-authz-check-result"


class _HttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.server.owner.checked.append(self.path)
        allowed = self.headers.get(DECISION_HEADER, "") == ALLOW
        status = 200 if allowed else 403
        body = b"" if allowed else b"denied by ext_authz\n"
        self.send_response(status)
        self.send_header(CHECKED_HEADER, ALLOW if allowed else "denied")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: HttpExtAuthz


class HttpExtAuthz:
    def __init__(self, ip: str, port: int = 0) -> None:
        self.checked: list[str] = []
        self._server = _Server((ip, port), _HttpHandler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HttpExtAuthz:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _Authorization(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, owner: GrpcExtAuthz) -> None:
        self._owner = owner

    async def Check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        http = request.attributes.request.http
        self._owner.checked.append(http.path)
        allowed = http.headers.get(DECISION_HEADER, "") == ALLOW
        response = external_auth_pb2.CheckResponse()
        if allowed:
            response.status.CopyFrom(status_pb2.Status(code=code_pb2.OK))
            header = response.ok_response.headers.add()
        else:
            response.status.CopyFrom(status_pb2.Status(code=code_pb2.PERMISSION_DENIED))
            response.denied_response.status.code = 403
            response.denied_response.body = "denied by ext_authz\n"
            header = response.denied_response.headers.add()
        header.header.key = CHECKED_HEADER
        header.header.value = ALLOW if allowed else "denied"
        return response


class GrpcExtAuthz:
    """The gRPC server runs on its own event loop in a thread, so sync tests can use it."""

    def __init__(self, ip: str) -> None:
        self.checked: list[str] = []
        self._ip = ip
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: grpc.aio.Server | None = None

    async def _start(self) -> None:
        self._server = grpc.aio.server()
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(
            _Authorization(self), self._server
        )
        self.port = self._server.add_insecure_port(f"{self._ip}:0")
        await self._server.start()

    def start(self) -> GrpcExtAuthz:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._server.stop(0), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@contextlib.contextmanager
def ext_authz_servers(ip: str) -> Iterator[tuple[HttpExtAuthz, GrpcExtAuthz]]:
    http = HttpExtAuthz(ip).start()
    grpc_server = GrpcExtAuthz(ip).start()
    try:
        yield http, grpc_server
    finally:
        http.stop()
        grpc_server.stop()
