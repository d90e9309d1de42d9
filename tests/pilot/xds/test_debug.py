"""istiod's HTTP endpoints: readiness, version and the /debug handlers, with a live stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pilot.xds.debug import DebugApp
from pkg.xds import typeurls
from tests.helpers.ads import AdsClient, AdsEnv, parse_all
from tests.pilot.xds.test_ads_server import MESH, SUBSET_CLUSTERS


@pytest.fixture
async def env() -> AsyncIterator[AdsEnv]:
    ads = AdsEnv(parse_all(MESH))
    await ads.start()
    try:
        yield ads
    finally:
        await ads.stop()


@pytest.fixture
async def http(env: AdsEnv) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    configz = lambda: [dict(c.raw) for cs in env.store.by_kind().values() for c in cs]  # noqa: E731
    app = DebugApp(env.server, configz, lambda: ["a.yaml[0]: bad"], lambda: True).app()
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def test_ready_and_version(http: TestClient) -> None:  # type: ignore[type-arg]
    assert (await http.get("/ready")).status == 200
    version = await (await http.get("/version")).json()
    assert version["version"]


async def test_syncz_adsz_and_config_dump_follow_a_connected_proxy(
    env: AdsEnv,
    http: TestClient,  # type: ignore[type-arg]
) -> None:
    client = AdsClient(env.address)
    try:
        await client.sotw(typeurls.CLUSTER)
        cds = await client.recv()
        await client.sotw(typeurls.CLUSTER, version=cds.version_info, nonce=cds.nonce)
        await client.sotw(typeurls.ENDPOINT, SUBSET_CLUSTERS)
        await client.recv()
        syncz = await (await http.get("/debug/syncz")).json()
        assert len(syncz) == 1
        assert syncz[0]["proxy"] == "app.default"
        assert syncz[0]["cluster_sent"] == cds.nonce
        assert syncz[0]["cluster_acked"] == cds.nonce
        adsz = await (await http.get("/debug/adsz")).json()
        assert adsz["totalClients"] == 1
        watches = adsz["clients"][0]["watches"]
        assert sorted(watches[typeurls.ENDPOINT]) == sorted(SUBSET_CLUSTERS)
        dump = await (await http.get("/debug/config_dump?proxyID=app.default")).json()
        types = [c["@type"].rsplit(".", 1)[1] for c in dump["configs"]]
        assert types[:3] == ["BootstrapConfigDump", "ClustersConfigDump", "ListenersConfigDump"]
        clusters = {c["cluster"]["name"] for c in dump["configs"][1]["dynamicActiveClusters"]}
        assert set(SUBSET_CLUSTERS) <= clusters
        missing = await http.get("/debug/config_dump")
        assert missing.status == 400
        unknown = await http.get("/debug/config_dump?proxyID=nobody.nowhere")
        assert unknown.status == 404
    finally:
        await client.close()


async def test_configz_registryz_and_push_status(http: TestClient) -> None:  # type: ignore[type-arg]
    configz = await (await http.get("/debug/configz")).json()
    assert {c["kind"] for c in configz} == {"ServiceEntry", "DestinationRule"}
    registryz = await (await http.get("/debug/registryz")).json()
    assert [s["hostname"] for s in registryz] == ["reviews.default.svc.cluster.local"]
    status = await (await http.get("/debug/push_status")).json()
    assert status["problems"] == ["a.yaml[0]: bad"]


AUTHZ = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-deny, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: app-allow, namespace: default}
spec:
  selector: {matchLabels: {app: app}}
  rules: [{to: [{operation: {methods: ["GET"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-allow, namespace: default}
spec:
  selector: {matchLabels: {app: other}}
"""


async def test_authorizationz_dumps_policies_and_those_of_a_proxy() -> None:
    env = AdsEnv(parse_all(MESH + "---" + AUTHZ))
    await env.start()
    app = DebugApp(env.server, lambda: [], lambda: [], lambda: True).app()
    http = TestClient(TestServer(app))
    await http.start_server()
    client = AdsClient(env.address)
    try:
        dump = await (await http.get("/debug/authorizationz")).json()
        policies = dump["authorization_policies"]
        assert policies["root_namespace"] == "istio-system"
        by_ns = policies["namespace_to_policies"]
        assert [p["name"] for p in by_ns["default"]] == ["app-allow", "other-allow"]
        assert by_ns["istio-system"][0]["spec"]["action"] == "DENY"
        missing = await http.get("/debug/authorizationz?proxyID=nobody.nowhere")
        assert missing.status == 404
        await client.sotw(typeurls.CLUSTER)
        await client.recv()
        applied = await (await http.get("/debug/authorizationz?proxyID=app.default")).json()
        names = {k: [p["name"] for p in v] for k, v in applied.items() if k != "proxy"}
        assert names == {"custom": [], "deny": ["mesh-deny"], "allow": ["app-allow"], "audit": []}
    finally:
        await client.close()
        await http.close()
        await env.stop()
