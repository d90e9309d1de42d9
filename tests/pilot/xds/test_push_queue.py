"""PushQueue: one pending merged request per connection, re-queued when done."""

from __future__ import annotations

import asyncio

from pilot.model.push_request import PushRequest, TriggerReason
from pilot.xds.push_queue import PushQueue
from pkg.config.model import ConfigKey, Kind


def req(name: str) -> PushRequest:
    return PushRequest.of([ConfigKey(Kind.VIRTUAL_SERVICE, name, "ns")], TriggerReason.CONFIG)


async def test_enqueue_twice_merges() -> None:
    q: PushQueue[str] = PushQueue()
    q.enqueue("a", req("x"))
    q.enqueue("a", req("y"))
    assert q.pending() == 1
    item = await q.dequeue()
    assert item is not None
    key, merged = item
    assert key == "a"
    assert {k.name for k in merged.configs_updated} == {"x", "y"}
    assert merged.reasons[TriggerReason.CONFIG] == 2


async def test_request_while_processing_is_requeued_on_done() -> None:
    q: PushQueue[str] = PushQueue()
    q.enqueue("a", req("x"))
    await q.dequeue()
    q.enqueue("a", req("y"))
    q.enqueue("a", req("z"))
    assert q.pending() == 0  # stashed, not queued twice
    q.mark_done("a")
    item = await q.dequeue()
    assert item is not None
    assert {k.name for k in item[1].configs_updated} == {"y", "z"}


async def test_fifo_order_and_close() -> None:
    q: PushQueue[str] = PushQueue()
    for name in ("a", "b", "c"):
        q.enqueue(name, req(name))
    order = []
    for _ in range(3):
        item = await q.dequeue()
        assert item is not None
        order.append(item[0])
    assert order == ["a", "b", "c"]
    waiter = asyncio.ensure_future(q.dequeue())
    await asyncio.sleep(0)
    q.close()
    assert await asyncio.wait_for(waiter, 1.0) is None


async def test_removed_connection_is_forgotten() -> None:
    q: PushQueue[str] = PushQueue()
    q.enqueue("a", req("x"))
    q.remove("a")
    assert q.pending() == 0
