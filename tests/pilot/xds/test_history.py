"""The proxy history (pilot/xds/history.py) on a real DiscoveryServer with real ADS streams:
identical resources are stored once across proxies and snapshots, a dump at an earlier push
version or time equals what `/debug/config_dump` answered then, the byte budget holds with
oldest-first eviction, and a disconnected proxy's history stays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf import any_pb2

from pilot.features import from_env
from pilot.xds.config_dump import build_config_dump, to_json
from pilot.xds.connection import Connection
from pilot.xds.history import ProxyHistory
from pilot.xds.history_model import stored_bytes
from pilot.xds.history_query import history_query
from pilot.xds.wire import BuiltResource
from pkg.config.model import ConfigKey, Kind
from pkg.errors import ConfigError
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
  endpoints:
  - {address: 10.1.0.1, labels: {version: v1}}
  - {address: 10.1.0.2, labels: {version: v2}}
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

SUBSETS = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc, namespace: default}}
spec:
  host: svc.example.com
  subsets: [{subsets}]
"""


def strip_times(value: Any) -> Any:
    """The dump without `last_updated` stamps (istiod's live dump stamps "now")."""
    if isinstance(value, dict):
        return {k: strip_times(v) for k, v in value.items() if k != "lastUpdated"}
    if isinstance(value, list):
        return [strip_times(v) for v in value]
    return value


def by_name(dump: Any) -> dict[str, dict[str, Any]]:
    """Each section's dynamic resources by name (order is the generator's, not the point)."""
    out: dict[str, dict[str, Any]] = {}
    for section in strip_times(dump)["configs"]:
        kind = section["@type"].rsplit(".", 1)[-1]
        for key, entries in section.items():
            if key.startswith("dynamic") and isinstance(entries, list):
                for entry in entries:
                    name = entry.get("name") or next(
                        v.get("name") or v.get("clusterName")
                        for v in entry.values()
                        if isinstance(v, dict)
                    )
                    out.setdefault(kind, {})[name] = entry
    return out


@pytest.fixture
async def env() -> AsyncIterator[AdsEnv]:
    ads = AdsEnv(parse_all(MESH + "---" + ROUTE.format(timeout="1s")))
    await ads.start()
    try:
        yield ads
    finally:
        await ads.stop()


def watch(env: AdsEnv, history: ProxyHistory) -> None:
    env.server.events.subscribe(history)


class Proxy:
    """A SotW or Delta proxy watching CDS, LDS and RDS 80, ACKing everything it is sent."""

    def __init__(
        self, env: AdsEnv, name: str, ip: str, delta: bool = False, routes: bool = True
    ) -> None:
        self.env, self.name, self.ip, self.delta, self.routes = env, name, ip, delta, routes
        self.client = AdsClient(env.address, delta=delta)

    async def start(self) -> None:
        n = node(self.name, ip=self.ip)
        if self.delta:
            await self.client.delta_request(typeurls.CLUSTER, ["*"], node_=n)
            await self.ack()
            await self.client.delta_request(typeurls.LISTENER, ["*"])
            await self.ack()
            await self.client.delta_request(typeurls.ROUTE, ["80"])
        else:
            await self.client.sotw(typeurls.CLUSTER, [], node_=n)
            await self.ack()
            await self.client.sotw(typeurls.LISTENER, [])
            if not self.routes:
                await self.ack()
                return
            await self.ack()
            await self.client.sotw(typeurls.ROUTE, ["80"])
        await self.ack()

    async def ack(self) -> Any:
        response = await self.client.recv()
        if self.delta:
            await self.client.delta_request(response.type_url, nonce=response.nonce)
        else:
            names = ["80"] if response.type_url == typeurls.ROUTE else []
            await self.client.sotw(
                response.type_url, names, version=response.version_info, nonce=response.nonce
            )
        return response

    def conn(self) -> Connection:
        return next(c for c in self.env.server.connections() if c.proxy.name == self.name)

    def live_dump(self) -> Any:
        return to_json(build_config_dump(self.conn(), self.env.server.push_context))


