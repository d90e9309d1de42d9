"""Debounce with Istio's semantics (pilot/pkg/xds/discovery.go `debounce`).

Events merge into one pending PushRequest. A push starts when no event has arrived for
`debounce_after` (quiet period) or `debounce_max` has passed since the first event of the batch;
only one push runs at a time, and events arriving meanwhile merge into the next one. With
`enable_eds_debounce` off, endpoint-only requests skip the wait and push at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pilot.model.push_request import PushRequest
from pilot.xds import monitoring

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DebounceSettings:
    debounce_after: float = 0.1
    debounce_max: float = 10.0
    enable_eds_debounce: bool = True


_EPSILON = 1e-3

PushFn = Callable[[PushRequest], Awaitable[None]]


class Debouncer:
    def __init__(
        self,
        settings: DebounceSettings,
        push: PushFn,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._settings = settings
        self._push = push
        self._clock = clock or asyncio.get_running_loop().time
        self._pending: PushRequest | None = None
        self._start = 0.0
        self._last = 0.0
        self._events = 0
        self._wakeup = asyncio.Event()
        self._busy = False
        self._last_push_end = 0.0
        self.pushes = 0
        self._inflight: set[asyncio.Task[None]] = set()

    def submit(self, request: PushRequest) -> None:
        """Called from the event loop by stores and registries."""
        now = self._clock()
        if request.start <= 0:
            request = PushRequest(
                request.configs_updated, request.reasons, request.forced, now, request.push
            )
        if not self._settings.enable_eds_debounce and request.endpoints_only:
            task: asyncio.Task[None] = asyncio.ensure_future(self._push(request))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            return
        if self._pending is None:
            self._start = now
            self._events = 0
        self._last = now
        self._events += 1
        self._pending = request.merge(self._pending) if self._pending else request
        self._wakeup.set()

    async def run(self) -> None:
        """The debounce loop; runs until cancelled."""
        settings = self._settings
        while True:
            if self._pending is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            now = self._clock()
            quiet = now - self._last
            total = now - self._start
            # A small tolerance: timers fire at the deadline, floats land a hair before it.
            if (
                quiet >= settings.debounce_after - _EPSILON
                or total >= settings.debounce_max - _EPSILON
            ):
                request = self._pending
                events = self._events
                self._pending = None
                log.info(
                    "Push debounce stable[%d] %d events for config %s: %.3fs since last change, "
                    "%.3fs since first change, forced=%s",
                    self.pushes + 1,
                    events,
                    _describe(request),
                    quiet,
                    total,
                    request.forced,
                )
                self.pushes += 1
                self._busy = True
                first = self._start
                try:
                    await self._push(request)
                finally:
                    self._busy = False
                # First event → the merged push queued, its PushContext built (Istio's).
                monitoring.DEBOUNCE_TIME.observe(self._clock() - first)
                continue
            wait = min(settings.debounce_after - quiet, settings.debounce_max - total)
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=max(wait, _EPSILON))


def _describe(request: PushRequest) -> str:
    keys = sorted(request.configs_updated)
    if not keys:
        return "(all)"
    first = str(keys[0])
    return first if len(keys) == 1 else f"{first} (and {len(keys) - 1} more configs)"
