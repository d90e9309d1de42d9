"""DestinationRule visibility and precedence (Istio's PushContext.destinationRule,
mergeDestinationRule and SidecarScope.DestinationRule): which rule a proxy in a namespace gets
for a service, how exportTo and workloadSelector narrow it, and how rules for one host merge."""

from __future__ import annotations

import textwrap

import yaml

from pilot.model.destination_rule_index import DestinationRuleIndex, MergedDestinationRule
from pkg.config.model import Kind
from tests.helpers.xds import load_configs

HOST = "reviews.prod.svc.cluster.local"


def index(*docs: str, default_export_to: tuple[str, ...] = ("*",)) -> DestinationRuleIndex:
    configs = load_configs(["\n---\n".join(docs)]).get(Kind.DESTINATION_RULE, ())
    return DestinationRuleIndex.build(configs, default_export_to, "istio-system", "cluster.local")


def dr(
    name: str,
    namespace: str,
    host: str = HOST,
    extra: str = "",
    created: str = "2024-01-01T00:00:00Z",
) -> str:
    spec = {"host": host, **(yaml.safe_load(textwrap.dedent(extra)) or {})}
    return yaml.safe_dump(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
            "spec": spec,
        }
    )


def names(rule: MergedDestinationRule | None) -> list[str]:
    return [] if rule is None else [f"{k.namespace}/{k.name}" for k in rule.sources]


def lookup(
    idx: DestinationRuleIndex, proxy_ns: str, labels: dict[str, str] | None = None
) -> list[str]:
    return names(idx.lookup(proxy_ns, HOST, "prod", labels))


def test_proxy_namespace_then_service_namespace_then_root() -> None:
    idx = index(dr("mine", "client"), dr("owner", "prod"), dr("mesh", "istio-system"))
    assert lookup(idx, "client") == ["client/mine"]
    assert lookup(idx, "other") == ["prod/owner"]
    assert lookup(index(dr("mesh", "istio-system")), "other") == ["istio-system/mesh"]


def test_export_to_limits_who_sees_a_rule() -> None:
    idx = index(
        dr("private", "prod", extra='exportTo: ["."]'),
        dr("shared", "istio-system", extra='exportTo: ["client"]'),
    )
    assert lookup(idx, "prod") == ["prod/private"]
    assert lookup(idx, "client") == ["istio-system/shared"]  # prod's is private
    assert lookup(idx, "other") == []


def test_root_namespace_proxies_use_its_private_rules() -> None:
    idx = index(dr("gateway-only", "istio-system", extra='exportTo: ["."]'), dr("owner", "prod"))
    assert lookup(idx, "istio-system") == ["istio-system/gateway-only"]
    assert lookup(idx, "client") == ["prod/owner"]


def test_mesh_default_export_to_dot_keeps_rules_private() -> None:
    idx = index(dr("owner", "prod"), default_export_to=(".",))
    assert lookup(idx, "prod") == ["prod/owner"]
    assert lookup(idx, "client") == []


def test_workload_selector_rules_apply_to_selected_workloads_only() -> None:
    selected = dr("canary", "client", extra="workloadSelector: {matchLabels: {app: canary}}")
    idx = index(selected, dr("all", "client"), dr("owner", "prod"))
    assert lookup(idx, "client", {"app": "canary"}) == ["client/canary"]
    assert lookup(idx, "client", {"app": "web"}) == ["client/all"]
    # Never exported: another namespace falls through to the owner's rule.
    assert lookup(idx, "other", {"app": "canary"}) == ["prod/owner"]


def test_unmatched_selector_rule_does_not_fall_back_to_the_owner() -> None:
    # Istio: the proxy namespace's rules for the host decide; with only a selector rule that
    # does not select the proxy there is no rule at all (SidecarScope.DestinationRule).
    selected = dr("canary", "client", extra="workloadSelector: {matchLabels: {app: canary}}")
    idx = index(selected, dr("owner", "prod"))
    assert lookup(idx, "client", {"app": "web"}) == []


def test_rules_for_one_host_merge_subsets_and_keep_the_oldest_policy() -> None:
    first = dr(
        "first",
        "prod",
        extra="""
        trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
        subsets: [{name: v1, labels: {version: v1}}]
        """,
        created="2024-01-01T00:00:00Z",
    )
    second = dr(
        "second",
        "prod",
        extra="""
        trafficPolicy: {loadBalancer: {simple: RANDOM}}
        subsets: [{name: v1, labels: {version: x}}, {name: v2, labels: {version: v2}}]
        """,
        created="2024-02-01T00:00:00Z",
    )
    idx = index(second, first)
    rule = idx.lookup("client", HOST, "prod")
    assert names(rule) == ["prod/first", "prod/second"]
    assert rule is not None
    assert [(s.name, dict(s.labels)) for s in rule.spec.subsets] == [
        ("v1", {"version": "v1"}),
        ("v2", {"version": "v2"}),
    ]
    assert str(rule.spec.traffic_policy.load_balancer.simple) == "ROUND_ROBIN"
    assert idx.problems == (
        f"Duplicate subset v1 found while merging destination rules for {HOST}",
    )


def test_rules_with_different_export_to_stay_apart() -> None:
    # Istio's enhanced merge: equal exportTo merges; a later rule whose exportTo strictly
    # contains the earlier one's merges into it; otherwise the rules stay apart.
    narrow = dr("narrow", "prod", extra='exportTo: ["a"]', created="2024-01-01T00:00:00Z")
    wide = dr("wide", "prod", extra='exportTo: ["a", "b"]', created="2024-02-01T00:00:00Z")
    other = dr("other", "prod", extra='exportTo: ["c"]', created="2024-03-01T00:00:00Z")
    idx = index(narrow, wide, other)
    assert lookup(idx, "a") == ["prod/narrow", "prod/wide"]
    assert lookup(idx, "c") == ["prod/other"]


def test_most_specific_host_wins() -> None:
    idx = index(
        dr("any", "client", host="*.svc.cluster.local"),
        dr("prod", "client", host="*.prod.svc.cluster.local"),
        dr("exact", "client", host="reviews.prod.svc.cluster.local"),
    )
    assert lookup(idx, "client") == ["client/exact"]
    assert names(idx.lookup("client", "ratings.prod.svc.cluster.local", "prod")) == ["client/prod"]
    assert names(idx.lookup("client", "x.dev.svc.cluster.local", "dev")) == ["client/any"]


def test_short_host_names_resolve_in_the_rules_namespace() -> None:
    idx = index(dr("short", "prod", host="reviews"))
    assert lookup(idx, "client") == ["prod/short"]
    assert idx.has_selectors is False
