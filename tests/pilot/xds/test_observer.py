"""The xDS server reports connects, sends (with the push behind them), ACKs, NACKs (with the
rejected names) and disconnects to its observers; a failing observer never breaks a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from pilot.xds.observer import Acked, Nacked, Sent
from pkg.xds import typeurls
from tests.helpers.ads import AdsClient, AdsEnv, parse_all
from tests.helpers.aio import eventually

CDS = typeurls.CLUSTER

MESH = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: default}
spec:
  hosts: [svc.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.1}]
"""

RULE = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc, namespace: default}
spec:
  host: svc.example.com
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 3}}}
"""


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def connected(self, conn: Any) -> None:
        self.events.append(("connected", conn.proxy.id))

    def sent(self, conn: Any, event: Sent) -> None:
        self.events.append(("sent", event))

    def acked(self, conn: Any, event: Acked) -> None:
        self.events.append(("acked", event))

    def nacked(self, conn: Any, event: Nacked) -> None:
        self.events.append(("nacked", event))

    def disconnected(self, conn: Any) -> None:
        self.events.append(("disconnected", conn.proxy.id))


class Broken:
    def sent(self, conn: Any, event: Sent) -> None:
        raise RuntimeError("observer bug")


@pytest.fixture
async def ads() -> AsyncIterator[AdsEnv]:
    env = AdsEnv(parse_all(MESH))
    await env.start()
    try:
        yield env
    finally:
        await env.stop()


async def test_observers_see_the_life_of_a_stream(ads: AdsEnv) -> None:
    recorder = Recorder()
    ads.server.events.subscribe(Broken())
    ads.server.events.subscribe(recorder)
    client = AdsClient(ads.address)
    try:
        await client.sotw(CDS)
        first = await client.recv()
        await client.sotw(CDS, version=first.version_info, nonce=first.nonce)
        ads.apply(RULE)
        pushed = await client.recv()
        await client.sotw(CDS, nonce=pushed.nonce, error="rejected by test")
        await client.expect_nothing()
    finally:
        await client.close()
    kinds = [k for k, _ in recorder.events]
    assert kinds[:5] == ["connected", "sent", "acked", "sent", "nacked"], kinds
    response, push = recorder.events[1][1], recorder.events[3][1]
    assert response.reason == "request" and response.push is None
    assert response.nonce == first.nonce and "outbound|80||svc.example.com" in response.names
    assert push.reason == "push" and push.push is not None and push.nonce == pushed.nonce
    assert any(k.name == "svc" for k in push.push.configs_updated)
    ack = recorder.events[2][1]
    assert ack.nonce == first.nonce and ack.version == first.version_info
    nack = recorder.events[4][1]
    assert nack.nonce == pushed.nonce and nack.message == "rejected by test"
    assert "outbound|80||svc.example.com" in nack.names
    await eventually(lambda: recorder.events[-1][0] == "disconnected", message="disconnect")
