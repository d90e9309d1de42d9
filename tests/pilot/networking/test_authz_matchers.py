"""Matchers and attribute generators of AuthorizationPolicy values (Istio's authz/matcher and
authz/model generator tests, re-expressed)."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format

from pilot.networking.authz import generators as g
from pilot.networking.authz import matchers as m
from pilot.networking.authz.trust_domain import TrustDomainBundle
from tests.helpers.golden import to_proto_dict

URI_TEMPLATE_TYPE = (
    "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig"
)


def as_dict(message: Any) -> dict[str, Any]:
    return to_proto_dict(message)


@pytest.mark.parametrize(
    ("value", "prepend", "expected"),
    [
        ("abc", "", {"exact": "abc"}),
        ("abc*", "", {"prefix": "abc"}),
        ("*abc", "", {"suffix": "abc"}),
        ("*", "", {"safeRegex": {"regex": ".+"}}),
        ("*", "spiffe://", {"safeRegex": {"regex": ".+"}}),
        ("ns/sa", "spiffe://", {"exact": "spiffe://ns/sa"}),
        ("td/ns/*", "spiffe://", {"prefix": "spiffe://td/ns/"}),
        ("*/ns/a.b", "spiffe://", {"safeRegex": {"regex": "spiffe://.*/ns/a\\.b"}}),
    ],
)
def test_string_matcher(value: str, prepend: str, expected: dict[str, Any]) -> None:
    assert as_dict(m.string_matcher(value, prepend)) == expected


def test_quote_meta_escapes_like_go() -> None:
    # Go's regexp.QuoteMeta leaves '-', '/' and ' ' alone (Python's re.escape would not).
    assert m.quote_meta("rule[0]-a.b/c d*") == "rule\\[0\\]-a\\.b/c d\\*"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("*", {"name": ":authority", "presentMatch": True}),
        (
            "*.example.com",
            {"name": ":authority", "stringMatch": {"suffix": ".example.com", "ignoreCase": True}},
        ),
        (
            "example.*",
            {"name": ":authority", "stringMatch": {"prefix": "example.", "ignoreCase": True}},
        ),
        (
            "Example.com",
            {"name": ":authority", "stringMatch": {"exact": "Example.com", "ignoreCase": True}},
        ),
    ],
)
def test_host_matcher_ignores_case(value: str, expected: dict[str, Any]) -> None:
    assert as_dict(m.host_matcher(":authority", value)) == expected


def test_header_matcher_is_case_sensitive() -> None:
    assert as_dict(m.header_matcher("x-a", "B*")) == {"name": "x-a", "stringMatch": {"prefix": "B"}}


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/a/{*}/b", "/a/*/b"),
        ("/{**}/x", "/**/x"),
        ("/a/{*}/{**}", "/a/*/**"),
    ],
)
def test_path_templates(path: str, template: str) -> None:
    assert m.contains_path_template(path)
    assert m.path_template(path).path_template == template


def test_plain_paths_are_not_templates() -> None:
    assert not m.contains_path_template("/a/*")
    assert as_dict(m.path_matcher("/a/*")) == {"path": {"prefix": "/a/"}}


def test_path_permission_uses_the_uri_template_extension() -> None:
    permission = g.Path().permission("path-matcher", "/api/{*}/items", False)
    assert as_dict(permission) == {
        "uriTemplate": {
            "name": "uri-template",
            "typedConfig": {
                "@type": URI_TEMPLATE_TYPE,
                "pathTemplate": "/api/*/items",
            },
        }
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.1.2.3", ("10.1.2.3", 32)),
        ("10.1.0.0/16", ("10.1.0.0", 16)),
        ("10.1.2.3/16", ("10.1.2.3", 16)),  # host bits kept, as Go's netip.ParsePrefix
        ("2001:db8::1", ("2001:db8::1", 128)),
    ],
)
def test_cidr_range(value: str, expected: tuple[str, int]) -> None:
    cidr = m.cidr_range(value)
    assert (cidr.address_prefix, cidr.prefix_len.value) == expected


@pytest.mark.parametrize("value", ["", "10.1.2", "10.0.0.0/33", "10.0.0.0/255.0.0.0", "host"])
def test_bad_cidr(value: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        m.cidr_range(value)


def test_metadata_list_value_matches_a_string_or_a_list_element() -> None:
    matcher = m.metadata_list_value("f", ["payload", "groups"], m.string_or(["admin"]))
    assert as_dict(matcher) == {
        "filter": "f",
        "path": [{"key": "payload"}, {"key": "groups"}],
        "value": {
            "orMatch": {
                "valueMatchers": [
                    {"listMatch": {"oneOf": {"stringMatch": {"exact": "admin"}}}},
                    {"stringMatch": {"exact": "admin"}},
                ]
            }
        },
    }


# ---- generators -------------------------------------------------------------------------------


def test_service_account_regex_defaults_to_the_policy_namespace() -> None:
    principal = g.SrcServiceAccount("foo").principal("k", "sleep", False, True)
    regex = principal.authenticated.principal_name.safe_regex.regex
    assert regex == "spiffe://.+/ns/foo/(.+/|)sa/sleep(/.+)?"


def test_namespace_wildcards() -> None:
    principal = g.SrcNamespace().principal("k", "team-*", False, True)
    assert principal.authenticated.principal_name.safe_regex.regex == ".*/ns/team-.*/.*"


@pytest.mark.parametrize(
    ("value", "iss", "sub"),
    [
        (
            "https://accounts.example.com/alice",
            {"exact": "https://accounts.example.com"},
            {"exact": "alice"},
        ),
        ("https://example.com/*", {"exact": "https://example.com"}, {"safeRegex": {"regex": ".+"}}),
        ("*/alice", {"safeRegex": {"regex": ".+"}}, {"exact": "alice"}),
        ("*", {"safeRegex": {"regex": ".+"}}, {"safeRegex": {"regex": ".+"}}),
    ],
)
def test_request_principal_splits_issuer_and_subject(
    value: str, iss: dict[str, Any], sub: dict[str, Any]
) -> None:
    principal = g.RequestPrincipal().extended_principal("request.auth.principal", [value], False)
    ids = [as_dict(p.metadata) for p in principal.and_ids.ids]
    assert ids == [
        {
            "filter": "envoy.filters.http.jwt_authn",
            "path": [{"key": "payload"}, {"key": claim}],
            "value": {"stringMatch": match},
        }
        for claim, match in (("iss", iss), ("sub", sub))
    ]


def test_http_only_attributes_are_unsupported_on_tcp() -> None:
    with pytest.raises(g.Unsupported):
        g.Method().permission(":method", "GET", True)
    with pytest.raises(g.Unsupported):
        g.RequestClaims(("aud",)).extended_principal("request.auth.audiences", ["a"], True)
    assert g.DestPort().permission("destination.port", "80", True).destination_port == 80


def test_nested_claims() -> None:
    assert g.nested_bracketed("[a][b]") == ["a", "b"]
    assert g.nested_bracketed("[a.b]") == ["a.b"]
    with pytest.raises(g.Unsupported):
        g.nested_bracketed("a]")


# ---- trust domains -----------------------------------------------------------------------------


def test_trust_domain_aliases() -> None:
    bundle = TrustDomainBundle.of("td1", ["old-td"])
    assert bundle.replace_aliases(["cluster.local/ns/a/sa/b"]) == [
        "td1/ns/a/sa/b",
        "old-td/ns/a/sa/b",
    ]
    assert bundle.replace_aliases(["old-td/ns/a/sa/b"]) == ["td1/ns/a/sa/b", "old-td/ns/a/sa/b"]
    # Another trust domain, a wildcard trust domain, or not an identity: kept as is.
    assert bundle.replace_aliases(["other/ns/a/sa/b", "*/ns/a/sa/b", "sa/b"]) == [
        "other/ns/a/sa/b",
        "*/ns/a/sa/b",
        "sa/b",
    ]
    assert bundle.expand_aliases(["old-td", "x", "td1"]) == ["td1", "old-td", "x"]


def test_json_roundtrip_of_generated_principal() -> None:
    principal = g.SrcPrincipal().principal("k", "cluster.local/ns/a/sa/b", False, True)
    again = json_format.ParseDict(as_dict(principal), g.Principal())
    assert again == principal
