"""DestinationRules by host, merged and looked up with Istio's precedence.

Lookup for a proxy in namespace N and a service S (Istio's PushContext.destinationRule):
1. rules in N (private or exported) — or, for proxies in the root namespace, its local rules;
2. rules exported from S's namespace to N;
3. rules exported from the root namespace to N.
Within each pool the most specific host wins (exact before wildcard), and the first pool with
rules for that host decides: a rule whose workloadSelector matches the proxy, else the rule
without selector, else none (a selector rule that does not match does not fall back to the
service's namespace). Rules for one host in one pool merge when their exportTo is equal (or
the later one's strictly contains the earlier one's): subsets are concatenated (a duplicate
subset name is reported and dropped) and the oldest rule's traffic policy wins. Rules with a
workloadSelector are private to their namespace; rules with different selectors never merge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pilot.model.service import EXPORT_PRIVATE, EXPORT_PUBLIC
from pkg.config.host import matches, resolve_short_name, specificity_key
from pkg.config.labels import selector_matches
from pkg.config.model import Config, ConfigKey


@dataclass(frozen=True, slots=True)
class MergedDestinationRule:
    host: str
    spec: Any  # a DestinationRule spec (subsets merged)
    export_to: frozenset[str]
    sources: tuple[ConfigKey, ...]  # the objects merged into this rule, oldest first
    selector: Mapping[str, str] | None = None

    @property
    def key(self) -> ConfigKey:
        return self.sources[0]

    def subset(self, name: str) -> Any | None:
        for subset in self.spec.subsets:
            if subset.name == name:
                return subset
        return None


@dataclass(frozen=True, slots=True)
class Pool:
    """Rules of one namespace pool: exact hosts in a map, wildcards most specific first."""

    specific: Mapping[str, tuple[MergedDestinationRule, ...]]
    wildcards: tuple[tuple[str, tuple[MergedDestinationRule, ...]], ...]

    def candidates(self, hostname: str) -> tuple[MergedDestinationRule, ...]:
        exact = self.specific.get(hostname)
        if exact:
            return exact
        for pattern, rules in self.wildcards:
            if matches(pattern, hostname):
                return rules
        return ()

    def all_rules(self) -> list[MergedDestinationRule]:
        out = [r for rules in self.specific.values() for r in rules]
        out.extend(r for _, rules in self.wildcards for r in rules)
        return out


_EMPTY_POOL = Pool(MappingProxyType({}), ())


def _selector(spec: Any) -> Mapping[str, str] | None:
    sel = spec.workload_selector
    if sel is None:
        return None
    labels = getattr(sel, "match_labels", None)
    if labels is None:
        labels = getattr(sel, "labels", None)
    return dict(labels or {})


def _merge_into(
    pool: dict[str, list[MergedDestinationRule]],
    host: str,
    config: Config[Any],
    export_to: frozenset[str],
    problems: list[str],
) -> None:
    """Istio's mergeDestinationRule (with ENABLE_ENHANCED_DESTINATIONRULE_MERGE, its default):
    a rule merges into an earlier one for the host whose exportTo it equals or strictly
    contains, unless both select workloads with different selectors; otherwise it stands
    alone."""
    spec = config.spec
    selector = _selector(spec)
    rules = pool.setdefault(host, [])
    append = True
    for i, existing in enumerate(rules):
        if existing.export_to == export_to:
            append = False
        elif existing.export_to and export_to > existing.export_to:
            append = True
        else:
            append = True
            continue
        both_with = existing.selector is not None and selector is not None
        if both_with and existing.selector != selector:
            append = True
            continue
        if both_with or (existing.selector is None and selector is None):
            append = False
        rules[i] = _merged(existing, config, host, problems)
    if append:
        rules.append(MergedDestinationRule(host, spec, export_to, (config.key,), selector))


def _merged(
    existing: MergedDestinationRule, config: Config[Any], host: str, problems: list[str]
) -> MergedDestinationRule:
    """Subsets concatenated (a duplicate name reported and dropped); the earlier rule's
    traffic policy, or the later one's when the earlier has none."""
    spec = config.spec
    names = {s.name for s in existing.spec.subsets}
    subsets = list(existing.spec.subsets)
    for subset in spec.subsets:
        if subset.name in names:
            problems.append(
                f"Duplicate subset {subset.name} found while merging destination rules for {host}"
            )
            continue
        subsets.append(subset)
    policy = existing.spec.traffic_policy or spec.traffic_policy
    merged_spec = dataclasses.replace(existing.spec, subsets=tuple(subsets), traffic_policy=policy)
    return dataclasses.replace(existing, spec=merged_spec, sources=(*existing.sources, config.key))


