"""RequestAuthentication: which policies, and so which JWT rules, apply to a workload.

As Istio (`getConfigsForWorkload` + `WorkloadPolicyMatcher.ShouldAttachPolicy`): policies of the
workload's namespace and of the root namespace are considered, oldest first. A policy without a
selector applies to every workload it can see (the root namespace's to the whole mesh); one with
a selector to workloads whose labels include it. A policy with `targetRef(s)` applies only to
Kubernetes Gateway API gateways (workloads labelled `gateway.networking.k8s.io/gateway-name`) of
its own namespace that it names; such gateways also honour selectors
(ENABLE_SELECTOR_BASED_K8S_GATEWAY_POLICY, on by default).

Every applicable policy contributes all its JWT rules; the rules are then ordered by issuer
(stably) so the generated filter is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pkg.config.labels import selector_matches
from pkg.config.model import Config

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"


def target_refs(spec: Any) -> tuple[Any, ...]:
    """`targetRefs`, or the legacy single `targetRef`."""
    if spec.target_refs:
        return tuple(spec.target_refs)
    return (spec.target_ref,) if spec.target_ref is not None else ()


def _selected(spec: Any, labels: Mapping[str, str]) -> bool:
    selector = spec.selector
    return selector is None or selector_matches(selector.match_labels, labels)


def should_attach(policy: Config[Any], workload_namespace: str, labels: Mapping[str, str]) -> bool:
    """Whether a (selector- or targetRef-attached) policy applies to a workload that can see it."""
    spec = policy.spec
    refs = target_refs(spec)
    gateway_name = labels.get(GATEWAY_NAME_LABEL)
    if gateway_name is None:
        return not refs and _selected(spec, labels)
    if not refs:
        return _selected(spec, labels)
    if policy.namespace != workload_namespace:
        return False
    for ref in refs:
        if ref.namespace not in ("", workload_namespace):
            continue
        if ref.group == GATEWAY_API_GROUP and ref.kind == "Gateway" and ref.name == gateway_name:
            return True
    return False


def _order(c: Config[Any]) -> tuple[float, str, str]:
    return (c.meta.creation_timestamp, c.name, c.namespace)


@dataclass(frozen=True, slots=True)
class RequestAuthenticationIndex:
    root_namespace: str = "istio-system"
    # namespace → its policies, oldest first
    by_namespace: Mapping[str, tuple[Config[Any], ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def build(
        cls, configs: Sequence[Config[Any]], root_namespace: str
    ) -> RequestAuthenticationIndex:
        grouped: dict[str, list[Config[Any]]] = {}
        for config in sorted(configs, key=_order):
            grouped.setdefault(config.namespace, []).append(config)
        return cls(root_namespace, MappingProxyType({k: tuple(v) for k, v in grouped.items()}))

    def __bool__(self) -> bool:
        return bool(self.by_namespace)

    def policies_for(self, namespace: str, labels: Mapping[str, str]) -> tuple[Config[Any], ...]:
        """The policies that apply to a workload: its namespace's, then the root namespace's."""
        out: list[Config[Any]] = []
        for ns in dict.fromkeys((namespace, self.root_namespace)):
            for config in self.by_namespace.get(ns, ()):
                if should_attach(config, namespace, labels):
                    out.append(config)
        return tuple(out)

    def jwt_rules_for(self, namespace: str, labels: Mapping[str, str]) -> tuple[Any, ...]:
        """All JWT rules of the applicable policies, ordered by issuer."""
        return jwt_rules(self.policies_for(namespace, labels))


def jwt_rules(policies: Sequence[Config[Any]]) -> tuple[Any, ...]:
    rules = [rule for policy in policies for rule in policy.spec.jwt_rules]
    return tuple(sorted(rules, key=lambda rule: rule.issuer))
