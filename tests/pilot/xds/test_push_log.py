"""One structured line per push, and one when it has reached every proxy it concerned; a proxy
whose pushes the queue merged, that had nothing to get, or that went away is accounted for."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import pytest

from pilot.model.push_context import PushContext, PushInputs
from pilot.model.push_request import PushRequest, TriggerReason
from pilot.xds.push_log import PushLog, describe_configs
from pkg.config.model import ConfigKey, Kind
from pkg.xds import typeurls
from tests.helpers.ads import AdsClient, AdsEnv, parse_all

LOGGER = "test.push_log"
PAIR = re.compile(r'(\w+)=("[^"]*"|\S+)')

MESH = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
"""
CLUSTER = "outbound|9080||reviews.default.svc.cluster.local"


def fields(line: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in PAIR.findall(line)}


def lines(caplog: pytest.LogCaptureFixture, prefix: str) -> list[dict[str, str]]:
    return [fields(r.getMessage()) for r in caplog.records if r.getMessage().startswith(prefix)]


def vs(name: str) -> ConfigKey:
    return ConfigKey(Kind.VIRTUAL_SERVICE, name, "default")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_configs_are_named_up_to_a_bound_then_counted() -> None:
    assert describe_configs([]) == "all"
    two = describe_configs([vs("b"), vs("a")])
    assert two == "VirtualService/default/a,VirtualService/default/b"
    many = describe_configs([vs(f"r{i}") for i in range(8)], limit=3)
    assert many == (
        "VirtualService/default/r0,VirtualService/default/r1,VirtualService/default/r2 +5 more"
    )


def test_merged_skipped_and_gone_proxies_complete_each_push(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = Clock()
    push_log = PushLog(logging.getLogger(LOGGER), clock)
    context = PushContext.build(PushInputs())
    first = PushRequest.of([vs(f"r{i}") for i in range(7)], TriggerReason.CONFIG, start=99.5)
    second = PushRequest.of([vs("r0")], TriggerReason.CONFIG, start=100.2)

    push_log.started(first, context, ["a", "b"], 0.0123, rebuilt=True)
    clock.now = 100.1
    b = push_log.dequeued("b", first)
    push_log.finished(b, first, [])  # nothing b has changed
    clock.now = 100.3
    push_log.started(second, context, ["a", "b"], 0.002, rebuilt=True)
    clock.now = 100.5
    a = push_log.dequeued("a", first.merge(second))  # one merged request for both pushes
    assert len(a) == 2
    push_log.finished(a, first.merge(second), [b"x" * 100, b"y" * 20])
    assert lines(caplog, "XDS: Push complete")[0] == {
        "version": context.version, "scope": "full", "proxies": "2", "pushed": "0",
        "skipped": "1", "merged": "1", "gone": "0", "responses": "0", "bytes": "0",
        "duration_ms": "500.0", "since_change_ms": "1000.0",
    }  # fmt: skip
    push_log.forget("b")  # b disconnects before taking the second push
    second_done = lines(caplog, "XDS: Push complete")[1]
    assert (second_done["pushed"], second_done["gone"]) == ("1", "1")
    assert (second_done["responses"], second_done["bytes"]) == ("2", "120")

    starts = lines(caplog, "XDS: Pushing")
    assert starts[0] == {
        "version": context.version, "scope": "full", "reasons": "config:1",
        "configs": "VirtualService/default/r0,VirtualService/default/r1,"
        "VirtualService/default/r2,VirtualService/default/r3,VirtualService/default/r4 +2 more",
        "proxies": "2", "services": "0", "build_ms": "12.3",
    }  # fmt: skip


@pytest.fixture
async def ads() -> AsyncIterator[AdsEnv]:
    env = AdsEnv(parse_all(MESH))
    await env.start()
    try:
        yield env
    finally:
        await env.stop()


async def test_an_endpoint_change_logs_an_eds_push_and_its_completion(
    ads: AdsEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pilot.xds.server")
    client = AdsClient(ads.address)
    try:
        await client.sotw(typeurls.CLUSTER)
        cds = await client.recv()
        await client.sotw(typeurls.CLUSTER, version=cds.version_info, nonce=cds.nonce)
        await client.sotw(typeurls.ENDPOINT, [CLUSTER])
        eds = await client.recv()
        await client.sotw(typeurls.ENDPOINT, [CLUSTER], version=eds.version_info, nonce=eds.nonce)
        await client.expect_nothing(0.1)
        caplog.clear()
        ads.apply(MESH.replace("10.0.0.1", "10.0.0.2"))
        pushed = await client.recv()
        assert pushed.type_url == typeurls.ENDPOINT
        await client.expect_nothing(0.1)
    finally:
        await client.close()
    (start,) = lines(caplog, "XDS: Pushing")
    assert start["scope"] == "eds" and start["proxies"] == "1"
    assert start["reasons"] == "endpoint:1"
    assert start["configs"] == "Endpoints/default/reviews.default.svc.cluster.local"
    (done,) = lines(caplog, "XDS: Push complete")
    assert done["version"] == start["version"]
    assert (done["pushed"], done["responses"]) == ("1", "1")
    assert int(done["bytes"]) == pushed.ByteSize()
