"""Debounce semantics (Istio's): quiet period, max delay, one push at a time, merging, and
the EDS fast path. The event loop runs on fake time (looptime), so sleeps cost nothing and
timings are exact."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from pilot.model.push_request import PushRequest, TriggerReason
from pilot.xds.debounce import Debouncer, DebounceSettings
from pkg.config.model import ConfigKey, Kind
from tests.helpers.aio import run_in_fake_time


def cfg(name: str) -> PushRequest:
    return PushRequest.of([ConfigKey(Kind.VIRTUAL_SERVICE, name, "ns")], TriggerReason.CONFIG)


def eds(name: str) -> PushRequest:
    return PushRequest.of([ConfigKey(Kind.ENDPOINTS, name, "ns")], TriggerReason.ENDPOINT)


class Harness:
    def __init__(self, settings: DebounceSettings) -> None:
        self.pushed: list[PushRequest] = []
        self.release = asyncio.Event()
        self.release.set()
        self.debouncer = Debouncer(settings, self.push)
        self.task = asyncio.ensure_future(self.debouncer.run())

    async def push(self, request: PushRequest) -> None:
        self.pushed.append(request)
        await self.release.wait()

    async def wait_pushes(self, n: int, timeout: float = 2.0) -> None:
        async def cond() -> None:
            while len(self.pushed) < n:
                await asyncio.sleep(0.001)

        await asyncio.wait_for(cond(), timeout)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def test_burst_is_merged_into_one_push() -> None:
    run_in_fake_time(_burst_is_merged_into_one_push())


async def _burst_is_merged_into_one_push() -> None:
    loop = asyncio.get_running_loop()
    h = Harness(DebounceSettings(debounce_after=0.1, debounce_max=5))
    start = loop.time()
    for i in range(5):
        h.debouncer.submit(cfg(f"vs{i}"))
        await asyncio.sleep(0.05)  # fake time: events 50 ms apart, never a 100 ms gap
    await h.wait_pushes(1)
    # The push came one quiet period after the last event, not before.
    assert loop.time() - start == pytest.approx(0.20 + 0.1, abs=0.01)
    await asyncio.sleep(1)
    assert len(h.pushed) == 1
    assert len(h.pushed[0].configs_updated) == 5
    await h.close()


def test_max_delay_bounds_a_continuous_stream() -> None:
    run_in_fake_time(_max_delay_bounds_a_continuous_stream())


async def _max_delay_bounds_a_continuous_stream() -> None:
    h = Harness(DebounceSettings(debounce_after=0.05, debounce_max=0.2))
    loop = asyncio.get_running_loop()
    start = loop.time()
    i = 0
    # Events every 20 ms never leave a 50 ms quiet gap; debounce_max must force the push.
    while not h.pushed and i < 100:
        h.debouncer.submit(cfg(f"vs{i}"))
        i += 1
        await asyncio.sleep(0.02)
    assert h.pushed, "no push although debounce_max is 0.2s"
    assert loop.time() - start == pytest.approx(0.2, abs=0.03)
    await h.close()


def test_one_push_at_a_time_and_merge_while_busy() -> None:
    run_in_fake_time(_one_push_at_a_time_and_merge_while_busy())


async def _one_push_at_a_time_and_merge_while_busy() -> None:
    h = Harness(DebounceSettings(debounce_after=0.01, debounce_max=5))
    h.release.clear()
    h.debouncer.submit(cfg("a"))
    await h.wait_pushes(1)
    h.debouncer.submit(cfg("b"))
    h.debouncer.submit(cfg("c"))
    await asyncio.sleep(1)  # fake time: long past the quiet period
    assert len(h.pushed) == 1  # still busy with the first
    h.release.set()
    await h.wait_pushes(2)
    assert {k.name for k in h.pushed[1].configs_updated} == {"b", "c"}
    await h.close()


def test_eds_fast_path_skips_debounce_when_disabled() -> None:
    run_in_fake_time(_eds_fast_path_skips_debounce_when_disabled())


async def _eds_fast_path_skips_debounce_when_disabled() -> None:
    h = Harness(DebounceSettings(debounce_after=5.0, debounce_max=10, enable_eds_debounce=False))
    loop = asyncio.get_running_loop()
    start = loop.time()
    h.debouncer.submit(eds("reviews"))
    await h.wait_pushes(1, timeout=1.0)
    assert h.pushed[0].endpoints_only
    assert loop.time() - start < 0.01
    await h.close()
