"""How store changes become push requests: full, endpoint-only, or config."""

from __future__ import annotations

from typing import Any

import yaml

from pilot.bootstrap.environment import Environment
from pilot.config.store import ConfigStore
from pilot.model.push_request import PushRequest, TriggerReason
from pkg.config.mesh import MeshConfig
from pkg.config.model import Config, Kind
from pkg.config.schema import parse_object

SE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: %s, labels: {version: v1}}]
"""

WE = """
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: w1, namespace: default}
spec: {address: 127.0.5.1, labels: {app: reviews, version: %s}, serviceAccount: reviews}
"""


def obj(text: str) -> Config[Any]:
    result = parse_object(yaml.safe_load(text))
    assert result.config is not None, result.errors
    return result.config


def env_with(*configs: Config[Any]) -> tuple[Environment, ConfigStore, list[PushRequest]]:
    store = ConfigStore()
    store.replace_all(configs)
    env = Environment(store, MeshConfig(), "cluster.local")
    pushed: list[PushRequest] = []
    env.set_push_handler(pushed.append)
    return env, store, pushed


def test_endpoint_address_change_is_endpoint_only() -> None:
    env, store, pushed = env_with(obj(SE % "10.0.0.1"))
    store.upsert(obj(SE % "10.0.0.2"))
    assert len(pushed) == 1
    assert pushed[0].endpoints_only
    assert dict(pushed[0].reasons) == {TriggerReason.ENDPOINT: 1}
    endpoints = env.endpoint_index().get("reviews.default.svc.cluster.local", "default")
    assert [e.address for e in endpoints] == ["10.0.0.2"]


def test_service_port_change_is_a_full_push() -> None:
    _env, store, pushed = env_with(obj(SE % "10.0.0.1"))
    store.upsert(obj((SE % "10.0.0.1").replace("number: 9080", "number: 9081")))
    assert len(pushed) == 1
    assert not pushed[0].endpoints_only
    assert Kind.SERVICE_ENTRY in pushed[0].kinds()


def test_virtual_service_change_is_a_config_push() -> None:
    vs = obj(
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}
"""
    )
    _env, store, pushed = env_with(obj(SE % "10.0.0.1"))
    store.upsert(vs)
    assert [dict(p.reasons) for p in pushed] == [{TriggerReason.CONFIG: 1}]
    assert pushed[0].configs_updated == {vs.key}


def test_workload_entry_label_change_is_a_full_push() -> None:
    selector_se = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
"""
    env, store, pushed = env_with(obj(selector_se), obj(WE % "v1"))
    store.upsert(obj(WE % "v2"))
    assert len(pushed) == 1
    assert not pushed[0].endpoints_only
    assert Kind.WORKLOAD_ENTRY in pushed[0].kinds()
    endpoints = env.endpoint_index().get("reviews.default.svc.cluster.local", "default")
    assert endpoints[0].labels["version"] == "v2"
    assert endpoints[0].service_account == "spiffe://cluster.local/ns/default/sa/reviews"
