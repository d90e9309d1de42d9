"""A proxy's NACK is attributed to the object behind it, which is then served at its last
accepted version to every proxy (also those that connect later) until it changes again.

Real DiscoveryServer + Environment + RejectionTracker; a scripted ADS client plays Envoy and
NACKs what a real Envoy would (tests/e2e/test_last_known_good.py does it with real Envoys).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from envoy.config.route.v3 import route_pb2

from pilot.xds.rejections import RejectionTracker
from pkg.config.model import ConfigKey, Kind
from pkg.credentials import Identity
from pkg.xds import typeurls
from tests.helpers.ads import AdsClient, AdsEnv, node, parse_all

RDS = typeurls.ROUTE
ROUTE = "8080"
KEY = ConfigKey(Kind.VIRTUAL_SERVICE, "reviews", "default")
BAD_REGEX = "(abcdefghij|klmnopqrst|uvwxyz0123|456789ABCD){1000}"
ENVOY_SAYS = f"regex '{BAD_REGEX}' RE2 program size of 42004 > max program size of 32768"

MESH = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


def routing(subset: str, *, bad: bool = False, name: str = "reviews") -> str:
    match = (
        f"""
  - match: [{{headers: {{x-id: {{regex: "{BAD_REGEX}"}}}}}}]
    route: [{{destination: {{host: {name}, subset: {subset}}}}}]"""
        if bad
        else ""
    )
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{name}]
  http:{match}
  - route: [{{destination: {{host: {name}, subset: {subset}}}}}]
"""


def clusters_routed(response: Any, host: str = "reviews") -> set[str]:
    """The clusters the route config sends `host` to."""
    out = set()
    for any_ in response.resources:
        config = route_pb2.RouteConfiguration()
        any_.Unpack(config)
        for vhost in config.virtual_hosts:
            if vhost.name.startswith(f"{host}."):
                out.update(r.route.cluster for r in vhost.routes)
    return out


def v(subset: str) -> str:
    return f"outbound|8080|{subset}|reviews.default.svc.cluster.local"


async def start(configs: str, revert: str = "all") -> tuple[AdsEnv, RejectionTracker]:
    """`revert="all"`: these scripted clients are anonymous (plaintext), like a development
    mesh's Envoys; the default policy is tested on its own below."""
    env = AdsEnv(parse_all(configs))
    await env.start()
    tracker = RejectionTracker(lambda: env.server.push_context, env.env.reject, revert)
    env.server.events.subscribe(tracker)
    return env, tracker


@pytest.fixture
async def ads() -> AsyncIterator[tuple[AdsEnv, RejectionTracker]]:
    env, tracker = await start(MESH + "---" + routing("v1"))
    try:
        yield env, tracker
    finally:
        await env.stop()


async def subscribe(client: AdsClient, name: str = "app.default", ip: str = "127.0.9.1") -> Any:
    await client.sotw(RDS, [ROUTE], node_=node(name, ip))
    return await client.recv()


async def ack(client: AdsClient, response: Any) -> None:
    await client.sotw(RDS, [ROUTE], version=response.version_info, nonce=response.nonce)


async def nack(client: AdsClient, response: Any, accepted: Any, message: str) -> None:
    await client.sotw(
        RDS, [ROUTE], version=accepted.version_info, nonce=response.nonce, error=message
    )


async def test_nacked_push_is_reverted_for_every_proxy_until_the_object_changes(
    ads: tuple[AdsEnv, RejectionTracker],
) -> None:
    env, tracker = ads
    first = AdsClient(env.address)
    late = AdsClient(env.address)
    try:
        accepted = await subscribe(first)
        assert clusters_routed(accepted) == {v("v1")}
        await ack(first, accepted)

        env.apply(routing("v2", bad=True))  # passes validation; Envoy would reject it
        bad = await first.recv()
        assert clusters_routed(bad) == {v("v2")}
        await nack(first, bad, accepted, ENVOY_SAYS)

        # Attributed to the VirtualService (the one object of that push) and reverted: the
        # proxy is pushed v1 again, and the object is marked rejected.
        reverted = await first.recv()
        assert clusters_routed(reverted) == {v("v1")}
        await ack(first, reverted)
        (result,) = tracker.attributions
        assert result.config is not None and result.config.key == KEY and result.how == "push"
        rejection = env.env.last_good.rejection(KEY)
        assert rejection is not None
        assert rejection.message == ENVOY_SAYS and rejection.proxy == "app.default"
        assert rejection.type_url == RDS

        # A proxy connecting later gets the last accepted version at once.
        fresh = await subscribe(late, "late.default", "127.0.9.2")
        assert clusters_routed(fresh) == {v("v1")}
        await ack(late, fresh)

        # A new version is tried afresh: the rejection is gone, both proxies get it.
        env.apply(routing("v2"))
        for client in (first, late):
            fixed = await client.recv()
            assert clusters_routed(fixed) == {v("v2")}
            await ack(client, fixed)
        assert env.env.last_good.rejection(KEY) is None
        await first.expect_nothing()
        await late.expect_nothing()
    finally:
        await first.close()
        await late.close()