def _freeze(pool: dict[str, list[MergedDestinationRule]]) -> Pool:
    specific = {h: tuple(v) for h, v in pool.items() if not h.startswith("*")}
    wildcards = sorted(
        ((h, tuple(v)) for h, v in pool.items() if h.startswith("*")),
        key=lambda item: specificity_key(item[0]),
    )
    return Pool(MappingProxyType(specific), tuple(wildcards))


def _order(c: Config[Any]) -> tuple[int, float, str, str]:
    has_selector = 0 if c.spec.workload_selector is not None else 1
    return (has_selector, c.meta.creation_timestamp, c.name, c.namespace)


@dataclass(frozen=True, slots=True)
class DestinationRuleIndex:
    namespace_local: Mapping[str, Pool] = field(default_factory=lambda: MappingProxyType({}))
    exported: Mapping[str, Pool] = field(default_factory=lambda: MappingProxyType({}))
    root_local: Pool = _EMPTY_POOL
    root_namespace: str = "istio-system"
    problems: tuple[str, ...] = ()
    # Some rule selects workloads: what a proxy gets then depends on its labels.
    has_selectors: bool = False

    @classmethod
    def build(
        cls,
        configs: Sequence[Config[Any]],
        default_export_to: Iterable[str],
        root_namespace: str,
        domain_suffix: str,
    ) -> DestinationRuleIndex:
        local: dict[str, dict[str, list[MergedDestinationRule]]] = {}
        exported: dict[str, dict[str, list[MergedDestinationRule]]] = {}
        root_local: dict[str, list[MergedDestinationRule]] = {}
        problems: list[str] = []
        defaults = frozenset(default_export_to)
        for config in sorted(configs, key=_order):
            ns = config.namespace
            host = resolve_short_name(config.spec.host, ns, domain_suffix)
            if config.spec.workload_selector is None:
                export_to = frozenset(config.spec.export_to)
            else:
                export_to = frozenset({EXPORT_PRIVATE})
            if (
                not export_to
                or EXPORT_PUBLIC in export_to
                or EXPORT_PRIVATE in export_to
                or ns in export_to
            ):
                _merge_into(local.setdefault(ns, {}), host, config, export_to, problems)
            private_only = (not export_to and EXPORT_PRIVATE in defaults) or (
                len(export_to) == 1 and (EXPORT_PRIVATE in export_to or ns in export_to)
            )
            if not private_only:
                _merge_into(exported.setdefault(ns, {}), host, config, export_to, problems)
            elif ns == root_namespace:
                _merge_into(root_local, host, config, export_to, problems)
        return cls(
            namespace_local=MappingProxyType({k: _freeze(v) for k, v in local.items()}),
            exported=MappingProxyType({k: _freeze(v) for k, v in exported.items()}),
            root_local=_freeze(root_local),
            root_namespace=root_namespace,
            problems=tuple(dict.fromkeys(problems)),  # one per host, as Istio's metric
            has_selectors=any(c.spec.workload_selector is not None for c in configs),
        )

    def lookup(
        self,
        proxy_namespace: str,
        hostname: str,
        service_namespace: str,
        workload_labels: Mapping[str, str] | None = None,
    ) -> MergedDestinationRule | None:
        """The rule a proxy in `proxy_namespace` applies to traffic for `hostname`."""
        labels = workload_labels or {}
        if proxy_namespace != self.root_namespace:
            local = self.namespace_local.get(proxy_namespace)
        else:
            local = self.root_local
        decided, found = _pick(local, hostname, labels, None)
        if decided:
            return found
        for owner in (service_namespace, self.root_namespace):
            if not owner:
                continue
            decided, found = _pick(self.exported.get(owner), hostname, labels, proxy_namespace)
            if decided:
                return found
        return None


def _pick(
    pool: Pool | None,
    hostname: str,
    labels: Mapping[str, str],
    client_namespace: str | None,
) -> tuple[bool, MergedDestinationRule | None]:
    """(decided, rule): the pool's rules for the most specific host match (those exported to
    `client_namespace`, for an exported pool) decide — a rule whose selector matches the
    workload, else the last rule without a selector, else none at all (SidecarScope's
    DestinationRule); (False, None) when the pool has no rule for the host."""
    if pool is None:
        return False, None
    rules = [
        rule
        for rule in pool.candidates(hostname)
        if client_namespace is None
        or not rule.export_to
        or EXPORT_PUBLIC in rule.export_to
        or client_namespace in rule.export_to
    ]
    if not rules:
        return False, None
    catch_all = None
    for rule in rules:
        if rule.selector is None:
            catch_all = rule
        elif selector_matches(rule.selector, labels):
            return True, rule
    return True, catch_all
