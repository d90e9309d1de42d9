"""JWKS refs, demand and snapshots (pure; fetching is in tests/pilot/bootstrap)."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
import yaml

from pilot.model.jwks import (
    DEFAULT_FETCH_TIMEOUT,
    PUBLIC_ONLY_JWKS,
    JwksFormatError,
    JwksRef,
    JwksResult,
    JwksSnapshot,
    jwks_demand,
    parse_discovery,
    parse_jwks,
    same_keys,
)
from pkg.config.model import Config, ConfigKey, Kind
from pkg.config.schema import parse_object

JWKS = '{"keys": [{"kty": "oct", "kid": "a", "k": "c2VjcmV0"}]}'


def policy(name: str, rules: list[dict[str, Any]], namespace: str = "default") -> Config[Any]:
    doc = {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"jwtRules": rules},
    }
    result = parse_object(yaml.safe_load(json.dumps(doc)))
    assert result.config is not None, result.errors
    return result.config


def rule(**fields: Any) -> Any:
    return policy("p", [fields]).spec.jwt_rules[0]


def test_ref_of_rule() -> None:
    assert JwksRef.of_rule(rule(issuer="i", jwks=JWKS)) is None
    assert JwksRef.of_rule(rule(issuer="i", jwksUri="https://k/j")) == JwksRef("https://k/j")
    by_issuer = JwksRef.of_rule(rule(issuer="https://issuer.example/"))
    assert by_issuer == JwksRef(issuer="https://issuer.example/")
    assert by_issuer.discovery_url == "https://issuer.example/.well-known/openid-configuration"


def test_demand_merges_rules_naming_the_same_keys() -> None:
    a = policy("a", [{"issuer": "i", "jwksUri": "http://k/j", "timeout": "2s"}])
    b = policy("b", [{"issuer": "j", "jwksUri": "http://k/j", "timeout": "9s"}], "other")
    c = policy("c", [{"issuer": "https://d.example"}, {"issuer": "x", "jwks": JWKS}])
    demand = jwks_demand([a, b, c])
    assert list(demand) == [JwksRef(issuer="https://d.example"), JwksRef("http://k/j")]
    shared = demand[JwksRef("http://k/j")]
    assert shared.timeout == 9.0
    assert shared.keys == {
        ConfigKey(Kind.REQUEST_AUTHENTICATION, "a", "default"),
        ConfigKey(Kind.REQUEST_AUTHENTICATION, "b", "other"),
    }
    assert demand[JwksRef(issuer="https://d.example")].timeout == DEFAULT_FETCH_TIMEOUT


def test_keys_for_a_rule() -> None:
    ref = JwksRef("http://k/j")
    fetched = JwksSnapshot().with_result(ref, JwksResult(jwks=JWKS, jwks_uri=ref.jwks_uri))
    assert fetched.keys_for(rule(issuer="i", jwksUri="http://k/j")) == JWKS
    # Inline keys are used as written.
    assert fetched.keys_for(rule(issuer="i", jwks=JWKS)) == JWKS
    # Not fetched (yet), or failed: a key set nobody can sign for.
    assert JwksSnapshot().keys_for(rule(issuer="i", jwksUri="http://k/j")) == PUBLIC_ONLY_JWKS
    failed = JwksSnapshot().with_result(ref, JwksResult(error="status 500"))
    assert failed.keys_for(rule(issuer="i", jwksUri="http://k/j")) == PUBLIC_ONLY_JWKS
    # A failed refresh keeps the keys fetched before.
    stale = fetched.with_result(ref, JwksResult(jwks=JWKS, error="status 500"))
    assert stale.keys_for(rule(issuer="i", jwksUri="http://k/j")) == JWKS


def test_problems_name_the_key_set_and_the_consequence() -> None:
    snapshot = (
        JwksSnapshot()
        .with_result(JwksRef("http://a/j"), JwksResult(error="status 500"))
        .with_result(JwksRef("http://b/j"), JwksResult(jwks=JWKS, error="timed out"))
        .with_result(JwksRef("http://c/j"), JwksResult(jwks=JWKS))
    )
    assert snapshot.problems() == [
        "jwks http://a/j: fetch failed, tokens of this issuer are rejected: status 500",
        "jwks http://b/j: refresh failed, still serving the JWKS fetched before: timed out",
    ]
    assert snapshot.only([JwksRef("http://c/j")]).problems() == []


def test_public_only_jwks_is_a_public_rsa_key() -> None:
    keys = jwt.PyJWKSet.from_json(PUBLIC_ONLY_JWKS).keys
    assert len(keys) == 1
    assert keys[0].key_type == "RSA"
    assert "d" not in json.loads(PUBLIC_ONLY_JWKS)["keys"][0]
    assert parse_jwks(PUBLIC_ONLY_JWKS.encode()) == PUBLIC_ONLY_JWKS


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "invalid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"issuer": "x"}', 'no "keys" array'),
        (b'{"keys": [{"kid": "a"}]}', "key 0: kty missing"),
        (b'{"keys": []}', "no keys"),
        (b'{"keys": [{"kty": "RSA", "n": "zz", "e": "AQAB"}]}', "RSA modulus"),
        (b"\xff", "invalid JSON"),
    ],
)
def test_only_jwks_documents_are_accepted(body: bytes, message: str) -> None:
    with pytest.raises(JwksFormatError, match=message):
        parse_jwks(body)


def test_discovery_document() -> None:
    assert parse_discovery(b'{"jwks_uri": "https://k/j", "issuer": "i"}') == "https://k/j"
    with pytest.raises(JwksFormatError, match="invalid jwks_uri"):
        parse_discovery(b'{"issuer": "i"}')
    with pytest.raises(JwksFormatError, match="invalid OpenID discovery document"):
        parse_discovery(b"nope")


def test_same_keys_ignores_order_and_formatting() -> None:
    a = '{"keys": [{"kty": "oct", "kid": "a"}, {"kty": "oct", "kid": "b"}]}'
    b = '{"keys":[{"kid":"b","kty":"oct"},{"kid":"a","kty":"oct"}]}'
    assert same_keys(a, b)
    assert not same_keys(a, '{"keys": [{"kty": "oct", "kid": "a"}]}')
    assert not same_keys("not json", a)
