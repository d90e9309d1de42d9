"""The per-connection merging push queue (Istio's PushQueue).

A FIFO of connections, each with at most one pending PushRequest: enqueueing a connection that
is already pending merges into its request; a connection being processed gets its new request
re-queued when it is marked done. So each proxy has at most one push in flight, and a burst of
changes costs a slow proxy one merged push, not a backlog.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Generic, TypeVar

from pilot.model.push_request import PushRequest

K = TypeVar("K")


class PushQueue(Generic[K]):
    def __init__(self) -> None:
        self._pending: OrderedDict[K, PushRequest] = OrderedDict()
        self._processing: dict[K, PushRequest | None] = {}
        self._ready = asyncio.Event()
        self._closed = False

    def enqueue(self, key: K, request: PushRequest) -> None:
        if self._closed:
            return
        if key in self._processing:
            stashed = self._processing[key]
            self._processing[key] = request if stashed is None else stashed.merge(request)
            return
        existing = self._pending.get(key)
        self._pending[key] = request if existing is None else existing.merge(request)
        self._ready.set()

    async def dequeue(self) -> tuple[K, PushRequest] | None:
        """The next connection and its merged request; None once the queue is closed."""
        while not self._pending:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        key, request = self._pending.popitem(last=False)
        self._processing[key] = None
        return key, request

    def mark_done(self, key: K) -> None:
        stashed = self._processing.pop(key, None)
        if stashed is not None:
            self.enqueue(key, stashed)

    def remove(self, key: K) -> None:
        """Forget a connection that went away."""
        self._pending.pop(key, None)
        self._processing.pop(key, None)

    def pending(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        self._closed = True
        self._ready.set()
