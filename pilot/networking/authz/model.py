"""One AuthorizationPolicy rule → one Envoy RBAC Policy (Istio's authz/model/model.go).

A rule's conditions are split by side: `to` operations and the `when` keys about the
destination (destination.ip/port, connection.sni, experimental.envoy.filters.*) become
*permissions*; `from` sources and the `when` keys about the caller (source.*, remote.ip,
request.headers[...], request.auth.*) become *principals*. Each `from` (each `to`) gives one
principal (permission) AND-ing its fields, the `when` conditions appended; the values of a field
are OR-ed and its `not*` values become NOT(OR(...)). A rule without `from` (`to`) matches any
principal (permission).

On a TCP filter chain HTTP-only attributes (hosts, methods, paths, request headers, request
principals and claims) cannot be checked: an ALLOW rule using one is dropped entirely (allowing
less); in a DENY, AUDIT or CUSTOM rule only the unsupported values are dropped (denying more).
`Unsupported` signals the former to the builder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from envoy.config.rbac.v3 import rbac_pb2

from pilot.networking.authz import generators as g
from pilot.networking.authz.trust_domain import TrustDomainBundle

ALLOW = rbac_pb2.RBAC.ALLOW
DENY = rbac_pb2.RBAC.DENY
LOG = rbac_pb2.RBAC.LOG

SRC_PRINCIPAL = "source.principal"
SRC_TRUST_DOMAIN = "source.trustDomain"


class InvalidRule(Exception):
    """A rule with an attribute this generator does not know (validation rejects these)."""


@dataclass(frozen=True, slots=True)
class Condition:
    key: str
    values: tuple[str, ...]
    not_values: tuple[str, ...]
    generator: g.Generator


Conditions = tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class RuleModel:
    permissions: tuple[Conditions, ...]
    principals: tuple[Conditions, ...]


def _when_generator(key: str, policy_namespace: str) -> tuple[bool, g.Generator]:
    """(is a permission, generator) for a `when` key."""
    exact: dict[str, tuple[bool, g.Generator]] = {
        "destination.ip": (True, g.DestIP()),
        "destination.port": (True, g.DestPort()),
        "connection.sni": (True, g.ConnSNI()),
        "source.ip": (False, g.SrcIP()),
        "remote.ip": (False, g.RemoteIP()),
        "source.namespace": (False, g.SrcNamespace()),
        SRC_TRUST_DOMAIN: (False, g.SrcTrustDomain()),
        "source.serviceAccount": (False, g.SrcServiceAccount(policy_namespace)),
        SRC_PRINCIPAL: (False, g.SrcPrincipal()),
        "request.auth.principal": (False, g.RequestPrincipal()),
        "request.auth.audiences": (False, g.RequestClaims(("aud",))),
        "request.auth.presenter": (False, g.RequestClaims(("azp",))),
    }
    if key in exact:
        return exact[key]
    if key.startswith("experimental.envoy.filters."):
        return True, g.EnvoyFilter()
    if key.startswith("request.headers"):
        return False, g.RequestHeader()
    if key.startswith("request.auth.claims"):
        return False, g.RequestClaims()
    raise InvalidRule(f"unknown attribute {key}")


def _cond(
    key: str, values: Sequence[str], not_values: Sequence[str], gen: g.Generator
) -> list[Condition]:
    if not values and not not_values:
        return []
    return [Condition(key, tuple(values), tuple(not_values), gen)]


def new_model(policy_namespace: str, rule: Any) -> RuleModel:
    base_permission: list[Condition] = []
    base_principal: list[Condition] = []
    for when in rule.when:
        is_permission, gen = _when_generator(when.key, policy_namespace)
        target = base_permission if is_permission else base_principal
        target.extend(_cond(when.key, when.values, when.not_values, gen))

    principals: list[Conditions] = []
    for item in rule.from_:
        s = item.source
        front: list[Condition] = []
        if s is not None:  # in Istio's order: the last one inserted at the front comes first
            front += _cond(SRC_PRINCIPAL, s.principals, s.not_principals, g.SrcPrincipal())
            front += _cond(
                "request.auth.principal",
                s.request_principals,
                s.not_request_principals,
                g.RequestPrincipal(),
            )
            front += _cond(
                "source.serviceAccount",
                s.service_accounts,
                s.not_service_accounts,
                g.SrcServiceAccount(policy_namespace),
            )
            front += _cond(
                SRC_TRUST_DOMAIN, s.trust_domains, s.not_trust_domains, g.SrcTrustDomain()
            )
            front += _cond("source.namespace", s.namespaces, s.not_namespaces, g.SrcNamespace())
            front += _cond("remote.ip", s.remote_ip_blocks, s.not_remote_ip_blocks, g.RemoteIP())
            front += _cond("source.ip", s.ip_blocks, s.not_ip_blocks, g.SrcIP())
        principals.append((*front, *base_principal))
    if not rule.from_:
        principals.append(tuple(base_principal))

    permissions: list[Conditions] = []
    for item in rule.to:
        o = item.operation
        front = []
        if o is not None:
            front += _cond(":authority", o.hosts, o.not_hosts, g.Host())
            front += _cond(":method", o.methods, o.not_methods, g.Method())
            front += _cond("path-matcher", o.paths, o.not_paths, g.Path())
            front += _cond("destination.port", o.ports, o.not_ports, g.DestPort())
        permissions.append((*front, *base_permission))
    if not rule.to:
        permissions.append(tuple(base_permission))
    return RuleModel(tuple(permissions), tuple(principals))


def migrate_trust_domain(model: RuleModel, bundle: TrustDomainBundle) -> RuleModel:
    """Expand source principals and trust domains over the trust-domain aliases."""

    def migrate(c: Condition) -> Condition:
        expand: Callable[[Sequence[str]], list[str]]
        if c.key == SRC_PRINCIPAL:
            expand = bundle.replace_aliases
        elif c.key == SRC_TRUST_DOMAIN:
            expand = bundle.expand_aliases
        else:
            return c
        return replace(
            c,
            values=tuple(expand(c.values)) if c.values else (),
            not_values=tuple(expand(c.not_values)) if c.not_values else (),
        )

    return replace(model, principals=tuple(tuple(migrate(c) for c in p) for p in model.principals))


# ---- generation ----------------------------------------------------------------------------


def _checked(action: int, build: Any) -> Any | None:
    """Run one generator call: an ALLOW rule fails as a whole on an unsupported attribute, any
    other action just skips the value."""
    try:
        return build()
    except g.Unsupported:
        if action == ALLOW:
            raise
        return None


def _permissions(c: Condition, for_tcp: bool, action: int) -> list[Any]:
    gen = c.generator
    out: list[Any] = []
    if gen.extended:
        if c.values:
            p = _checked(action, lambda: gen.extended_permission(c.key, c.values, for_tcp))
            if p is not None:
                out.append(p)
        if c.not_values:
            p = _checked(action, lambda: gen.extended_permission(c.key, c.not_values, for_tcp))
            if p is not None:
                out.append(g.permission_not(p))
        return out
    for values, negate in ((c.values, False), (c.not_values, True)):
        alternatives = []
        for value in values:
            p = _checked(action, lambda v=value: gen.permission(c.key, v, for_tcp))
            if p is not None:
                alternatives.append(p)
        if alternatives:
            either = g.permission_or(alternatives)
            out.append(g.permission_not(either) if negate else either)
    return out


def _principals(c: Condition, for_tcp: bool, use_auth: bool, action: int) -> list[Any]:
    gen = c.generator
    out: list[Any] = []
    if gen.extended:
        if c.values:
            p = _checked(action, lambda: gen.extended_principal(c.key, c.values, for_tcp))
            if p is not None:
                out.append(p)
        if c.not_values:
            p = _checked(action, lambda: gen.extended_principal(c.key, c.not_values, for_tcp))
            if p is not None:
                out.append(g.principal_not(p))
        return out
    for values, negate in ((c.values, False), (c.not_values, True)):
        alternatives = []
        for value in values:
            p = _checked(action, lambda v=value: gen.principal(c.key, v, for_tcp, use_auth))
            if p is not None:
                alternatives.append(p)
        if alternatives:
            either = g.principal_or(alternatives)
            out.append(g.principal_not(either) if negate else either)
    return out


def generate(
    model: RuleModel, for_tcp: bool, use_authenticated: bool, action: int
) -> rbac_pb2.Policy:
    """The RBAC policy of a rule; raises `generators.Unsupported` when an ALLOW rule cannot be
    expressed on this chain."""
    policy = rbac_pb2.Policy()
    for conditions in model.permissions:
        rules = [p for c in conditions for p in _permissions(c, for_tcp, action)]
        policy.permissions.append(g.permission_and(rules or [g.Permission(any=True)]))
    for conditions in model.principals:
        ids = [p for c in conditions for p in _principals(c, for_tcp, use_authenticated, action)]
        policy.principals.append(g.principal_and(ids or [g.Principal(any=True)]))
    return policy


MATCH_NEVER = rbac_pb2.Policy(
    permissions=[g.Permission(not_rule=g.Permission(any=True))],
    principals=[g.Principal(not_id=g.Principal(any=True))],
)
