"""The push ledger on a real DiscoveryServer: a push reports the proxies it skipped (not
concerned) and those it found up to date through the observer seam, besides sends and ACKs,
and `/debug/trace`'s answer follows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from pilot.xds.ledger import PushLedger
from pilot.xds.trace import trace
from pkg.config.model import ConfigKey, Kind
from pkg.xds import typeurls
from tests.helpers.ads import AdsClient, AdsEnv, node, parse_all
from tests.helpers.aio import eventually

MESH = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: default}
spec:
  hosts: [svc.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.1}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: scoped}
spec:
  egress:
  - hosts: ["./*"]
"""

ROUTE = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc, namespace: default}}
spec:
  hosts: [svc.example.com]
  http:
  - timeout: {timeout}
    route:
    - destination: {{host: svc.example.com}}
"""

KEY = ConfigKey(Kind.VIRTUAL_SERVICE, "svc", "default")


@pytest.fixture
async def ads() -> AsyncIterator[tuple[AdsEnv, PushLedger]]:
    env = AdsEnv(parse_all(MESH + "---" + ROUTE.format(timeout="1s")))
    ledger = PushLedger()
    env.store.add_handler(ledger.config_events)
    env.server.events.subscribe(ledger)
    await env.start()
    ledger.serving()
    try:
        yield env, ledger
    finally:
        await env.stop()


async def acked(client: AdsClient, type_url: str, names: list[str], name: str) -> Any:
    """Subscribe, receive the first response and ACK it."""
    await client.sotw(type_url, names, node_=node(name, ip="127.0.9.1"))
    response = await client.recv()
    await client.sotw(type_url, names, version=response.version_info, nonce=response.nonce)
    return response


async def test_skipped_up_to_date_sent_and_acked(ads: tuple[AdsEnv, PushLedger]) -> None:
    env, ledger = ads
    routes = AdsClient(env.address)  # default namespace, watches the route config "80"
    clusters = AdsClient(env.address)  # default namespace, clusters only
    scoped = AdsClient(env.address)  # namespace "scoped": its Sidecar imports only "scoped"
    try:
        await acked(routes, typeurls.ROUTE, ["80"], "routes.default")
        await acked(clusters, typeurls.CLUSTER, [], "clusters.default")
        await acked(scoped, typeurls.CLUSTER, [], "scoped.scoped")
        assert trace(ledger, KEY) is None  # loaded before the ledger subscribed

        env.apply(ROUTE.format(timeout="2s"))
        pushed = await routes.recv()
        assert pushed.type_url == typeurls.ROUTE
        await routes.sotw(typeurls.ROUTE, ["80"], version=pushed.version_info, nonce=pushed.nonce)

        def report() -> dict[str, Any]:
            out = trace(ledger, KEY)
            assert out is not None
            return out

        await eventually(lambda: report()["converged"], message="the push to be answered")
        out = report()
        by_proxy = {p["proxy"]: p["status"] for p in out["proxies"]}
        assert by_proxy == {
            "clusters.default": "UP TO DATE",
            "routes.default": "ACKED",
            "scoped.scoped": "NOT CONCERNED",
        }
        assert out["live"] and out["eventToLastAckSeconds"] > 0
        [push] = out["pushes"]
        assert push["current"] and push["concerned"] == 2 and push["skipped"] == 1
        assert push["reasons"] == {"config": 1}
        await clusters.expect_nothing(0.1)
        await scoped.expect_nothing(0.1)
    finally:
        for client in (routes, clusters, scoped):
            await client.close()