async def test_dumps_at_each_version_equal_the_live_dumps_then(env: AdsEnv) -> None:
    history = ProxyHistory()
    watch(env, history)
    sotw, delta = Proxy(env, "a.default", "127.0.9.1"), Proxy(env, "b.default", "127.0.9.2", True)
    await sotw.start()
    await delta.start()
    steps: list[tuple[str, Any, Any]] = []  # (push version, live dump of a, of b)

    def record() -> None:
        steps.append((env.server.push_context.version, sotw.live_dump(), delta.live_dump()))

    record()
    changes = [
        ROUTE.format(timeout="2s"),
        SUBSETS.format(subsets="{name: v1, labels: {version: v1}}"),
        ROUTE.format(timeout="3s"),
    ]
    for change in changes:
        before = env.server.push_context.version
        env.apply(change)
        await eventually(lambda b=before: env.server.push_context.version != b, message="push")
        await sotw.ack()
        await delta.ack()
        record()
    for proxy, index in ((sotw, 1), (delta, 2)):
        timeline = history.find(proxy.name)
        assert timeline is not None and timeline.connected
        for step in steps:
            version, live = step[0], step[index]
            status, dump, _ = history_query(
                history, {"proxyID": proxy.name, "dump": "", "version": version}, 0.0
            )
            assert status == 200, dump
            assert by_name(dump) == by_name(live), (proxy.name, version)
    # The timeline names the pushes and the objects they carried.
    status, listing, _ = history_query(history, {"proxyID": "a.default"}, 0.0)
    assert status == 200
    versions = [s["version"] for s in listing["snapshots"]]
    assert versions == [step[0] for step in steps]
    subset_step = listing["snapshots"][2]
    assert subset_step["configs"] == [str(ConfigKey(Kind.DESTINATION_RULE, "svc", "default"))]
    # The subset cluster is new; the service cluster now names the DestinationRule.
    assert subset_step["changed"]["CDS"] == {"added": 1, "removed": 0, "changed": 1}
    assert "RDS" not in subset_step["changed"]
    assert listing["snapshots"][1]["changed"] == {"RDS": {"added": 0, "removed": 0, "changed": 1}}
    for client in (sotw.client, delta.client):
        await client.close()


async def test_identical_resources_are_stored_once(env: AdsEnv) -> None:
    history = ProxyHistory()
    watch(env, history)
    proxies = [Proxy(env, f"p{i}.default", f"127.0.9.{10 + i}") for i in range(3)]
    for proxy in proxies:
        await proxy.start()
    one = history.bodies
    distinct = sum(len(w.sent) for w in proxies[0].conn().watches.values())
    # One body per distinct resource, whatever the number of proxies: the alike proxies'
    # clusters, listeners and route configs are the same objects.
    assert one == distinct
    latest = [history.latest(history.find(p.name)) for p in proxies]  # type: ignore[arg-type]
    assert latest[0].maps[typeurls.CLUSTER] is latest[2].maps[typeurls.CLUSTER]
    env.apply(ROUTE.format(timeout="5s"))
    for proxy in proxies:
        await proxy.ack()
    # One new route body; every proxy's new snapshot shares its predecessor's clusters.
    assert history.bodies == one + 1
    for proxy in proxies:
        timeline = history.find(proxy.name)
        assert timeline is not None and len(timeline.snapshots) == 2
        old, new = timeline.snapshots
        assert new.maps[typeurls.CLUSTER] is old.maps[typeurls.CLUSTER]
        assert new.maps[typeurls.ROUTE] is not old.maps[typeurls.ROUTE]
    for proxy in proxies:
        await proxy.client.close()


