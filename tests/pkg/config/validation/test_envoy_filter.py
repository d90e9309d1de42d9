from __future__ import annotations

import pytest

from pkg.config.specs.networking import ApplyTo, Operation
from tests.pkg.config.support import assert_rejected, assert_valid, warnings_of


def ef(body: str) -> str:
    head = (
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: ef}\nspec:\n"
    )
    return head + "".join(f"  {line}\n" for line in body.strip("\n").splitlines())


LUA = """
workloadSelector: {labels: {app: reviews}}
configPatches:
- applyTo: HTTP_FILTER
  match:
    context: SIDECAR_INBOUND
    proxy: {proxyVersion: '^1\\.2.*'}
    listener:
      portNumber: 8080
      filterChain:
        filter:
          name: envoy.filters.network.http_connection_manager
          subFilter: {name: envoy.filters.http.router}
  patch:
    operation: INSERT_BEFORE
    value:
      name: envoy.lua
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}
"""


def test_valid_envoy_filter() -> None:
    config = assert_valid(ef(LUA))
    patch = config.spec.config_patches[0]
    assert patch.apply_to is ApplyTo.HTTP_FILTER
    assert patch.patch.operation is Operation.INSERT_BEFORE
    assert patch.patch.value["name"] == "envoy.lua"


def test_envoy_filters_always_warn() -> None:
    assert any("EnvoyFilter exposes internal" in reason for _, reason in warnings_of(ef(LUA)))


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        (
            "configPatches:\n- patch: {operation: REMOVE}",
            "spec.configPatches[0].applyTo",
            "missing applyTo",
        ),
        ("configPatches:\n- applyTo: CLUSTER", "spec.configPatches[0].patch", "missing patch"),
        (
            "configPatches:\n- applyTo: CLUSTER\n  patch: {value: {}}",
            "spec.configPatches[0].patch.operation",
            "missing patch operation",
        ),
        (
            "configPatches:\n- applyTo: CLUSTER\n  patch: {operation: ADD}",
            "spec.configPatches[0].patch.value",
            "missing patch value",
        ),
        (
            "configPatches:\n- applyTo: CLUSTER\n  patch: {operation: ADD, value: [1]}",
            "spec.configPatches[0].patch.value",
            "object",
        ),
        ("configPatches:\n- applyTo: CLUSTR", "spec.configPatches[0].applyTo", "Unsupported value"),
        (
            "configPatches:\n- applyTo: CLUSTER\n  match: {listener: {}}\n  patch: {operation: "
            "REMOVE}",
            "spec.configPatches[0].match",
            "cannot have non cluster match",
        ),
        (
            "configPatches:\n- applyTo: LISTENER\n  match: {cluster: {}}\n  patch: {operation: "
            "REMOVE}",
            "spec.configPatches[0].match",
            "cannot have non listener match",
        ),
        (
            "configPatches:\n- applyTo: HTTP_ROUTE\n  match: {cluster: {}}\n  patch: {operation: "
            "REMOVE}",
            "spec.configPatches[0].match",
            "non route configuration match",
        ),
        (
            "configPatches:\n- applyTo: NETWORK_FILTER\n  match: {listener: {filterChain: "
            "{filter: {name: x, subFilter: {name: y}}}}}\n"
            "  patch: {operation: REMOVE}",
            "spec.configPatches[0].match.listener.filterChain.filter.subFilter",
            "HTTP_FILTER only",
        ),
        (
            "configPatches:\n- applyTo: HTTP_FILTER\n  match: {listener: {filterChain: {filter: "
            "{subFilter: {name: y}}}}}\n"
            "  patch: {operation: REMOVE}",
            "spec.configPatches[0].match.listener.filterChain.filter.name",
            "no name to match on",
        ),
        (
            "configPatches:\n- applyTo: CLUSTER\n  match: {proxy: {proxyVersion: '(1'}}\n  patch: "
            "{operation: REMOVE}",
            "spec.configPatches[0].match.proxy.proxyVersion",
            "invalid regex",
        ),
        (
            "configPatches:\n- applyTo: CLUSTER\n  match: {cluster: {}, listener: {}}\n  patch: "
            "{operation: REMOVE}",
            "spec.configPatches[0].match",
            "only one of listener, routeConfiguration, cluster, waypoint",
        ),
        (
            "workloadSelector: {labels: {a: b}}\ntargetRefs: [{kind: Service, name: s}]",
            "spec",
            "only one of targetRefs or workloadSelector",
        ),
        ("workloadSelector: {labels: {a: '*'}}", "spec.workloadSelector.labels[a]", "wildcard"),
    ],
)
def test_envoy_filter_rules(body: str, path: str, fragment: str) -> None:
    assert_rejected(ef(body), path, fragment)
