from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pkg.config.decode import DecodeError, Issues, decode, decode_into, json_name
from pkg.config.specs import extensions, kube, networking, security
from pkg.config.types import Duration


def _issues(cls: type, value: Any, path: str = "spec") -> Issues:
    found: Issues = []
    decode_into(cls, value, path, found)
    return found


@pytest.mark.parametrize(
    ("py", "js"),
    [
        ("export_to", "exportTo"),
        ("consecutive_5xx_errors", "consecutive5xxErrors"),
        ("http1_max_pending_requests", "http1MaxPendingRequests"),
        ("from_", "from"),
        ("host", "host"),
    ],
)
def test_json_names(py: str, js: str) -> None:
    assert json_name(py) == js


def test_decodes_a_virtual_service_into_frozen_typed_values() -> None:
    vs = decode(
        networking.VirtualService,
        {
            "hosts": ["reviews"],
            "exportTo": ["."],
            "http": [
                {
                    "match": [{"headers": {"end-user": {"exact": "jason"}}, "port": 9080}],
                    "route": [{"destination": {"host": "reviews", "subset": "v2"}, "weight": 80}],
                    "timeout": "1.5s",
                    "retries": {"attempts": 3, "retryRemoteLocalities": True},
                }
            ],
        },
    )
    route = vs.http[0]
    assert vs.hosts == ("reviews",)
    assert vs.export_to == (".",)
    assert route.match[0].headers["end-user"] == networking.StringMatch(exact="jason")
    assert route.match[0].port == 9080
    assert route.route[0].destination == networking.Destination(host="reviews", subset="v2")
    assert route.timeout == Duration(1, 500_000_000)
    assert route.retries == networking.HTTPRetry(attempts=3, retry_remote_localities=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        vs.hosts = ()  # type: ignore[misc]


def test_unknown_field_is_reported_with_its_path() -> None:
    found = _issues(networking.VirtualService, {"http": [{"match": [{"sourcelabels": {}}]}]})
    assert ("spec.http[0].match[0].sourcelabels", 'unknown field "sourcelabels"') in found


@pytest.mark.parametrize(
    ("value", "path", "expected"),
    [
        ({"hosts": "reviews"}, "spec.hosts", 'must be of type array: "string"'),
        ({"hosts": [1]}, "spec.hosts[0]", 'must be of type string: "integer"'),
        ({"http": [{"timeout": 5}]}, "spec.http[0].timeout", 'must be of type string: "integer"'),
        ({"http": {}}, "spec.http", 'must be of type array: "object"'),
        ({"http": [[]]}, "spec.http[0]", 'must be of type object: "array"'),
        (
            {"http": [{"match": [{"ignoreUriCase": "yes"}]}]},
            "spec.http[0].match[0].ignoreUriCase",
            "boolean",
        ),
        (
            {"http": [{"route": [{"destination": {"host": "a"}, "weight": "10"}]}]},
            "spec.http[0].route[0].weight",
            "integer",
        ),
        ({"http": [{"match": [{"headers": []}]}]}, "spec.http[0].match[0].headers", "object"),
    ],
)
def test_wrong_types(value: dict[str, Any], path: str, expected: str) -> None:
    found = _issues(networking.VirtualService, value)
    assert any(p == path and expected in r for p, r in found), found


def test_all_errors_of_a_document_are_collected() -> None:
    found = _issues(
        networking.VirtualService,
        {"hosts": [1], "bogus": 1, "http": [{"route": [{"weight": "x"}]}]},
    )
    assert {p for p, _ in found} == {
        "spec.hosts[0]",
        "spec.bogus",
        "spec.http[0].route[0].weight",
        "spec.http[0].route[0].destination",
    }


def test_null_is_refused_unless_the_schema_is_nullable() -> None:
    assert ("spec.http[0].retries", 'must be of type object: "null"') in _issues(
        networking.VirtualService, {"http": [{"retries": None}]}
    )
    # google.protobuf wrappers are nullable in the CRDs: null means unset.
    vs = decode(networking.VirtualService, {"http": [{"retries": {"retryRemoteLocalities": None}}]})
    assert vs.http[0].retries == networking.HTTPRetry()


def test_integer_formats_are_range_checked() -> None:
    found = _issues(networking.VirtualService, {"http": [{"match": [{"port": -1}]}]})
    assert found
    assert found[0][0] == "spec.http[0].match[0].port"
    assert "uint32" in found[0][1]
    found = _issues(networking.VirtualService, {"http": [{"route": [{"weight": 2**31}]}]})
    assert any(p == "spec.http[0].route[0].weight" and "int32" in r for p, r in found)


def test_integral_floats_are_integers_but_fractions_are_not() -> None:
    assert decode(networking.Destination, {"host": "a", "port": {"number": 80.0}}).port == (
        networking.PortSelector(80)
    )
    found = _issues(networking.Destination, {"host": "a", "port": {"number": 80.5}})
    assert found == [("spec.port.number", 'must be of type integer: "number"')]


def test_numbers_accept_integers() -> None:
    percent = decode(networking.Percent, {"value": 100})
    assert percent.value == 100.0
    assert isinstance(percent.value, float)


def test_enum_values_are_proto_names() -> None:
    tls = decode(networking.ClientTLSSettings, {"mode": "ISTIO_MUTUAL"})
    assert tls.mode is networking.ClientTLSSettings_TLSmode.ISTIO_MUTUAL
    found = _issues(networking.ClientTLSSettings, {"mode": "istio_mutual"})
    assert found == [
        (
            "spec.mode",
            'Unsupported value: "istio_mutual": supported values: "DISABLE", "SIMPLE", '
            '"MUTUAL", "ISTIO_MUTUAL"',
        )
    ]


def test_required_fields() -> None:
    assert _issues(networking.HTTPRouteDestination, {"weight": 1}) == [
        ("spec.destination", "Required value")
    ]


def test_oneof_groups_allow_one_member() -> None:
    found = _issues(networking.StringMatch, {"exact": "a", "prefix": "b"})
    assert found == [("spec", "only one of exact, prefix, regex may be set")]
    assert decode(networking.StringMatch, {"prefix": ""}) == networking.StringMatch(prefix="")


def test_map_keys_become_strings() -> None:
    pa = decode(security.PeerAuthentication, {"portLevelMtls": {80: {"mode": "STRICT"}}})
    assert dict(pa.port_level_mtls) == {"80": security.MutualTLS(security.Mode.STRICT)}


def test_map_value_errors_name_the_key() -> None:
    found = _issues(security.PeerAuthentication, {"portLevelMtls": {"80": {"mode": "X"}}})
    assert found[0][0] == "spec.portLevelMtls[80].mode"


def test_base64_bytes() -> None:
    secret = decode(kube.Secret, {"data": {"tls.crt": "aGVsbG8="}})
    assert secret.data == {"tls.crt": b"hello"}
    assert _issues(kube.Secret, {"data": {"k": "not base64!"}}, "") == [
        ("data[k]", "illegal base64 data")
    ]


def test_proto_name_aliases() -> None:
    route = decode(networking.HTTPRoute, {"mirror_percent": 5})
    assert route.mirror_percent == 5
    rule = decode(security.JWTRule, {"jwks_uri": "https://example.com/jwks"})
    assert rule.jwks_uri == "https://example.com/jwks"
    found = _issues(security.JWTRule, {"jwks_uri": "https://a", "jwksUri": "https://b"})
    assert found
    assert "duplicate field" in found[0][1]


def test_string_constraints() -> None:
    assert _issues(extensions.WasmPlugin, {"url": ""}) == [
        ("spec.url", "should be at least 1 chars long")
    ]
    assert _issues(extensions.WasmPlugin, {"url": "http://x", "sha256": "abc"}) == [
        ("spec.sha256", "should match '(^$|^[a-f0-9]{64}$)'")
    ]


def test_list_map_keys_must_be_unique() -> None:
    found = _issues(
        extensions.WasmPlugin,
        {"url": "http://x", "vmConfig": {"env": [{"name": "a"}, {"name": "a"}]}},
    )
    assert found == [("spec.vmConfig.env[1]", "Duplicate value: name='a'")]


def test_durations_follow_the_crd_rule() -> None:
    assert _issues(networking.HTTPRoute, {"timeout": "0s"}) == [
        ("spec.timeout", "must be a valid duration greater than 1ms")
    ]
    assert _issues(networking.HTTPRoute, {"timeout": "soon"})[0][0] == "spec.timeout"
    # A cookie TTL may be zero (a session cookie): the CRD has no rule on it.
    cookie = decode(networking.HTTPCookie, {"name": "c", "ttl": "0s"})
    assert cookie.ttl == Duration(0, 0)


def test_struct_fields_keep_raw_json() -> None:
    patch = decode(networking.Patch, {"operation": "MERGE", "value": {"a": [1, {"b": None}]}})
    assert patch.value == {"a": [1, {"b": None}]}
    assert _issues(networking.Patch, {"value": [1]}) == [
        ("spec.value", 'must be of type object: "array"')
    ]


def test_int_or_string() -> None:
    port = decode(kube.ServicePort, {"port": 80, "targetPort": "http"})
    assert port.target_port == "http"
    assert decode(kube.ServicePort, {"port": 80, "targetPort": 8080}).target_port == 8080


def test_decode_raises_with_every_issue() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(networking.Destination, {"subset": 1}, "x")
    assert {i.path for i in caught.value.issues} == {"x.subset", "x.host"}


def test_keyword_fields_use_a_trailing_underscore() -> None:
    rule = decode(security.Rule, {"from": [{"source": {"principals": ["a"]}}]})
    assert rule.from_[0].source == security.Source(principals=("a",))
