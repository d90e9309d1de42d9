"""Selector analyzers: Gateway (IST0101 selector), Sidecar (IST0101, IST0110, IST0111),
Telemetry (IST0101, IST0159, IST0160), PeerAuthentication / RequestAuthentication (IST0127) and
AuthorizationPolicy (IST0127, IST0101 namespace)."""

from __future__ import annotations

from pkg.analysis.analyzers import authz, selectors

from .helpers import SERVICES, codes, lines

PODS = """\
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web, tier: front}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingress, namespace: edge}
spec: {template: {metadata: {labels: {istio: ingress}}}}
"""


def obj(kind: str, name: str, namespace: str, spec: str, group: str = "networking") -> str:
    version = "v1alpha1" if group == "telemetry" else "v1"
    return (
        f"apiVersion: {group}.istio.io/{version}\nkind: {kind}\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}"
    )


def test_gateway_selector_must_match_a_workload_in_any_namespace() -> None:
    servers = "  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]\n"
    ok = obj("Gateway", "ok", "shop", "  selector: {istio: ingress}\n" + servers)
    bad = obj("Gateway", "bad", "shop", "  selector: {istio: egress, zone: a}\n" + servers)
    assert lines(PODS, ok, bad, analyzers=selectors.ANALYZERS) == [
        "Error [IST0101] (Gateway shop/bad f2.yaml:5) Referenced selector not found: "
        '"istio=egress,zone=a"'
    ]


def test_sidecar_selectors() -> None:
    egress = "  egress: [{hosts: ['./*']}]\n"
    docs = [
        obj("Sidecar", "web", "shop", "  workloadSelector: {labels: {app: web}}\n" + egress),
        obj("Sidecar", "front", "shop", "  workloadSelector: {labels: {tier: front}}\n" + egress),
        obj("Sidecar", "none", "shop", "  workloadSelector: {labels: {app: none}}\n" + egress),
        obj("Sidecar", "default-a", "shop", egress),
        obj("Sidecar", "default-b", "shop", egress),
        obj("Sidecar", "web", "other", "  workloadSelector: {labels: {app: web}}\n" + egress),
    ]
    found = lines(PODS, *docs, analyzers=selectors.ANALYZERS)
    assert found == [
        'Error [IST0101] (Sidecar shop/none f3.yaml:5) Referenced selector not found: "app=none"',
        'Error [IST0101] (Sidecar other/web f6.yaml:5) Referenced selector not found: "app=web"',
        "Error [IST0110] (Sidecar shop/front f2.yaml:3) The Sidecars [front web] in namespace "
        '"shop" select the same workload pod "web-1", which can lead to undefined behavior.',
        "Error [IST0110] (Sidecar shop/web f1.yaml:3) The Sidecars [front web] in namespace "
        '"shop" select the same workload pod "web-1", which can lead to undefined behavior.',
        "Error [IST0111] (Sidecar shop/default-a f4.yaml:3) The Sidecars [default-a default-b] in "
        'namespace "shop" have no workload selector, which can lead to undefined behavior.',
        "Error [IST0111] (Sidecar shop/default-b f5.yaml:3) The Sidecars [default-a default-b] in "
        'namespace "shop" have no workload selector, which can lead to undefined behavior.',
    ]


def test_one_sidecar_and_one_telemetry_per_workload_is_fine() -> None:
    egress = "  egress: [{hosts: ['./*']}]\n"
    docs = [
        obj("Sidecar", "web", "shop", "  workloadSelector: {labels: {app: web}}\n" + egress),
        obj("Sidecar", "default", "shop", egress),
        obj("Sidecar", "default", "edge", egress),
        obj("Telemetry", "web", "shop", "  selector: {matchLabels: {app: web}}\n", "telemetry"),
        obj(
            "Telemetry", "mesh", "shop", "  tracing: [{randomSamplingPercentage: 1}]\n", "telemetry"
        ),
    ]
    assert codes(PODS, *docs, analyzers=selectors.ANALYZERS) == []


