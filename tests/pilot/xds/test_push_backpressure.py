"""A proxy that stops reading its stream never slows the others: its stream task is stuck in a
write (what HTTP/2 flow control does to a proxy that does not read), one push worker waits for
it (bounded by push_send_timeout), its later pushes merge into one, and every other proxy keeps
getting each push at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from pilot.bootstrap.environment import Environment
from pilot.config.store import ConfigStore
from pilot.xds.debounce import DebounceSettings
from pilot.xds.server import DiscoveryServer, XdsSettings
from pkg.config.mesh import MeshConfig
from pkg.xds import typeurls
from tests.helpers.ads import node, parse_all

SERVICE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc, namespace: default}}
spec:
  hosts: [svc.example.com]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 10.1.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc, namespace: default}}
spec:
  host: svc.example.com
  trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: {n}}}}}}}
"""


class FakeStream:
    """The server side of one ADS stream: requests fed by the test, writes recorded; a stuck
    stream's writes never complete."""

    def __init__(self, stuck: bool = False) -> None:
        self.stuck = stuck
        self.requests: asyncio.Queue[Any] = asyncio.Queue()
        self.written: asyncio.Queue[bytes] = asyncio.Queue()
        self.writes_started = 0

    async def iterate(self) -> AsyncIterator[Any]:
        while True:
            yield await self.requests.get()

    def peer(self) -> str:
        return "ipv4:127.0.0.1:15000"

    async def write(self, payload: bytes) -> None:
        self.writes_started += 1
        if self.stuck:
            await asyncio.Event().wait()  # never returns: the proxy does not read
        self.written.put_nowait(payload)

    async def abort(self, code: Any, details: str) -> None:
        raise AssertionError(f"stream aborted: {code} {details}")

    async def response(self, timeout: float = 5.0) -> Any:
        raw = await asyncio.wait_for(self.written.get(), timeout)
        return discovery_pb2.DiscoveryResponse.FromString(raw)


async def test_a_proxy_that_stops_reading_never_slows_the_others() -> None:
    store = ConfigStore()
    store.replace_all(parse_all(SERVICE.format(n=1)))
    env = Environment(store, MeshConfig(), "cluster.local")
    settings = XdsSettings(
        debounce=DebounceSettings(debounce_after=0.01, debounce_max=1),
        push_throttle=2,
        push_send_timeout=60.0,
    )
    server = DiscoveryServer(env, settings)
    server.initialize()
    await server.start()
    env.set_push_handler(server.config_update)
    stuck = FakeStream(stuck=True)
    healthy = [FakeStream() for _ in range(4)]
    streams = [stuck, *healthy]
    tasks = [
        asyncio.ensure_future(server._stream(s.iterate(), s, False, None))  # type: ignore[arg-type]
        for s in streams
    ]
    try:
        for i, s in enumerate(streams):
            request = discovery_pb2.DiscoveryRequest(type_url=typeurls.CLUSTER)
            request.node.CopyFrom(node(f"app{i}.default", ip=f"127.0.9.{i + 1}"))
            s.requests.put_nowait(request)
        last: list[Any] = []
        for s in healthy:
            response = await s.response()
            s.requests.put_nowait(
                discovery_pb2.DiscoveryRequest(
                    type_url=typeurls.CLUSTER,
                    version_info=response.version_info,
                    response_nonce=response.nonce,
                )
            )
            last.append(response)
        # Three changes in a row: each reaches every healthy proxy at once, although one of
        # the two push workers is held by the stuck proxy for the whole test.
        for n in (2, 3, 4):
            for config in parse_all(SERVICE.format(n=n)):
                store.upsert(config)
            for k, s in enumerate(healthy):
                response = await s.response(timeout=5.0)
                assert response.version_info != last[k].version_info
                assert response.type_url == typeurls.CLUSTER and response.resources
                last[k] = response
                s.requests.put_nowait(
                    discovery_pb2.DiscoveryRequest(
                        type_url=typeurls.CLUSTER,
                        version_info=response.version_info,
                        response_nonce=response.nonce,
                    )
                )
        # The stuck proxy: its first write never finished, nothing else was written on top,
        # and its pushes merged into at most one pending request.
        assert stuck.writes_started == 1 and stuck.written.empty()
        assert server._queue.pending() <= 1
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop()


async def test_a_stream_that_does_not_take_its_writes_is_closed_after_the_send_timeout() -> None:
    """PILOT_XDS_SEND_TIMEOUT: past it, istiod forgets the stream (no state, no more pushes)."""
    store = ConfigStore()
    store.replace_all(parse_all(SERVICE.format(n=1)))
    env = Environment(store, MeshConfig(), "cluster.local")
    server = DiscoveryServer(env, XdsSettings(push_throttle=1, send_timeout=0.2))
    server.initialize()
    await server.start()
    stuck = FakeStream(stuck=True)
    task = asyncio.ensure_future(server._stream(stuck.iterate(), stuck, False, None))  # type: ignore[arg-type]
    try:
        request = discovery_pb2.DiscoveryRequest(type_url=typeurls.CLUSTER)
        request.node.CopyFrom(node("stuck.default", ip="127.0.9.9"))
        stuck.requests.put_nowait(request)
        # The handler ends as cancelled (no status can follow a stalled write) and forgets it.
        done, _ = await asyncio.wait([task], timeout=5.0)
        assert done and task.cancelled()
        assert server.connections() == [] and stuck.writes_started == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()