async def test_first_response_rejected_is_attributed_by_provenance_and_message() -> None:
    """istiod started with the bad object already in its config: the proxy's very first
    response is rejected. Two VirtualServices share the route config; Envoy's message quotes
    the regex of one of them. Never accepted, that one is not served at all."""
    env, tracker = await start(
        MESH + "---" + routing("v2", bad=True) + "---" + routing("v1", name="ratings")
    )
    client = AdsClient(env.address)
    try:
        first = await subscribe(client)
        assert clusters_routed(first) == {v("v2")}
        await client.sotw(RDS, [ROUTE], nonce=first.nonce, error=ENVOY_SAYS)

        reverted = await client.recv()
        (result,) = tracker.attributions
        assert result.config is not None and result.config.key == KEY
        assert result.how == "provenance+message"
        assert set(result.candidates) == {
            KEY,
            ConfigKey(Kind.VIRTUAL_SERVICE, "ratings", "default"),
        }
        # No accepted version: reviews falls back to its default route; ratings is untouched.
        assert clusters_routed(reverted) == {"outbound|8080||reviews.default.svc.cluster.local"}
        assert clusters_routed(reverted, "ratings") == {
            "outbound|8080|v1|ratings.default.svc.cluster.local"
        }
        assert env.env.last_good.status(KEY)["rejected"]["serving"] == ""  # type: ignore[index]
    finally:
        await client.close()
        await env.stop()


async def test_unattributable_nack_reverts_nothing(ads: tuple[AdsEnv, RejectionTracker]) -> None:
    """Two objects changed in one push and Envoy's message names neither: it is logged and
    nothing is reverted."""
    env, tracker = ads
    client = AdsClient(env.address)
    try:
        accepted = await subscribe(client)
        await ack(client, accepted)
        env.apply(routing("v2") + "---" + routing("v1", name="ratings"))
        pushed = await client.recv()
        await nack(client, pushed, accepted, "something went wrong")
        await client.expect_nothing()
        (result,) = tracker.attributions
        assert result.config is None and len(result.candidates) == 2
        assert env.env.last_good.rejections() == []
    finally:
        await client.close()


async def test_everything_in_a_rejected_response_is_sent_again_with_the_revert() -> None:
    """Envoy applies a rejected SotW response only partly, if at all: a route configuration that
    changed in the same push as the bad one (ratings, on its own port) reaches the proxy again
    with the revert, although istiod's copy of it did not change since."""
    ratings_on_9090 = MESH.replace(
        "selector: {app: ratings}\n  ports: [{name: http, port: 8080}]",
        "selector: {app: ratings}\n  ports: [{name: http, port: 9090}]",
    )
    env, tracker = await start(ratings_on_9090 + "---" + routing("v1"))
    client = AdsClient(env.address)
    names = [ROUTE, "9090"]
    try:
        await client.sotw(RDS, names, node_=node())
        accepted = await client.recv()
        await client.sotw(RDS, names, version=accepted.version_info, nonce=accepted.nonce)

        ratings = routing("v1", name="ratings").replace("subset: v1", "subset: v9")
        env.apply(routing("v2", bad=True) + "---" + ratings)
        bad = await client.recv()
        assert sorted(_names(bad)) == ["8080", "9090"]
        await client.sotw(
            RDS, names, version=accepted.version_info, nonce=bad.nonce, error=ENVOY_SAYS
        )

        reverted = await client.recv()
        assert sorted(_names(reverted)) == ["8080", "9090"]
        assert clusters_routed(reverted) == {v("v1")}
        assert clusters_routed(reverted, "ratings") == {
            "outbound|9090|v9|ratings.default.svc.cluster.local"
        }
        assert tracker.attributions[0].how == "push+provenance+message"
    finally:
        await client.close()
        await env.stop()


def _names(response: Any) -> list[str]:
    out = []
    for any_ in response.resources:
        config = route_pb2.RouteConfiguration()
        any_.Unpack(config)
        out.append(config.name)
    return out


async def test_by_default_only_an_authenticated_proxy_can_revert_an_object() -> None:
    """PILOT_REVERT_REJECTED_CONFIG=authenticated (the default): an anonymous stream's NACK is
    attributed and logged but withdraws nothing from the mesh; the same NACK from a proxy
    with a verified identity reverts the object."""
    env, tracker = await start(MESH + "---" + routing("v1"), revert="authenticated")
    client = AdsClient(env.address)
    try:
        accepted = await subscribe(client)
        await ack(client, accepted)
        env.apply(routing("v2", bad=True))
        bad = await client.recv()
        await nack(client, bad, accepted, ENVOY_SAYS)
        await client.expect_nothing()
        assert tracker.attributions[-1].config is not None  # found, but not acted on
        assert env.env.last_good.rejection(KEY) is None

        # The same stream, now with a verified identity (what the secure port gives).
        (conn,) = env.server.connections()
        conn.proxy = dataclasses.replace(
            conn.proxy, identity=Identity("cluster.local", "default", "app")
        )
        env.apply(routing("v3", bad=True))
        worse = await client.recv()
        await nack(client, worse, accepted, ENVOY_SAYS)
        # Reverted to the version served before it (the anonymous NACK changed nothing).
        reverted = await client.recv()
        assert clusters_routed(reverted) == {v("v2")}
        assert env.env.last_good.rejection(KEY) is not None
    finally:
        await client.close()
        await env.stop()
