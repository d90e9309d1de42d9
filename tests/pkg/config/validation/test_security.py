from __future__ import annotations

import pytest

from pkg.config.specs.security import Action, Mode
from tests.pkg.config.support import assert_rejected, assert_valid, warnings_of


def doc(kind: str, body: str, extra_meta: str = "") -> str:
    head = (
        f"apiVersion: security.istio.io/v1\nkind: {kind}\nmetadata: {{name: p{extra_meta}}}\n"
        "spec:\n"
    )
    return head + "".join(f"  {line}\n" for line in body.strip("\n").splitlines())


def authz(body: str, extra_meta: str = "") -> str:
    return doc("AuthorizationPolicy", body, extra_meta)


def test_valid_authorization_policy() -> None:
    config = assert_valid(
        authz(
            """
selector: {matchLabels: {app: httpbin}}
action: DENY
rules:
- from: [{source: {principals: [cluster.local/ns/default/sa/sleep], notIpBlocks: [10.0.0.0/8]}}]
  to: [{operation: {methods: [GET], paths: ["/api/{*}/items"], ports: ["8080"]}}]
  when:
  - {key: 'request.headers[x-token]', values: ["*"]}
  - {key: destination.port, notValues: ["22"]}
"""
        )
    )
    assert config.spec.action is Action.DENY
    assert config.spec.rules[0].from_[0].source.not_ip_blocks == ("10.0.0.0/8",)
    assert_valid(authz("{}"))  # an empty ALLOW policy denies everything: valid
    assert_valid(authz("action: CUSTOM\nprovider: {name: ext-authz}\nrules: [{}]"))


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        ("action: DENY", "spec.rules", "DENY action without `rules`"),
        ("action: CUSTOM\nrules: [{}]", "spec.provider.name", "must not be empty"),
        ("action: CUSTOM", "spec.rules", "CUSTOM action without `rules`"),
        ("provider: {name: x}", "spec.provider", "non CUSTOM action"),
        ("action: REJECT", "spec.action", "Unsupported value"),
        (
            "action: CUSTOM\nprovider: {name: x}\nrules: [{from: [{source: {namespaces: [a]}}]}]",
            "spec.rules[0].from[0].source",
            "From.Namespaces is currently not supported with CUSTOM action",
        ),
        ("rules: [{from: [{}]}]", "spec.rules[0].from[0].source", "must not be nil"),
        ("rules: [{from: [{source: {}}]}]", "spec.rules[0].from[0].source", "must not be empty"),
        ("rules: [{to: [{operation: {}}]}]", "spec.rules[0].to[0].operation", "must not be empty"),
        (
            "rules: [{from: [{source: {ipBlocks: [1.2.3.256]}}]}]",
            "spec.rules[0].from[0].source.ipBlocks",
            "bad IP",
        ),
        (
            "rules: [{from: [{source: {principals: ['']}}]}]",
            "spec.rules[0].from[0].source.principals",
            "empty value",
        ),
        (
            "rules: [{from: [{source: {serviceAccounts: ['a/b/c']}}]}]",
            "spec.rules[0].from[0].source.serviceAccounts",
            "expected format",
        ),
        (
            "rules: [{from: [{source: {trustDomains: ['a*b']}}]}]",
            "spec.rules[0].from[0].source.trustDomains",
            "start or end",
        ),
        (
            "rules: [{to: [{operation: {ports: ['http']}}]}]",
            "spec.rules[0].to[0].operation.ports",
            "bad port",
        ),
        (
            "rules: [{to: [{operation: {paths: ['/{**}/a/{*}']}}]}]",
            "spec.rules[0].to[0].operation.paths",
            "not the last operator",
        ),
        (
            "rules: [{when: [{key: source.ip}]}]",
            "spec.rules[0].when[0]",
            "at least one of `values` or `notValues`",
        ),
        ("rules: [{when: [{values: [a]}]}]", "spec.rules[0].when[0].key", "Required value"),
        (
            "rules: [{when: [{key: source.ip, values: [nope]}]}]",
            "spec.rules[0].when[0].values",
            "bad IP",
        ),
        (
            "rules: [{when: [{key: request.headers, values: [a]}]}]",
            "spec.rules[0].when[0].values",
            "a[b]",
        ),
        (
            "rules: [{when: [{key: 'destination.labels[a]', values: [a]}]}]",
            "spec.rules[0].when[0].values",
            "workload selector",
        ),
        (
            "rules: [{when: [{key: source.color, values: [a]}]}]",
            "spec.rules[0].when[0].values",
            "unknown attribute",
        ),
        (
            "selector: {matchLabels: {a: b}}\ntargetRef: {kind: Service, name: s}",
            "spec",
            "only one of targetRefs or selector",
        ),
        (
            "targetRef: {kind: Deployment, name: d}",
            "spec.targetRef.kind",
            "targetRef must be to one of",
        ),
        (
            "targetRef: {kind: Service, name: s, namespace: other}",
            "spec.targetRef.namespace",
            "cross namespace",
        ),
        ("targetRefs: [{kind: Service}]", "spec.targetRefs[0].name", "Required value"),
        ("selector: {matchLabels: {app: 'a*'}}", "spec.selector.matchLabels[app]", "wildcard"),
    ],
)
def test_authorization_policy_rules(body: str, path: str, fragment: str) -> None:
    assert_rejected(authz(body), path, fragment)


