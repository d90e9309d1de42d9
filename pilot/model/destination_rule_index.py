"""DestinationRules by host, merged and looked up with Istio's precedence.

Lookup for a proxy in namespace N and a service S (Istio's PushContext.destinationRule):
1. rules in N (private or exported) — or, for proxies in the root namespace, its local rules;
2. rules exported from S's namespace to N;
3. rules exported from the root namespace to N.
Within each pool the most specific host wins (exact before wildcard). Several rules for one host
in one pool merge: subsets are concatenated (a duplicate subset name is reported and dropped) and
the oldest rule's traffic policy wins. Rules with a workloadSelector apply only to the workloads
they select and are never exported.
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
    spec = config.spec
    selector = _selector(spec)
    rules = pool.setdefault(host, [])
    for i, existing in enumerate(rules):
        same_selector = (existing.selector is None and selector is None) or (
            existing.selector is not None and selector is not None and existing.selector == selector
        )
        if not same_selector or existing.export_to != export_to:
            continue
        names = {s.name for s in existing.spec.subsets}
        subsets = list(existing.spec.subsets)
        for subset in spec.subsets:
            if subset.name in names:
                problems.append(
                    f"Duplicate subset {subset.name} found while merging destination rules "
                    f"for {host}"
                )
                continue
            subsets.append(subset)
        policy = existing.spec.traffic_policy or spec.traffic_policy
        merged_spec = dataclasses.replace(
            existing.spec, subsets=tuple(subsets), traffic_policy=policy
        )
        rules[i] = dataclasses.replace(
            existing, spec=merged_spec, sources=(*existing.sources, config.key)
        )
        return
    rules.append(MergedDestinationRule(host, spec, export_to, (config.key,), selector))


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
            problems=tuple(problems),
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
            found = _pick(self.namespace_local.get(proxy_namespace), hostname, labels, None)
        else:
            found = _pick(self.root_local, hostname, labels, None)
        if found is not None:
            return found
        for owner in (service_namespace, self.root_namespace):
            if not owner:
                continue
            found = _pick(self.exported.get(owner), hostname, labels, proxy_namespace)
            if found is not None:
                return found
        return None


def _pick(
    pool: Pool | None,
    hostname: str,
    labels: Mapping[str, str],
    client_namespace: str | None,
) -> MergedDestinationRule | None:
    if pool is None:
        return None
    for rule in pool.candidates(hostname):
        if client_namespace is not None and not (
            not rule.export_to
            or EXPORT_PUBLIC in rule.export_to
            or client_namespace in rule.export_to
        ):
            continue
        if rule.selector is not None and not selector_matches(rule.selector, labels):
            continue
        return rule
    return None