def test_telemetry_selectors() -> None:
    docs = [
        obj("Telemetry", "a", "shop", "  selector: {matchLabels: {app: web}}\n", "telemetry"),
        obj("Telemetry", "b", "shop", "  selector: {matchLabels: {tier: front}}\n", "telemetry"),
        obj("Telemetry", "c", "shop", "  selector: {matchLabels: {app: gone}}\n", "telemetry"),
        obj("Telemetry", "d", "shop", "  tracing: [{randomSamplingPercentage: 1}]\n", "telemetry"),
        obj("Telemetry", "e", "shop", "  tracing: [{randomSamplingPercentage: 2}]\n", "telemetry"),
    ]
    assert codes(PODS, *docs, analyzers=selectors.ANALYZERS) == [
        ("IST0101", "Telemetry shop/c"),
        ("IST0159", "Telemetry shop/a"),
        ("IST0159", "Telemetry shop/b"),
        ("IST0160", "Telemetry shop/d"),
        ("IST0160", "Telemetry shop/e"),
    ]


def test_authn_policies_selecting_nothing() -> None:
    docs = [
        obj(
            "PeerAuthentication",
            "ok",
            "shop",
            "  selector: {matchLabels: {app: web}}\n",
            "security",
        ),
        obj(
            "PeerAuthentication", "bad", "shop", "  selector: {matchLabels: {app: x}}\n", "security"
        ),
        obj(
            "RequestAuthentication",
            "mesh",
            "istio-system",
            "  selector: {matchLabels: {app: web}}\n",
            "security",
        ),
        obj(
            "RequestAuthentication",
            "bad",
            "edge",
            "  selector: {matchLabels: {app: web}}\n",
            "security",
        ),
        obj(
            "PeerAuthentication", "namespace-wide", "empty", "  mtls: {mode: STRICT}\n", "security"
        ),
    ]
    assert lines(PODS, *docs, analyzers=selectors.ANALYZERS) == [
        "Warning [IST0127] (PeerAuthentication shop/bad f2.yaml:5) No matching workloads for this"
        " resource with the following labels: app=x",
        "Warning [IST0127] (RequestAuthentication edge/bad f4.yaml:5) No matching workloads for"
        " this resource with the following labels: app=web",
    ]


def test_authorization_policies() -> None:
    opted_out = """\
apiVersion: v1
kind: Pod
metadata:
  name: legacy
  namespace: legacy
  labels: {app: legacy, sidecar.istio.io/inject: "false"}
"""
    docs = [
        obj(
            "AuthorizationPolicy",
            "ok",
            "shop",
            "  selector: {matchLabels: {app: web}}\n",
            "security",
        ),
        obj(
            "AuthorizationPolicy",
            "nobody",
            "shop",
            "  selector: {matchLabels: {app: x}}\n",
            "security",
        ),
        obj(
            "AuthorizationPolicy",
            "ns-wide",
            "legacy",
            "  action: DENY\n  rules: [{}]\n",
            "security",
        ),
        obj(
            "AuthorizationPolicy",
            "root",
            "istio-system",
            "  action: DENY\n  rules: [{}]\n",
            "security",
        ),
        obj(
            "AuthorizationPolicy",
            "from",
            "shop",
            "  rules:\n  - from:\n    - source: {namespaces: [edge, 'sh*', missing], "
            "notNamespaces: ['*-prod']}\n",
            "security",
        ),
    ]
    assert lines(PODS, opted_out, *docs, analyzers=authz.ANALYZERS) == [
        "Error [IST0101] (AuthorizationPolicy shop/from f6.yaml:7) Referenced namespace not found: "
        '"*-prod"',
        "Error [IST0101] (AuthorizationPolicy shop/from f6.yaml:7) Referenced namespace not found: "
        '"missing"',
        "Warning [IST0127] (AuthorizationPolicy shop/nobody f3.yaml:5) No matching workloads for"
        " this resource with the following labels: app=x",
        "Warning [IST0127] (AuthorizationPolicy legacy/ns-wide f4.yaml:1) No matching workloads for"
        " this resource with the following labels: ",
    ]


def test_services_alone_are_not_workloads() -> None:
    policy = obj(
        "AuthorizationPolicy",
        "p",
        "default",
        "  selector: {matchLabels: {app: ratings}}\n",
        "security",
    )
    assert codes(SERVICES, policy, analyzers=authz.ANALYZERS) == []  # the WorkloadEntry counts
    without = SERVICES.split("---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry")[0]
    assert codes(without, policy, analyzers=authz.ANALYZERS) == [
        ("IST0127", "AuthorizationPolicy default/p")
    ]
