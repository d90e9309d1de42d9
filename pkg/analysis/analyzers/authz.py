"""`auth.AuthorizationPoliciesAnalyzer` (Istio's analyzers/authz).

An AuthorizationPolicy with a selector must select an in-mesh workload of its namespace (of
any namespace in the root namespace); one without a selector outside the root namespace needs
at least one workload in its namespace (IST0127, with the selector's labels, "" when none).
Namespaces named in `from.source.namespaces` / `notNamespaces` must exist (IST0101
"namespace"); `*`, `prefix*` and `*suffix` patterns match as in Istio.

In standalone mode namespaces are not declared: a namespace exists when a Namespace document
names it or any object or workload lives in it. Every workload is in the mesh unless its pod
opts out (`sidecar.istio.io/inject: "false"`), since pyistio does not inject sidecars.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pkg.analysis import messages as m
from pkg.analysis.analyzers.base import Analyzer, first_key, message, selector_string
from pkg.analysis.analyzers.selectors import selects_nothing
from pkg.analysis.inputs import AnalysisInput
from pkg.analysis.messages import Message
from pkg.analysis.resource import Resource
from pkg.config.model import Kind
from pkg.config.specs.security import AuthorizationPolicy


def namespace_matches(namespace: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return namespace.endswith(pattern[1:])
    if pattern.endswith("*"):
        return namespace.startswith(pattern[:-1])
    return namespace.lower() == pattern.lower()


def analyze_authorization_policies(inp: AnalysisInput) -> Iterator[Message]:
    namespaces = inp.known_namespaces()
    for r, config in inp.of_kind(Kind.AUTHORIZATION_POLICY):
        policy: AuthorizationPolicy = config.spec
        labels = policy.selector.match_labels if policy.selector is not None else None
        if labels is not None:
            if selects_nothing(inp, r, labels):
                path = f"spec.selector.matchLabels.{first_key(labels)}" if labels else None
                yield message(m.NO_MATCHING_WORKLOADS_FOUND, r, selector_string(labels), path=path)
        elif r.namespace != inp.root_namespace and not any(inp.mesh_workloads(r.namespace)):
            yield message(m.NO_MATCHING_WORKLOADS_FOUND, r, "")
        for i, rule in enumerate(policy.rules):
            for j, source_rule in enumerate(rule.from_):
                source = source_rule.source
                if source is None:
                    continue
                for field, patterns in (
                    ("namespaces", source.namespaces),
                    ("notNamespaces", source.not_namespaces),
                ):
                    path = f"spec.rules[{i}].from[{j}].source.{field}"
                    yield from _missing(r, patterns, namespaces, path)


def _missing(
    r: Resource, patterns: Iterable[str], namespaces: set[str], path: str
) -> Iterator[Message]:
    for k, pattern in enumerate(patterns):
        if not any(namespace_matches(ns, pattern) for ns in namespaces):
            yield message(
                m.REFERENCED_RESOURCE_NOT_FOUND, r, "namespace", pattern, path=f"{path}[{k}]"
            )


ANALYZERS = (
    Analyzer(
        "auth.AuthorizationPoliciesAnalyzer",
        "Checks the validity of authorization policies",
        analyze_authorization_policies,
    ),
)
