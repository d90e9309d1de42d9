"""The offline plan (`python -m pilot.plan --config-dir`) equals the online one: istiod serving
the same directory, with proxies of the same identities connected (authenticated, as on the
secure port), answers `POST /debug/plan` with the same classes, diffs and findings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pilot.bootstrap.environment import Environment
from pilot.config.file import FileConfigSource
from pilot.plan.offline import DOMAIN_SUFFIX as DOMAIN
from pilot.plan.offline import OfflineError, load_dir, offline_plan, select, simulated_proxies
from pilot.xds.debug import DebugApp
from pkg.config.mesh import MeshConfig
from pkg.config.model import Kind
from pkg.credentials import Identity
from pkg.xds import typeurls
from tests.helpers.ads import AdsClient, AdsEnv, node
from tests.pilot.plan.offline_mesh import WEIGHTS, write_mesh


def authenticate(metadata: Mapping[str, str], uris: Sequence[str]) -> Identity:
    namespace, account = metadata["x-test-identity"].split("/")
    return Identity("cluster.local", namespace, account)


async def online_plan(config: Path, change: str) -> dict[str, Any]:
    env = AdsEnv()
    await FileConfigSource([config], env.store).load()
    env.server.initialize()
    await env.server.start()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((env.server.grpc_handler(authenticate),))
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    http = TestClient(TestServer(DebugApp(env.server, list, list, lambda: True).app()))
    await http.start_server()
    clients = []
    try:
        proxies = simulated_proxies(env.env.push_inputs().configs)
        for p in proxies:
            identity = ("x-test-identity", f"{p.namespace}/{p.service_account}")
            client = AdsClient(address, metadata=[identity])
            clients.append(client)
            n = node(p.short, p.ip, dict(p.labels), p.type, service_account=p.service_account)
            await client.sotw(typeurls.CLUSTER, node_=n)
        deadline = time.monotonic() + 10
        for _ in range(1000):
            if len(env.server.connections()) == len(proxies):
                break
            assert time.monotonic() < deadline, "proxies did not connect"
            await asyncio.sleep(0.01)
        response = await http.post("/debug/plan", data=change.encode())
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body
    finally:
        for client in clients:
            await client.close()
        await http.close()
        await server.stop(grace=0)
        await env.server.stop()


async def test_offline_plan_equals_the_online_plan(tmp_path: Path) -> None:
    config = write_mesh(tmp_path)
    offline = await asyncio.to_thread(offline_plan, [config], WEIGHTS.encode())
    online = await online_plan(config, WEIGHTS)
    assert offline["changed"] and online["proxies"] == offline["proxies"] == 4
    assert offline["simulated"] and "simulated" not in online
    for key in ("valid", "objects", "changed", "classes", "analysis", "generatorRuns"):
        assert offline[key] == online[key], key


MORE = """
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ingress-7d9, namespace: istio-system}
spec:
  address: 127.0.23.1
  labels: {istio: ingressgateway}
  serviceAccount: istio-ingressgateway
---
apiVersion: v1
kind: Pod
metadata: {name: details-v1-5f8, namespace: default, labels: {app: details}}
spec: {serviceAccountName: bookinfo-details}
status: {podIP: 127.0.23.2}
"""


def test_simulated_proxies_from_workload_entries_and_gateways(tmp_path: Path) -> None:
    config = write_mesh(tmp_path)
    store = load_dir([config])
    configs = {kind: tuple(store.list(kind)) for kind in (Kind.WORKLOAD_ENTRY, Kind.GATEWAY)}
    gateway_only = simulated_proxies(configs)
    # The Gateway selects no workload of the directory: a router of its own.
    assert [(p.type, p.short) for p in gateway_only if p.type == "router"] == [
        ("router", "ingressgateway.default")
    ]
    (config / "more.yaml").write_text(MORE)
    store = load_dir([config])
    configs = Environment(store, MeshConfig(), DOMAIN).push_inputs().configs
    proxies = {p.short: p for p in simulated_proxies(configs)}
    # The Gateway now selects the ingress entry (in any namespace); the Pod document is
    # ignored, as istiod's config-dir loader ignores it.
    assert sorted(proxies) == [
        "ingress-7d9.istio-system",
        "productpage-v1.default",
        "reviews-v1.default",
        "reviews-v2.default",
    ]
    ingress = proxies["ingress-7d9.istio-system"]
    assert (ingress.type, ingress.ip, ingress.service_account) == (
        "router",
        "127.0.23.1",
        "istio-ingressgateway",
    )
    page = proxies["productpage-v1.default"]
    assert (page.type, page.labels) == ("sidecar", (("app", "productpage"),))
    assert page.node_id == "sidecar~127.0.22.1~productpage-v1.default~default.svc.cluster.local"
    assert [p.short for p in select(list(proxies.values()), ["reviews-v2.default"])] == [
        "reviews-v2.default"
    ]
    with pytest.raises(OfflineError, match=r"no simulated proxy nope\.default"):
        select(list(proxies.values()), ["nope.default"])


def test_missing_config_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OfflineError, match="not a directory"):
        load_dir([tmp_path / "missing"])
