"""RequestAuthentication → `envoy.filters.http.jwt_authn` (Istio's policy_applier JwtFilter).

One provider per JWT rule of the policies that apply to the proxy, in issuer order, named
`origins-<i>`; each gets the rule's issuer, audiences, token locations (`fromHeaders` with their
prefix, `fromParams`, `fromCookies`; none given means Envoy's default, `Authorization: Bearer`
and the `access_token` parameter), `forwardOriginalToken`, `outputPayloadToHeader`,
`outputClaimToHeaders`, and its keys inline (`local_jwks`: the rule's `jwks`, or what istiod
fetched, or a key nobody can sign for when that fetch failed — see `pilot.model.jwks`).

The verified payload goes to dynamic metadata (`payload` in the filter's namespace, with the
space-delimited claims `scope`, `permission` and the rule's `spaceDelimitedClaims` normalized to
lists) where authorization policies read `request.auth.*`.

Requirements, as Istio: a request without a token passes (authorization decides), a request
with a token must satisfy a provider (an invalid token is rejected with 401). With several
providers the requirement is "any provider, or every provider-or-missing", so a token in a
location several providers share is accepted by the one it belongs to. CORS preflights bypass
the filter. Gateways clear the route cache after verification so routes can match claims.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from pilot.model.jwks import JwksSnapshot
from pilot.model.proxy_view import ProxyView
from pilot.model.request_authentication import jwt_rules
from pilot.networking import naming
from pilot.networking.protos import to_any

# Claims Envoy splits on spaces into lists in the metadata payload, whatever the rule says.
DEFAULT_SPACE_DELIMITED_CLAIMS = ("permission", "scope")


def _provider(rule: Any, jwks: JwksSnapshot, clear_route_cache: bool) -> Any:
    provider = jwt_pb2.JwtProvider(
        issuer=rule.issuer,
        audiences=list(rule.audiences),
        forward=rule.forward_original_token,
        forward_payload_header=rule.output_payload_to_header,
        payload_in_metadata=naming.JWT_PAYLOAD_METADATA_KEY,
        clear_route_cache=clear_route_cache,
    )
    provider.normalize_payload_in_metadata.space_delimited_claims.extend(
        sorted({*DEFAULT_SPACE_DELIMITED_CLAIMS, *rule.space_delimited_claims})
    )
    for item in rule.output_claim_to_headers:
        provider.claim_to_headers.add(header_name=item.header, claim_name=item.claim)
    for location in rule.from_headers:
        provider.from_headers.add(name=location.name, value_prefix=location.prefix)
    provider.from_params.extend(rule.from_params)
    provider.from_cookies.extend(rule.from_cookies)
    provider.local_jwks.inline_string = jwks.keys_for(rule)
    return provider


def _provider_or_missing(name: str) -> Any:
    requirement = jwt_pb2.JwtRequirement()
    any_of = requirement.requires_any.requirements
    any_of.add(provider_name=name)
    any_of.add().allow_missing.SetInParent()
    return requirement


def jwt_authentication(
    rules: Sequence[Any], jwks: JwksSnapshot, *, clear_route_cache: bool = False
) -> Any | None:
    """The JwtAuthentication config for `rules` (already in issuer order); None without rules."""
    if not rules:
        return None
    config = jwt_pb2.JwtAuthentication(bypass_cors_preflight=True)
    names = []
    for index, rule in enumerate(rules):
        name = naming.jwt_provider_name(index)
        names.append(name)
        config.providers[name].CopyFrom(_provider(rule, jwks, clear_route_cache))
    requirement_rule = config.rules.add()
    requirement_rule.match.prefix = "/"
    if len(names) == 1:
        requirement_rule.requires.CopyFrom(_provider_or_missing(names[0]))
        return config
    any_of = requirement_rule.requires.requires_any.requirements
    for name in names:
        any_of.add(provider_name=name)
    all_of = any_of.add().requires_all.requirements
    for name in names:
        all_of.append(_provider_or_missing(name))
    return config


def jwt_http_filters(view: ProxyView) -> list[Any]:
    """The jwt_authn filter for the proxy's RequestAuthentications (none when none apply)."""
    push = view.push
    if not push.request_authentication:
        return []
    policies = push.request_authentication.policies_for(view.namespace, view.labels)
    if not policies:
        return []
    key = ("jwt-authn", tuple(p.key for p in policies), view.is_router)

    def build() -> list[Any]:
        config = jwt_authentication(
            jwt_rules(policies), push.jwks, clear_route_cache=view.is_router
        )
        if config is None:
            return []
        return [hcm_pb2.HttpFilter(name=naming.JWT_AUTHN_FILTER, typed_config=to_any(config))]

    return list(push.memo(key, build))
