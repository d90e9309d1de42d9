"""RequestAuthentication → envoy.filters.http.jwt_authn: the filter's shape, feature by feature."""

from __future__ import annotations

import dataclasses
from typing import Any

from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from google.protobuf import json_format

from pilot.model.jwks import PUBLIC_ONLY_JWKS, JwksRef, JwksResult, JwksSnapshot
from pilot.networking import naming
from pilot.networking.authn import jwt_http_filters
from tests.helpers.xds import FakeDiscovery, ProxySpec

JWKS = '{"keys": [{"kty": "oct", "kid": "a", "k": "c2VjcmV0"}]}'


def policy(rules: str, name: str = "ra", namespace: str = "default", extra: str = "") -> str:
    return f"""
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  {extra}
  jwtRules:
{rules}
"""


def jwt_config(
    configs: str, proxy: ProxySpec | None = None, jwks: JwksSnapshot | None = None
) -> dict[str, Any] | None:
    discovery = FakeDiscovery(configs)
    if jwks is not None:
        discovery.push = dataclasses.replace(discovery.push, jwks=jwks, _memo={})
    filters = jwt_http_filters(discovery.view(proxy or ProxySpec()))
    if not filters:
        return None
    assert len(filters) == 1
    assert filters[0].name == naming.JWT_AUTHN_FILTER
    config = jwt_pb2.JwtAuthentication()
    assert filters[0].typed_config.Unpack(config)
    return json_format.MessageToDict(config)


def provider(configs: str, **kwargs: Any) -> dict[str, Any]:
    config = jwt_config(configs, **kwargs)
    assert config is not None
    assert list(config["providers"]) == ["origins-0"]
    result: dict[str, Any] = config["providers"]["origins-0"]
    return result


def test_minimal_rule() -> None:
    got = provider(policy(f"  - issuer: https://issuer.example\n    jwks: '{JWKS}'"))
    assert got == {
        "issuer": "https://issuer.example",
        "localJwks": {"inlineString": JWKS},
        "payloadInMetadata": "payload",
        "normalizePayloadInMetadata": {"spaceDelimitedClaims": ["permission", "scope"]},
    }


def test_every_rule_feature() -> None:
    rules = f"""  - issuer: https://issuer.example
    jwks: '{JWKS}'
    audiences: [api, web]
    fromHeaders: [{{name: x-jwt-assertion, prefix: "Bearer "}}, {{name: x-token}}]
    fromParams: [token]
    fromCookies: [session]
    forwardOriginalToken: true
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{{header: x-sub, claim: sub}}, {{header: x-group, claim: group}}]
    spaceDelimitedClaims: [roles, scope]"""
    got = provider(policy(rules))
    assert got["audiences"] == ["api", "web"]
    assert got["fromHeaders"] == [
        {"name": "x-jwt-assertion", "valuePrefix": "Bearer "},
        {"name": "x-token"},
    ]
    assert got["fromParams"] == ["token"]
    assert got["fromCookies"] == ["session"]
    assert got["forward"] is True
    assert got["forwardPayloadHeader"] == "x-jwt-payload"
    assert got["claimToHeaders"] == [
        {"headerName": "x-sub", "claimName": "sub"},
        {"headerName": "x-group", "claimName": "group"},
    ]
    assert got["normalizePayloadInMetadata"] == {
        "spaceDelimitedClaims": ["permission", "roles", "scope"]
    }
    assert "clearRouteCache" not in got  # sidecars do not re-route on claims


def test_token_locations_default_to_envoys() -> None:
    """No location given: Envoy's default (`Authorization: Bearer`, `access_token`)."""
    got = provider(policy(f"  - issuer: i\n    jwks: '{JWKS}'"))
    assert "fromHeaders" not in got and "fromParams" not in got and "fromCookies" not in got


def test_one_provider_allows_a_missing_token_only() -> None:
    config = jwt_config(policy(f"  - issuer: i\n    jwks: '{JWKS}'"))
    assert config is not None
    assert config["bypassCorsPreflight"] is True
    assert config["rules"] == [
        {
            "match": {"prefix": "/"},
            "requires": {
                "requiresAny": {
                    "requirements": [{"providerName": "origins-0"}, {"allowMissing": {}}]
                }
            },
        }
    ]


