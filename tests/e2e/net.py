"""Loopback addresses, free ports and condition waits for end-to-end tests.

Tests only ever talk to 127.0.0.0/8. Each workload gets its own loopback IP from
`allocate_ip()`; IPs are unique across concurrently running test processes (a process claims a
whole 127.0.B.0/24 block with an flock'ed file, released when the process exits).
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")

_FIRST_BLOCK = 10
_LAST_BLOCK = 250
_LOCK_DIR = Path(tempfile.gettempdir()) / "pyistio-e2e-loopback"


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll `predicate` until it returns a truthy value, and return that value.

    Exceptions raised by the predicate count as "not yet" (e.g. connection refused while a
    process starts). On timeout, raise WaitTimeout with `message` and the last value or error.
    """
    deadline = time.monotonic() + timeout
    last = "<never evaluated>"
    while True:
        try:
            value = predicate()
        except Exception as err:
            last = f"{type(err).__name__}: {err}"
        else:
            if value:
                return value
            last = repr(value)
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {message}; last: {last}")
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free on `host` a moment ago (prefer port 0 where the server allows)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class LoopbackAllocator:
    """Hands out distinct 127.0.B.H addresses (H = 1..254), B from a block this process owns."""

    def __init__(self, lock_dir: Path = _LOCK_DIR) -> None:
        self._lock_dir = lock_dir
        self._mutex = threading.Lock()
        self._locks: list[IO[bytes]] = []
        self._block: int | None = None
        self._next_host = 1

    def allocate(self) -> str:
        with self._mutex:
            if self._block is None or self._next_host > 254:
                self._block = self._claim_block()
                self._next_host = 1
            ip = f"127.0.{self._block}.{self._next_host}"
            self._next_host += 1
            return ip

    def _claim_block(self) -> int:
        self._lock_dir.mkdir(parents=True, exist_ok=True)
        start = _FIRST_BLOCK + os.getpid() % (_LAST_BLOCK - _FIRST_BLOCK + 1)
        span = _LAST_BLOCK - _FIRST_BLOCK + 1
        owned = {int(Path(f.name).stem) for f in self._locks}
        for i in range(span):
            block = _FIRST_BLOCK + (start - _FIRST_BLOCK + i) % span
            if block in owned:
                continue
            handle = (self._lock_dir / f"{block}.lock").open("ab")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self._locks.append(handle)  # held (and the block owned) until the process exits
            return block
        raise RuntimeError("no free loopback block in 127.0.10.0-127.0.250.255")


_ALLOCATOR = LoopbackAllocator()


def allocate_ip() -> str:
    """A loopback IP no other workload of any running test process has been given."""
    return _ALLOCATOR.allocate()


def split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)
