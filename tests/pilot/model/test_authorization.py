"""Which AuthorizationPolicies apply to a workload (Istio's ListAuthorizationPolicies)."""

from __future__ import annotations

from typing import Any

from pilot.model.authorization import AuthorizationPolicyIndex, is_dry_run
from pkg.config.model import Config, Kind
from pkg.config.specs.security import Action
from tests.helpers.xds import load_configs

POLICIES = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-wide, namespace: istio-system, creationTimestamp: "2024-01-01T00:00:05Z"}
spec: {action: DENY, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-selected, namespace: istio-system, creationTimestamp: "2024-01-01T00:00:01Z"}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: AUDIT
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ns-wide, namespace: foo, creationTimestamp: "2024-01-01T00:00:03Z"}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: b-httpbin, namespace: foo, creationTimestamp: "2024-01-01T00:00:02Z"}
spec:
  selector: {matchLabels: {app: httpbin}}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a-httpbin, namespace: foo, creationTimestamp: "2024-01-01T00:00:02Z"}
spec:
  selector: {matchLabels: {app: httpbin, version: v1}}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-app, namespace: foo}
spec:
  selector: {matchLabels: {app: other}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-ns, namespace: bar}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: opa}
  rules: [{to: [{operation: {paths: ["/admin"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gateway-ref, namespace: foo}
spec:
  targetRefs:
  - {group: gateway.networking.k8s.io, kind: Gateway, name: web}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: service-ref, namespace: foo}
spec:
  targetRefs:
  - {kind: Service, group: "", name: httpbin}
"""


def index(root: str = "istio-system") -> AuthorizationPolicyIndex:
    configs = load_configs([POLICIES])[Kind.AUTHORIZATION_POLICY]
    return AuthorizationPolicyIndex.build(configs, root)


def names(configs: tuple[Config[Any], ...]) -> list[str]:
    return [c.name for c in configs]


def test_selection_by_root_namespace_namespace_and_selector() -> None:
    found = index().policies_for("foo", {"app": "httpbin", "version": "v1"})
    # Root namespace first, then the workload's namespace; creation time, then name.
    assert names(found.deny) == ["mesh-wide"]
    assert names(found.audit) == ["mesh-selected"]
    assert names(found.allow) == ["a-httpbin", "b-httpbin", "ns-wide"]
    assert names(found.custom) == ["ext"]
    assert found.by_action(Action.CUSTOM) == found.custom
    assert names(tuple(found)) == [
        "ext",
        "mesh-wide",
        "a-httpbin",
        "b-httpbin",
        "ns-wide",
        "mesh-selected",
    ]


def test_selector_must_be_a_subset_of_the_labels() -> None:
    found = index().policies_for("foo", {"app": "httpbin"})
    assert names(found.allow) == ["b-httpbin", "ns-wide"]
    other = index().policies_for("foo", {"app": "other"})
    assert names(other.allow) == ["other-app", "ns-wide"]
    assert names(other.audit) == []  # the root-namespace selector selects in every namespace


def test_other_namespaces_do_not_apply() -> None:
    found = index().policies_for("bar", {"app": "httpbin"})
    assert names(tuple(found)) == ["mesh-wide", "other-ns", "mesh-selected"]
    assert index().policies_for("baz", {}).allow == ()


def test_root_namespace_is_configurable() -> None:
    found = index(root="bar").policies_for("foo", {"app": "httpbin"})
    assert names(found.allow) == ["other-ns", "b-httpbin", "ns-wide"]
    assert found.deny == ()


def test_target_refs_attach_only_to_the_named_gateway_api_gateway() -> None:
    # A sidecar (no gateway-name label) ignores policies with targetRefs.
    sidecar = index().policies_for("foo", {"app": "web"})
    assert "gateway-ref" not in names(sidecar.allow)
    gateway = index().policies_for(
        "foo", {"gateway.networking.k8s.io/gateway-name": "web", "app": "httpbin"}
    )
    # targetRef Gateway web; selector-based policies still apply (Istio's default); the
    # Service reference is for waypoints only. (gateway-ref has no creation time: oldest.)
    assert names(gateway.allow) == ["gateway-ref", "b-httpbin", "ns-wide"]
    other = index().policies_for("foo", {"gateway.networking.k8s.io/gateway-name": "api"})
    assert "gateway-ref" not in names(other.allow)
    # A policy in another namespace never attaches through a targetRef.
    elsewhere = index().policies_for("bar", {"gateway.networking.k8s.io/gateway-name": "web"})
    assert "gateway-ref" not in names(elsewhere.allow)


def test_dry_run_annotation_parses_like_go() -> None:
    text = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: foo, annotations: {"istio.io/dry-run": "%s"}}
spec: {}
"""
    for value, expected in (("true", True), ("1", True), ("T", True), ("false", False)):
        config = load_configs([text % value])[Kind.AUTHORIZATION_POLICY][0]
        assert is_dry_run(config) is expected
