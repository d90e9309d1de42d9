"""AuthorizationPolicy selection: which policies apply to a workload, grouped by action.

Istio's rules (pilot/pkg/model/authorization.go, policyattachment.go):
- policies are looked up in the root namespace (mesh-wide) and then in the workload's own
  namespace, each namespace's policies ordered by creation time, then name;
- a policy without `selector` applies to every workload it is looked up for (a root-namespace
  one to the whole mesh, any other to its namespace); with `selector`, to the workloads whose
  labels include `matchLabels` (a root-namespace selector selects in every namespace);
- `targetRef`/`targetRefs` replace the selector. They attach only to Kubernetes Gateway API
  gateways (workloads labelled `gateway.networking.k8s.io/gateway-name`): a `Gateway` reference
  of group `gateway.networking.k8s.io` with that name, in the policy's namespace. A sidecar or an
  Istio-API gateway ignores any policy with targetRefs, as Istio does. Service, ServiceEntry and
  GatewayClass references attach only to ambient waypoints, which pyistio has not: they never
  attach here;
- a Gateway API gateway with no targetRefs still honours `selector` (Istio's default
  ENABLE_SELECTOR_BASED_K8S_GATEWAY_POLICY=true).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pkg.config.labels import selector_matches
from pkg.config.model import Config
from pkg.config.specs.security import Action

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
DRY_RUN_ANNOTATION = "istio.io/dry-run"


def _order(c: Config[Any]) -> tuple[float, str, str]:
    return (c.meta.creation_timestamp, c.name, c.namespace)


@dataclass(frozen=True, slots=True)
class ApplicablePolicies:
    """The policies that apply to one workload, by action, each in Istio's order."""

    custom: tuple[Config[Any], ...] = ()
    deny: tuple[Config[Any], ...] = ()
    allow: tuple[Config[Any], ...] = ()
    audit: tuple[Config[Any], ...] = ()

    def by_action(self, action: Action) -> tuple[Config[Any], ...]:
        return {
            Action.CUSTOM: self.custom,
            Action.DENY: self.deny,
            Action.ALLOW: self.allow,
            Action.AUDIT: self.audit,
        }[action]

    @property
    def empty(self) -> bool:
        return not (self.custom or self.deny or self.allow or self.audit)

    def __iter__(self) -> Iterator[Config[Any]]:
        yield from (*self.custom, *self.deny, *self.allow, *self.audit)


def _target_refs(spec: Any) -> tuple[Any, ...]:
    refs = tuple(spec.target_refs)
    if not refs and spec.target_ref is not None:
        refs = (spec.target_ref,)
    return refs


def _selected(spec: Any, labels: Mapping[str, str]) -> bool:
    selector = spec.selector
    return selector is None or selector_matches(selector.match_labels, labels)


def should_attach(config: Config[Any], namespace: str, labels: Mapping[str, str]) -> bool:
    """Istio's WorkloadPolicyMatcher.ShouldAttachPolicy for a sidecar or gateway (no waypoint)."""
    spec = config.spec
    refs = _target_refs(spec)
    gateway_name = labels.get(GATEWAY_NAME_LABEL)
    if gateway_name is None:
        return not refs and _selected(spec, labels)
    if not refs:
        return _selected(spec, labels)
    for ref in refs:
        if config.namespace != namespace or ref.namespace not in ("", namespace):
            continue
        group = ref.group or ""
        if group == GATEWAY_API_GROUP and ref.kind == "Gateway" and ref.name == gateway_name:
            return True
    return False


def is_dry_run(config: Config[Any]) -> bool:
    """The `istio.io/dry-run` annotation, parsed as Go's strconv.ParseBool (invalid = false)."""
    value = config.meta.annotations.get(DRY_RUN_ANNOTATION)
    return value in ("1", "t", "T", "true", "TRUE", "True")


@dataclass(frozen=True, slots=True)
class AuthorizationPolicyIndex:
    root_namespace: str = "istio-system"
    # namespace → its policies, oldest first (then by name)
    by_namespace: Mapping[str, tuple[Config[Any], ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def build(cls, configs: Sequence[Config[Any]], root_namespace: str) -> AuthorizationPolicyIndex:
        grouped: dict[str, list[Config[Any]]] = {}
        for config in sorted(configs, key=_order):
            grouped.setdefault(config.namespace, []).append(config)
        return cls(root_namespace, MappingProxyType({k: tuple(v) for k, v in grouped.items()}))

    def policies_for(self, namespace: str, labels: Mapping[str, str]) -> ApplicablePolicies:
        """The policies applying to a workload in `namespace` with `labels`, grouped by action,
        root-namespace policies first."""
        found: dict[Action, list[Config[Any]]] = {a: [] for a in Action}
        lookup = [self.root_namespace]
        if namespace != self.root_namespace:
            lookup.append(namespace)
        for ns in lookup:
            for config in self.by_namespace.get(ns, ()):
                if should_attach(config, namespace, labels):
                    found[Action(config.spec.action)].append(config)
        return ApplicablePolicies(
            custom=tuple(found[Action.CUSTOM]),
            deny=tuple(found[Action.DENY]),
            allow=tuple(found[Action.ALLOW]),
            audit=tuple(found[Action.AUDIT]),
        )