async def test_budget_holds_and_oldest_go_first(env: AdsEnv) -> None:
    history = ProxyHistory()
    watch(env, history)
    # A proxy with no routes: the route changes below never concern it, so its one snapshot
    # is the oldest of all; yet it is kept, the churning proxy's older snapshots go first.
    still = Proxy(env, "still.default", "127.0.9.3", routes=False)
    await still.start()
    proxy = Proxy(env, "a.default", "127.0.9.1")
    await proxy.start()
    history.max_bytes = history.bytes * 3 // 2  # room for a few route changes, not twelve
    seen = []
    for i in range(12):
        env.apply(ROUTE.format(timeout=f"{10 + i}s"))
        await proxy.ack()
        assert history.bytes <= history.max_bytes
        timeline = history.find("a.default")
        assert timeline is not None
        seen.append(env.server.push_context.version)
    timeline = history.find("a.default")
    assert timeline is not None and timeline.dropped > 0 and history.evicted > 0
    kept = [s.version for s in timeline.snapshots]
    assert len(kept) > 1 and kept == seen[-len(kept) :]  # the newest survive, in order
    assert not any(s.incomplete for s in timeline.snapshots)
    quiet = history.find("still.default")
    assert quiet is not None and len(quiet.snapshots) == 1 and quiet.dropped == 0
    status, dump, _ = history_query(history, {"proxyID": "a.default", "dump": ""}, 0.0)
    assert status == 200 and by_name(dump) == by_name(proxy.live_dump())
    status, answer, _ = history_query(
        history, {"proxyID": "a.default", "dump": "", "version": seen[0]}, 0.0
    )
    assert status == 404 and "no snapshot" in answer["error"]
    await proxy.client.close()
    await still.client.close()


async def test_a_disconnected_proxys_history_remains(env: AdsEnv) -> None:
    history = ProxyHistory()
    watch(env, history)
    proxy = Proxy(env, "a.default", "127.0.9.1")
    await proxy.start()
    live = proxy.live_dump()
    at = history.latest(history.find("a.default")).at  # type: ignore[arg-type]
    await proxy.client.close()
    await eventually(lambda: not env.server.connections(), message="the stream to close")
    timeline = history.find("a.default")
    assert timeline is not None and not timeline.connected and timeline.disconnected_at
    query = {"proxyID": "a.default", "dump": "", "time": str(at + 0.001)}
    status, dump, _ = history_query(history, query, 0.0)
    assert status == 200 and by_name(dump) == by_name(live)
    env.apply(ROUTE.format(timeout="9s"))  # pushes reach nobody; the history is unchanged
    assert len(timeline.snapshots) == 1


async def test_bad_queries_name_the_problem(env: AdsEnv) -> None:
    history = ProxyHistory()
    watch(env, history)
    proxy = Proxy(env, "a.default", "127.0.9.1")
    await proxy.start()
    at = history.latest(history.find("a.default")).at  # type: ignore[arg-type]
    assert history_query(history, {"proxyID": "nobody.default"}, 0.0)[0] == 404
    status, answer, _ = history_query(
        history, {"proxyID": "a.default", "dump": "", "time": "x"}, 0.0
    )
    assert status == 400 and "time: expected RFC 3339" in answer["error"]
    query = {"proxyID": "a.default", "dump": "", "time": "1", "version": "v"}
    status, answer, _ = history_query(history, query, 0.0)
    assert status == 400 and "version and time" in answer["error"]
    status, answer, _ = history_query(
        history, {"proxyID": "a.default", "dump": "", "ago": "60"}, at
    )
    assert status == 404 and "oldest kept" in answer["error"]
    status, store, _ = history_query(history, {}, 0.0)
    assert status == 200 and store["bytes"] <= store["maxBytes"] and store["bodies"] >= 2
    await proxy.client.close()


def test_private_keys_are_never_kept() -> None:
    secret = secret_pb2.Secret(name="default")
    secret.tls_certificate.certificate_chain.inline_bytes = b"CERT"
    secret.tls_certificate.private_key.inline_bytes = b"KEY MATERIAL"
    packed = BuiltResource.pack("default", secret)
    kept = secret_pb2.Secret()
    stored = stored_bytes(packed)
    assert b"KEY MATERIAL" not in stored
    any_pb2.Any.FromString(stored).Unpack(kept)
    assert kept.tls_certificate.private_key.inline_string == "[redacted]"
    assert kept.tls_certificate.certificate_chain.inline_bytes == b"CERT"
    route = BuiltResource.pack("80", secret_pb2.Secret(name="x"))  # not an SDS type URL
    assert stored_bytes(BuiltResource("80", typeurls.ROUTE, route.any_bytes)) == route.any_bytes


def test_the_budget_knob() -> None:
    assert from_env({}).history_max_bytes == 64 << 20
    assert from_env({"PILOT_HISTORY_MAX_BYTES": "32768"}).history_max_bytes == 32768
    with pytest.raises(ConfigError, match="PILOT_HISTORY_MAX_BYTES"):
        from_env({"PILOT_HISTORY_MAX_BYTES": "lots"})