def test_several_providers_in_issuer_order() -> None:
    rules = f"""  - issuer: https://zeta.example
    jwks: '{JWKS}'
  - issuer: https://alpha.example
    jwks: '{JWKS}'"""
    config = jwt_config(policy(rules) + "---" + policy(rules.replace("alpha", "beta"), "more"))
    assert config is not None
    issuers = {name: p["issuer"] for name, p in config["providers"].items()}
    assert issuers == {
        "origins-0": "https://alpha.example",
        "origins-1": "https://beta.example",
        "origins-2": "https://zeta.example",
        "origins-3": "https://zeta.example",
    }
    names = sorted(issuers)
    any_of = config["rules"][0]["requires"]["requiresAny"]["requirements"]
    # Any one provider, or: every provider satisfied or its token missing.
    assert any_of[:-1] == [{"providerName": n} for n in names]
    assert any_of[-1] == {
        "requiresAll": {
            "requirements": [
                {"requiresAny": {"requirements": [{"providerName": n}, {"allowMissing": {}}]}}
                for n in names
            ]
        }
    }


def test_fetched_keys_are_inlined_and_missing_ones_reject_tokens() -> None:
    rules = """  - issuer: https://fetched.example
    jwksUri: https://fetched.example/jwks
  - issuer: https://down.example
    jwksUri: https://down.example/jwks
  - issuer: https://discovered.example"""
    snapshot = (
        JwksSnapshot()
        .with_result(JwksRef("https://fetched.example/jwks"), JwksResult(jwks=JWKS))
        .with_result(JwksRef("https://down.example/jwks"), JwksResult(error="status 503"))
        .with_result(
            JwksRef(issuer="https://discovered.example"),
            JwksResult(jwks=JWKS.replace('"a"', '"d"'), jwks_uri="https://d/keys"),
        )
    )
    config = jwt_config(policy(rules), jwks=snapshot)
    assert config is not None
    keys = {p["issuer"]: p["localJwks"]["inlineString"] for p in config["providers"].values()}
    assert keys == {
        "https://discovered.example": JWKS.replace('"a"', '"d"'),
        "https://down.example": PUBLIC_ONLY_JWKS,
        "https://fetched.example": JWKS,
    }
    # Never fetched yet: rejected too, until the resolver has the keys.
    pending = jwt_config(policy(rules))
    assert pending is not None
    assert {p["localJwks"]["inlineString"] for p in pending["providers"].values()} == {
        PUBLIC_ONLY_JWKS
    }


def test_gateways_clear_the_route_cache() -> None:
    configs = policy(f"  - issuer: i\n    jwks: '{JWKS}'", namespace="istio-system")
    got = provider(configs, proxy=ProxySpec(type="router", name="gw.istio-system"))
    assert got["clearRouteCache"] is True


def test_selection() -> None:
    configs = policy(
        f"  - issuer: i\n    jwks: '{JWKS}'", extra="selector: {matchLabels: {app: api}}"
    )
    assert jwt_config(configs, ProxySpec(labels={"app": "web"})) is None
    assert jwt_config(configs, ProxySpec(labels={"app": "api"})) is not None
    assert jwt_config(configs, ProxySpec(name="app.other", labels={"app": "api"})) is None
    assert jwt_config("") is None


def test_proxies_with_the_same_policies_share_the_filter() -> None:
    discovery = FakeDiscovery(policy(f"  - issuer: i\n    jwks: '{JWKS}'"))
    a = jwt_http_filters(discovery.view(ProxySpec(name="a.default", ip="10.0.0.1")))
    b = jwt_http_filters(discovery.view(ProxySpec(name="b.default", ip="10.0.0.2")))
    assert a[0] is b[0]


def test_an_inline_jwks_envoy_cannot_use_rejects_tokens_instead_of_the_listener() -> None:
    got = provider(policy("  - issuer: i\n    jwks: '{\"keys\": []}'"))
    assert got["localJwks"] == {"inlineString": PUBLIC_ONLY_JWKS}
