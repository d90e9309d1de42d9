"""`POST /debug/plan` against simulated Envoys: the planned diff of each scenario change equals,
resource by resource and byte for byte, what the proxies receive once the change is applied;
alike proxies cost one generation; planning touches neither the live config nor the proxies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pilot.model.proxy import parse_node
from pilot.model.push_context import PushContext
from pilot.plan.change import parse_change
from pilot.plan.compute import PlanTarget, compute_plan
from pilot.plan.diff import diff_type
from pilot.plan.planner import planned_inputs
from pilot.xds.debug import DebugApp
from pilot.xds.wire import BuiltResource
from tests.helpers.ads import AdsEnv, node, parse_all
from tests.helpers.ads_follower import SHORT, Follower

ALIKE = 24
DOMAIN = "default.svc.cluster.local"
TYPE_URLS = {short: url for url, short in SHORT.items()}

MESH = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 127.0.20.1, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 127.0.20.2, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.21.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route:
    - {destination: {host: reviews.default.svc.cluster.local, subset: v1}, weight: 100}
    - {destination: {host: reviews.default.svc.cluster.local, subset: v2}, weight: 0}
"""

VS_WEIGHTS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route:
    - {destination: {host: reviews.default.svc.cluster.local, subset: v1}, weight: 50}
    - {destination: {host: reviews.default.svc.cluster.local, subset: v2}, weight: 50}
"""

NEW_SUBSET = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
"""

AUTHZ = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/productpage]}}]
    to: [{operation: {methods: [GET]}}]
"""

ENDPOINT = """
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v3, namespace: default}
spec: {address: 127.0.20.3, labels: {app: reviews, version: v3}}
"""

SIDECAR = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: ["./ratings.default.svc.cluster.local"]
"""


class Mesh:
    def __init__(self, env: AdsEnv, http: TestClient, followers: list[Follower]) -> None:  # type: ignore[type-arg]
        self.env = env
        self.http = http
        self.followers = followers

    def idle(self) -> bool:
        server = self.env.server
        queue = server._queue
        if queue.pending() or queue._processing:
            return False
        if any(f.pending or not f.client.queue.empty() for f in self.followers):
            return False
        return all(
            w.nonce_sent == w.nonce_acked for c in server.connections() for w in c.watches.values()
        )

    async def wait(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            if condition():
                return
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.01)

    async def plan(self, change: str) -> dict[str, Any]:
        response = await self.http.post("/debug/plan", data=change.encode())
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    def received(self) -> dict[str, dict[str, dict[str, bytes]]]:
        return {f.node.id: {k: dict(v) for k, v in f.state.items()} for f in self.followers}


@pytest.fixture
async def mesh() -> AsyncIterator[Mesh]:
    env = AdsEnv(parse_all(MESH))
    await env.start()
    app = DebugApp(env.server, list, list, lambda: True).app()
    http = TestClient(TestServer(app))
    await http.start_server()
    nodes = [
        node(f"productpage-{i}.default", f"127.0.30.{i + 1}", {"app": "productpage"})
        for i in range(ALIKE)
    ]
    nodes.append(node("reviews-v1.default", "127.0.20.1", {"app": "reviews", "version": "v1"}))
    followers = [Follower(env.address, n) for n in nodes]
    m = Mesh(env, http, followers)
    try:
        for f in followers:
            await f.start()
        await m.wait(lambda: all(f.state["RDS"] for f in followers) and m.idle())
        yield m
    finally:
        for f in followers:
            await f.close()
        await http.close()
        await env.stop()


def actual_types(
    before: dict[str, dict[str, bytes]], after: dict[str, dict[str, bytes]]
) -> list[Any]:
    out = []
    for short in ("CDS", "EDS", "LDS", "RDS"):
        url = TYPE_URLS[short]

        def built(state: dict[str, bytes]) -> dict[str, BuiltResource]:
            return {n: BuiltResource(n, url, raw) for n, raw in state.items()}  # noqa: B023

        out.append(diff_type(short, built(before[short]), built(after[short])).as_json())
    return out


async def apply_and_compare(mesh: Mesh, change: str) -> dict[str, Any]:
    before = mesh.received()
    live = mesh.env.server.push_context
    revision = mesh.env.store.revision
    plan = await mesh.plan(change)
    # Nothing applied: same live snapshot, same store, no proxy got anything.
    assert mesh.env.server.push_context is live
    assert mesh.env.store.revision == revision
    assert mesh.idle() and mesh.received() == before
    assert plan["valid"] and plan["changed"]
    assert plan["proxies"] == ALIKE + 1
    # Alike proxies form one class, generated once per side.
    classes = {c["count"]: c for c in plan["classes"]}
    assert sorted(classes) == [1, ALIKE]
    assert plan["generatorRuns"] <= 2 * 2 * 5
    mesh.env.apply(change)
    await mesh.wait(lambda: mesh.env.server.push_context is not live and mesh.idle())
    after = mesh.received()
    for cls in plan["classes"]:
        planned = [t for t in cls["types"] if t["type"] != "SDS"]
        assert all(not t["resources"] for t in cls["types"] if t["type"] == "SDS")
        for proxy_id in cls["proxyIds"]:
            assert actual_types(before[proxy_id], after[proxy_id]) == planned, proxy_id
    return plan


