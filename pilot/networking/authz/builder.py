"""Applicable AuthorizationPolicies → Envoy RBAC and ext_authz filters (Istio's
authz/builder/builder.go).

ALLOW, DENY and AUDIT policies each become one RBAC filter (AUDIT = action LOG), in the order
AUDIT, DENY, ALLOW. Rules of `istio.io/dry-run` policies go to `shadow_rules` (evaluated and
reported, never enforced). A policy without rules becomes a policy that never matches, so an
ALLOW policy with an empty spec allows nothing.

CUSTOM policies become, per provider, an RBAC filter that only evaluates (its policies are in
`shadow_rules`, named `istio-ext-authz-<provider>-ns[..]-policy[..]-rule[..]`) followed by an
ext_authz filter that runs only when that evaluation matched one of the provider's policies. A
workload selected by CUSTOM policies of several providers, or of a provider that is missing
or invalid, gets a DENY RBAC filter for those policies instead (Istio without
PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS, which pyistio does not offer).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as tcp_rbac_pb2

from pilot.model.authorization import ApplicablePolicies, is_dry_run
from pilot.model.push_context import PushContext
from pilot.networking import naming
from pilot.networking.authz import extauthz
from pilot.networking.authz.generators import Unsupported
from pilot.networking.authz.model import (
    ALLOW,
    DENY,
    LOG,
    MATCH_NEVER,
    InvalidRule,
    generate,
    migrate_trust_domain,
    new_model,
)
from pilot.networking.authz.trust_domain import TrustDomainBundle
from pilot.networking.protos import to_any
from pkg.config.model import Config

log = logging.getLogger(__name__)

HTTP_RBAC = "envoy.filters.http.rbac"
TCP_RBAC = "envoy.filters.network.rbac"
HTTP_EXT_AUTHZ = "envoy.filters.http.ext_authz"
TCP_EXT_AUTHZ = "envoy.filters.network.ext_authz"

TCP_STAT_PREFIX = "tcp."
DRY_RUN_ALLOW_STAT_PREFIX = "istio_dry_run_allow_"
DRY_RUN_DENY_STAT_PREFIX = "istio_dry_run_deny_"
EXT_AUTHZ_SHADOW_STAT_PREFIX = "istio_ext_authz_"
BAD_CUSTOM_SUFFIX = "-deny-due-to-bad-CUSTOM-action"


@dataclass
class Built:
    """The RBAC rules of one action: enforced and dry-run (None when no policy of that kind),
    and for CUSTOM the same per provider."""

    rules: rbac_pb2.RBAC | None = None
    shadow: rbac_pb2.RBAC | None = None
    provider_rules: dict[str, rbac_pb2.RBAC] = field(default_factory=dict)
    provider_shadow: dict[str, rbac_pb2.RBAC] = field(default_factory=dict)


def _add_policy_rules(
    target: rbac_pb2.RBAC,
    config: Config[Any],
    action: int,
    for_tcp: bool,
    bundle: TrustDomainBundle,
    prefix: str,
) -> None:
    rules = config.spec.rules
    for index, rule in enumerate(rules):
        name = naming.authz_policy_name(config.namespace, config.name, index, prefix)
        try:
            model = migrate_trust_domain(new_model(config.namespace, rule), bundle)
        except InvalidRule as e:
            log.warning("skipped invalid rule %s: %s", name, e)
            continue
        try:
            policy = generate(model, for_tcp, True, action)
        except Unsupported as e:
            log.debug("skipped rule %s on TCP filter chain: %s", name, e)
            continue
        target.policies[name].CopyFrom(policy)
    if not rules:
        name = naming.authz_policy_name(config.namespace, config.name, 0, prefix)
        target.policies[name].CopyFrom(MATCH_NEVER)


def build_rules(
    policies: Sequence[Config[Any]],
    action: int,
    for_tcp: bool,
    bundle: TrustDomainBundle,
    custom: bool = False,
) -> Built | None:
    if not policies:
        return None
    out = Built()
    for config in policies:
        dry_run = is_dry_run(config)
        if custom:
            provider = config.spec.provider.name if config.spec.provider is not None else ""
            match = extauthz.EXT_AUTHZ_MATCH_PREFIX
            prefix = f"{match}-{provider}-" if provider else f"{match}-"
            out.provider_rules.setdefault(provider, rbac_pb2.RBAC(action=action))
            out.provider_shadow.setdefault(provider, rbac_pb2.RBAC(action=action))
            table = out.provider_shadow if dry_run else out.provider_rules
            target = table[provider]
        else:
            prefix = ""
            if dry_run:
                out.shadow = out.shadow or rbac_pb2.RBAC(action=action)
                target = out.shadow
            else:
                out.rules = out.rules or rbac_pb2.RBAC(action=action)
                target = out.rules
        _add_policy_rules(target, config, action, for_tcp, bundle, prefix)
    return out


def _shadow_stat_prefix(shadow: rbac_pb2.RBAC | None) -> str:
    # As Istio: the prefix follows the shadow rules' action, and a missing shadow reads as
    # action ALLOW (Go's nil-safe getter), so every non-dry-run filter names the allow prefix.
    action = shadow.action if shadow is not None else ALLOW
    return {ALLOW: DRY_RUN_ALLOW_STAT_PREFIX, DENY: DRY_RUN_DENY_STAT_PREFIX}.get(action, "")


def _rbac_kwargs(rules: rbac_pb2.RBAC | None, shadow: rbac_pb2.RBAC | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"shadow_rules_stat_prefix": _shadow_stat_prefix(shadow)}
    if rules is not None:
        kwargs["rules"] = rules
    if shadow is not None:
        kwargs["shadow_rules"] = shadow
    return kwargs


def _bad_custom(rules: rbac_pb2.RBAC) -> rbac_pb2.RBAC:
    out = rbac_pb2.RBAC(action=DENY)
    for name, policy in rules.policies.items():
        out.policies[name + BAD_CUSTOM_SUFFIX].CopyFrom(policy)
    return out


def _http_filter(name: str, config: Any) -> Any:
    return hcm_pb2.HttpFilter(name=name, typed_config=to_any(config))


def _tcp_filter(name: str, config: Any) -> Any:
    return listener_components_pb2.Filter(name=name, typed_config=to_any(config))


# ---- ALLOW, DENY, AUDIT ---------------------------------------------------------------------

_LOCAL = (("audit", LOG), ("deny", DENY), ("allow", ALLOW))


def rbac_http(policies: ApplicablePolicies, bundle: TrustDomainBundle) -> list[Any]:
    out = []
    for attr, action in _LOCAL:
        built = build_rules(getattr(policies, attr), action, False, bundle)
        if built is not None:
            config = http_rbac_pb2.RBAC(**_rbac_kwargs(built.rules, built.shadow))
            out.append(_http_filter(HTTP_RBAC, config))
    return out


def rbac_tcp(policies: ApplicablePolicies, bundle: TrustDomainBundle) -> list[Any]:
    out = []
    for attr, action in _LOCAL:
        built = build_rules(getattr(policies, attr), action, True, bundle)
        if built is not None:
            kwargs = _rbac_kwargs(built.rules, built.shadow)
            config = tcp_rbac_pb2.RBAC(stat_prefix=TCP_STAT_PREFIX, **kwargs)
            out.append(_tcp_filter(TCP_RBAC, config))
    return out


# ---- CUSTOM ---------------------------------------------------------------------------------


def _custom(
    policies: ApplicablePolicies, bundle: TrustDomainBundle, push: PushContext, for_tcp: bool
) -> list[Any]:
    built = build_rules(policies.custom, DENY, for_tcp, bundle, custom=True)
    if built is None:
        return []
    names = sorted(set(built.provider_rules) | set(built.provider_shadow))
    rbac_name, ext_name = (TCP_RBAC, TCP_EXT_AUTHZ) if for_tcp else (HTTP_RBAC, HTTP_EXT_AUTHZ)
    wrap = _tcp_filter if for_tcp else _http_filter
    rbac_type = tcp_rbac_pb2.RBAC if for_tcp else http_rbac_pb2.RBAC
    extra = {"stat_prefix": TCP_STAT_PREFIX} if for_tcp else {}

    def deny(provider: str) -> Any:
        return wrap(
            rbac_name, rbac_type(rules=_bad_custom(built.provider_rules[provider]), **extra)
        )

    if len(names) > 1:
        log.warning(
            "multiple CUSTOM authorization providers per workload are not supported, found %s: "
            "denying the requests their policies match",
            names,
        )
        return [deny(p) for p in names]
    out = []
    resolved = extauthz.providers(push)
    for provider in names:
        found, error = extauthz.find_provider(resolved, provider)
        if found is None:
            log.warning("CUSTOM action with provider %r denies instead: %s", provider, error)
            out.append(deny(provider))
            continue
        ext = found.tcp if for_tcp else found.http
        if ext is None:
            continue  # an HTTP provider has nothing to say about TCP connections
        rbac = rbac_type(
            shadow_rules=built.provider_rules[provider],
            shadow_rules_stat_prefix=EXT_AUTHZ_SHADOW_STAT_PREFIX,
            **extra,
        )
        dry_run = built.provider_shadow[provider]
        if dry_run.policies:
            rbac.rules.CopyFrom(dry_run)
        config = type(ext)()
        config.CopyFrom(ext)
        config.filter_enabled_metadata.CopyFrom(
            extauthz.filter_enabled_metadata(rbac_name, provider)
        )
        out += [wrap(rbac_name, rbac), wrap(ext_name, config)]
    return out


def custom_http(
    policies: ApplicablePolicies, bundle: TrustDomainBundle, push: PushContext
) -> list[Any]:
    return _custom(policies, bundle, push, for_tcp=False)


def custom_tcp(
    policies: ApplicablePolicies, bundle: TrustDomainBundle, push: PushContext
) -> list[Any]:
    return _custom(policies, bundle, push, for_tcp=True)
