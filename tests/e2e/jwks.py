"""A JWKS server for the synchronous end-to-end tests: tests.helpers.jwks_server's aiohttp
JwksServer on its own event loop in a daemon thread, on a loopback IP the test picks."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from tests.helpers.jwks_server import JwksServer


class ThreadedJwksServer:
    """A JwksServer on its own event loop in a daemon thread."""

    def __init__(self, ip: str) -> None:
        self.server = JwksServer(ip)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> JwksServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self.server

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def jwks_server(ip: str) -> Iterator[JwksServer]:
    """A running JwksServer on `ip` (port chosen by the OS), stopped afterwards."""
    threaded = ThreadedJwksServer(ip)
    server = threaded.start()
    try:
        yield server
    finally:
        threaded.stop()