def by_name(plan: dict[str, Any], count: int) -> dict[str, dict[str, Any]]:
    cls = next(c for c in plan["classes"] if c["count"] == count)
    return {t["type"]: t for t in cls["types"]}


async def test_virtual_service_weight_change(mesh: Mesh) -> None:
    plan = await apply_and_compare(mesh, VS_WEIGHTS)
    page = by_name(plan, ALIKE)
    assert page["RDS"]["changed"] == ["9080"]
    assert '"weight": 50' in page["RDS"]["resources"][0]["diff"]
    assert not page["CDS"]["resources"] and not page["EDS"]["resources"]


async def test_new_destination_rule_subset(mesh: Mesh) -> None:
    plan = await apply_and_compare(mesh, NEW_SUBSET)
    page = by_name(plan, ALIKE)
    assert page["CDS"]["added"] == ["outbound|9080|v3|reviews.default.svc.cluster.local"]
    assert page["EDS"]["added"] == ["outbound|9080|v3|reviews.default.svc.cluster.local"]


async def test_new_authorization_policy_changes_only_the_selected_workload(mesh: Mesh) -> None:
    plan = await apply_and_compare(mesh, AUTHZ)
    assert not next(c for c in plan["classes"] if c["count"] == ALIKE)["changed"]
    reviews = by_name(plan, 1)
    assert reviews["LDS"]["changed"] and "rbac" in reviews["LDS"]["resources"][0]["diff"].lower()


async def test_endpoint_added_is_an_endpoint_only_push(mesh: Mesh) -> None:
    plan = await apply_and_compare(mesh, ENDPOINT)
    page = next(c for c in plan["classes"] if c["count"] == ALIKE)
    assert page["endpointOnly"]
    assert "127.0.20.3" in by_name(plan, ALIKE)["EDS"]["resources"][0]["diff"]


async def test_sidecar_scoping(mesh: Mesh) -> None:
    plan = await apply_and_compare(mesh, SIDECAR)
    page = by_name(plan, ALIKE)
    assert "outbound|9080||reviews.default.svc.cluster.local" in page["CDS"]["removed"]
    assert page["CDS"]["sizeChange"] < 0


async def test_invalid_change_plans_nothing(mesh: Mesh) -> None:
    plan = await mesh.plan(VS_WEIGHTS.replace("weight: 50", "weight: -5", 1))
    assert not plan["valid"] and plan["errors"] and plan["classes"] == []
    assert plan["generatorRuns"] == 0


async def test_unchanged_object_plans_no_change(mesh: Mesh) -> None:
    plan = await mesh.plan(
        AUTHZ.replace("reviews-viewer", "other").replace("app: reviews", "app: none")
    )
    assert plan["valid"] and not plan["changed"]


async def test_grouping_equals_planning_each_proxy_alone(mesh: Mesh) -> None:

    server = mesh.env.server
    targets = [PlanTarget(c.proxy, c.generators) for c in server.connections()]
    after = PushContext.build(planned_inputs(server.source.push_inputs(), parse_change(NEW_SUBSET)))
    grouped = compute_plan(targets, server.push_context, after)
    alone = compute_plan(targets, server.push_context, after, group=False)
    assert len(grouped.classes) == 2 and len(alone.classes) == ALIKE + 1
    by_proxy = {p: c.types for c in grouped.classes for p in c.proxies}
    assert all(by_proxy[c.proxies[0]] == c.types for c in alone.classes)
    assert alone.generator_runs > 10 * grouped.generator_runs


async def test_a_thousand_alike_proxies_cost_one_generation(mesh: Mesh) -> None:

    server = mesh.env.server
    generators = server.connections()[0].generators
    targets = [
        PlanTarget(
            parse_node(
                f"sidecar~127.0.{40 + i // 250}.{i % 250 + 1}~page-{i}.default~{DOMAIN}",
                {"NAMESPACE": "default", "LABELS": {"app": "productpage"}},
            ),
            generators,
        )
        for i in range(1000)
    ]
    after = PushContext.build(planned_inputs(server.source.push_inputs(), parse_change(VS_WEIGHTS)))
    many = compute_plan(targets, server.push_context, after)
    one = compute_plan(targets[:1], server.push_context, after)
    (cls,) = many.classes
    assert len(cls.proxies) == 1000 and cls.changed
    assert many.generator_runs == one.generator_runs