def test_dry_run_annotation() -> None:
    annotated = ", annotations: {istio.io/dry-run: 'VALUE'}"
    assert_valid(authz("action: DENY\nrules: [{}]", annotated.replace("VALUE", "true")))
    assert_rejected(
        authz("action: DENY\nrules: [{}]", annotated.replace("VALUE", "maybe")),
        "metadata.annotations[istio.io/dry-run]",
        "invalid value",
    )
    assert_rejected(
        authz("action: AUDIT\nrules: [{}]", annotated.replace("VALUE", "true")),
        "metadata.annotations[istio.io/dry-run]",
        "ALLOW/DENY",
    )


def test_deny_with_only_http_attributes_warns() -> None:
    body = "action: DENY\nrules: [{to: [{operation: {methods: [POST]}}]}]"
    assert [p for p, _ in warnings_of(authz(body))] == ["spec.rules[0]"]


def test_peer_authentication() -> None:
    config = assert_valid(
        doc(
            "PeerAuthentication",
            "selector: {matchLabels: {app: a}}\nmtls: {mode: STRICT}\nportLevelMtls: {8080: "
            "{mode: DISABLE}}",
        )
    )
    assert config.spec.mtls.mode is Mode.STRICT
    assert config.spec.port_level_mtls["8080"].mode is Mode.DISABLE
    assert_rejected(
        doc(
            "PeerAuthentication",
            "selector: {matchLabels: {app: a}}\nportLevelMtls: {80: {mode: LOOSE}}",
        ),
        "spec.portLevelMtls[80].mode",
        "Unsupported value",
    )
    assert_rejected(
        doc(
            "PeerAuthentication", "selector: {matchLabels: {}}\nportLevelMtls: {80: {mode: STRICT}}"
        ),
        "spec.portLevelMtls",
        "requires selector",
    )


def test_request_authentication() -> None:
    body = """
selector: {matchLabels: {app: a}}
jwtRules:
- issuer: https://accounts.example.com
  jwksUri: https://accounts.example.com/jwks
  audiences: [api]
  fromHeaders: [{name: x-jwt, prefix: "Bearer "}]
  outputClaimToHeaders: [{header: x-sub, claim: sub}]
  timeout: 5s
- issuer: inline
  jwks: '{"keys": [{"kty": "RSA", "n": "abc", "e": "AQAB"}]}'
"""
    config = assert_valid(doc("RequestAuthentication", body))
    assert config.spec.jwt_rules[0].from_headers[0].prefix == "Bearer "


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        ("jwtRules: [{audiences: [a]}]", "spec.jwtRules[0].issuer", "issuer or jwksUri"),
        (
            "jwtRules: [{issuer: a, jwksUri: 'ftp://x/jwks'}]",
            "spec.jwtRules[0].jwksUri",
            "http:// or https://",
        ),
        ("jwtRules: [{issuer: a, jwks: 'not json'}]", "spec.jwtRules[0].jwks", "jwks parse error"),
        (
            "jwtRules: [{issuer: a, jwksUri: 'https://x', jwks: '{\"keys\": []}'}]",
            "spec.jwtRules[0]",
            "only one of jwks or jwksUri",
        ),
        (
            "jwtRules: [{issuer: a, audiences: ['']}]",
            "spec.jwtRules[0].audiences[0]",
            "at least 1 chars",
        ),
        (
            "jwtRules: [{issuer: a, fromHeaders: [{prefix: b}]}]",
            "spec.jwtRules[0].fromHeaders[0].name",
            "Required",
        ),
        (
            "jwtRules: [{issuer: a, outputClaimToHeaders: [{header: ':authority', claim: c}]}]",
            "spec.jwtRules[0].outputClaimToHeaders[0].header",
            "should match",
        ),
        ("jwtRules: [{issuer: a, timeout: apple}]", "spec.jwtRules[0].timeout", "valid duration"),
        (
            "jwtRules: [{issuer: a, presence: MANDATORY}]",
            "spec.jwtRules[0].presence",
            "Unsupported value",
        ),
        ("jwtRules: [~]", "spec.jwtRules[0]", "must be of type object"),
    ],
)
def test_request_authentication_rules(body: str, path: str, fragment: str) -> None:
    assert_rejected(doc("RequestAuthentication", body), path, fragment)


def test_jwt_rule_fields_newer_than_the_protos_are_accepted() -> None:
    config = assert_valid(
        doc("RequestAuthentication", "jwtRules: [{issuer: a, presence: REQUIRED}]")
    )
    assert config.spec.jwt_rules[0].presence.value == "REQUIRED"


def test_unknown_jwt_rule_fields_are_errors() -> None:
    assert_rejected(
        doc("RequestAuthentication", "jwtRules: [{issuer: a, issuers: [b]}]"),
        "spec.jwtRules[0].issuers",
        'unknown field "issuers"',
    )


def test_a_jwks_envoy_cannot_use_is_a_warning() -> None:
    body = "jwtRules: [{issuer: a, jwks: '{\"keys\": []}'}]"
    assert_valid(doc("RequestAuthentication", body))
    [(path, reason)] = warnings_of(doc("RequestAuthentication", body))
    assert path == "spec.jwtRules[0].jwks"
    assert reason == "Envoy cannot use this jwks (no keys); tokens of this issuer will be rejected"
