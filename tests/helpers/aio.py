"""Waiting on conditions in async tests: poll with a deadline, never sleep-and-hope."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import looptime

T = TypeVar("T")

POLL_INTERVAL = 0.02


async def eventually(
    predicate: Callable[[], bool],
    *,
    timeout: float = 10.0,
    message: str = "condition",
    poke: Callable[[], None] | None = None,
    poke_every: float = 0.5,
) -> None:
    """Wait until `predicate()` is true; `poke` (if given) is called at the start and then
    every `poke_every` seconds, e.g. to re-touch a file a watcher may not have seen yet."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_poke = loop.time()
    while not predicate():
        now = loop.time()
        if now >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        if poke is not None and now >= next_poke:
            poke()
            next_poke = now + poke_every
        await asyncio.sleep(POLL_INTERVAL)


def run_in_fake_time(coro: Coroutine[Any, Any, T], end: float = 60.0) -> T:
    """Run `coro` on an event loop with a fake clock (looptime): sleeps and timeouts advance
    time instantly, so timing assertions are exact and cost nothing. `end` bounds the fake
    time the test may use."""
    loop = looptime.new_event_loop(start=0.0, end=end)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
