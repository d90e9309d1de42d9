"""Which RequestAuthentications apply to a workload, and the JWT rules they contribute."""

from __future__ import annotations

from pilot.model.request_authentication import GATEWAY_NAME_LABEL
from tests.helpers.xds import FakeDiscovery

POLICIES = """
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: mesh, namespace: istio-system, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  jwtRules: [{issuer: mesh-issuer, jwks: '{"keys": []}'}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: mesh-selected, namespace: istio-system, creationTimestamp: "2024-01-02T00:00:00Z"}
spec:
  selector: {matchLabels: {app: api}}
  jwtRules: [{issuer: a-mesh-api-issuer, jwks: '{"keys": []}'}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ns-wide, namespace: team, creationTimestamp: "2024-01-03T00:00:00Z"}
spec:
  jwtRules: [{issuer: team-issuer, jwks: '{"keys": []}'}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: api-only, namespace: team, creationTimestamp: "2024-01-04T00:00:00Z"}
spec:
  selector: {matchLabels: {app: api}}
  jwtRules:
  - {issuer: z-api-issuer, jwks: '{"keys": []}'}
  - {issuer: b-api-issuer, jwks: '{"keys": []}'}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: gateway-ref, namespace: team, creationTimestamp: "2024-01-05T00:00:00Z"}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: edge}
  jwtRules: [{issuer: edge-issuer, jwks: '{"keys": []}'}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: other-ns, namespace: elsewhere}
spec:
  jwtRules: [{issuer: elsewhere-issuer, jwks: '{"keys": []}'}]
"""


def names(namespace: str, labels: dict[str, str]) -> list[str]:
    index = FakeDiscovery(POLICIES).push.request_authentication
    return [c.name for c in index.policies_for(namespace, labels)]


def test_namespace_then_root_policies_oldest_first() -> None:
    assert names("team", {"app": "web"}) == ["ns-wide", "mesh"]
    assert names("team", {"app": "api"}) == ["ns-wide", "api-only", "mesh", "mesh-selected"]


def test_root_namespace_policies_apply_mesh_wide() -> None:
    assert names("other", {}) == ["mesh"]
    assert names("other", {"app": "api"}) == ["mesh", "mesh-selected"]
    assert names("istio-system", {"app": "api"}) == ["mesh", "mesh-selected"]


def test_target_ref_policies_only_attach_to_named_gateway_api_gateways() -> None:
    # A plain workload ignores targetRef policies altogether.
    assert "gateway-ref" not in names("team", {"app": "edge"})
    # A Gateway API gateway gets the policies naming it, and selector-based ones too.
    assert names("team", {GATEWAY_NAME_LABEL: "edge"}) == ["ns-wide", "gateway-ref", "mesh"]
    assert "gateway-ref" not in names("team", {GATEWAY_NAME_LABEL: "other"})
    # Only in the policy's own namespace.
    assert "gateway-ref" not in names("elsewhere", {GATEWAY_NAME_LABEL: "edge"})


def test_rules_are_ordered_by_issuer() -> None:
    index = FakeDiscovery(POLICIES).push.request_authentication
    rules = index.jwt_rules_for("team", {"app": "api"})
    assert [r.issuer for r in rules] == [
        "a-mesh-api-issuer",
        "b-api-issuer",
        "mesh-issuer",
        "team-issuer",
        "z-api-issuer",
    ]


def test_no_policies() -> None:
    index = FakeDiscovery("").push.request_authentication
    assert not index
    assert index.policies_for("default", {}) == ()
