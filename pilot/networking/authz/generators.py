"""One generator per AuthorizationPolicy attribute: a value → an RBAC permission or principal
(Istio's pilot/pkg/security/authz/model/generator.go).

A generator raises `Unsupported` when the attribute cannot be expressed where it is used: an
HTTP-only attribute on a TCP filter chain, or an attribute on the wrong side (a principal
attribute asked for a permission). The caller decides what that means for the rule.

Request principals, audiences, presenters and claims match the JWT payload that
`envoy.filters.http.jwt_authn` writes to dynamic metadata under the key `payload`
(its `payload_in_metadata`), as Istio does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envoy.config.rbac.v3 import rbac_pb2
from envoy.type.matcher.v3 import string_pb2, value_pb2

from pilot.networking import naming
from pilot.networking.authz import matchers as m
from pilot.networking.protos import to_any

# Where Envoy's jwt_authn filter leaves the verified token's payload (RequestAuthentication
# configures it with `payload_in_metadata` = this key).
JWT_FILTER = naming.JWT_AUTHN_FILTER
JWT_PAYLOAD_KEY = naming.JWT_PAYLOAD_METADATA_KEY
SPIFFE_PREFIX = "spiffe://"
# The filter-state key of the peer identity when the principal is not taken from the TLS peer
# certificate (Istio's waypoints); pyistio always uses the certificate.
PEER_PRINCIPAL_FILTER_STATE = "io.istio.peer_principal"

Permission = rbac_pb2.Permission
Principal = rbac_pb2.Principal


class Unsupported(Exception):
    """The attribute cannot be generated here (HTTP-only on TCP, or the wrong side)."""


# ---- helpers -----------------------------------------------------------------------------


def principal_and(ids: Sequence[Any]) -> Any:
    return Principal(and_ids=rbac_pb2.Principal.Set(ids=list(ids)))


def principal_or(ids: Sequence[Any]) -> Any:
    return Principal(or_ids=rbac_pb2.Principal.Set(ids=list(ids)))


def principal_not(p: Any) -> Any:
    return Principal(not_id=p)


def permission_and(rules: Sequence[Any]) -> Any:
    return Permission(and_rules=rbac_pb2.Permission.Set(rules=list(rules)))


def permission_or(rules: Sequence[Any]) -> Any:
    return Permission(or_rules=rbac_pb2.Permission.Set(rules=list(rules)))


def permission_not(p: Any) -> Any:
    return Permission(not_rule=p)


def authenticated(name: string_pb2.StringMatcher, use_authenticated: bool) -> Any:
    """The peer identity: the URI SAN of the client certificate (mTLS), or filter state."""
    if use_authenticated:
        return Principal(authenticated=rbac_pb2.Principal.Authenticated(principal_name=name))
    out = Principal()
    out.filter_state.key = PEER_PRINCIPAL_FILTER_STATE
    out.filter_state.string_match.CopyFrom(name)
    return out


def _jwt_claim(claim: str, match: string_pb2.StringMatcher) -> Any:
    return Principal(
        metadata=m.metadata_value(JWT_FILTER, [JWT_PAYLOAD_KEY, claim], m.value_string(match))
    )


def _jwt_claims(claims: Sequence[str], value: value_pb2.ValueMatcher) -> Any:
    return Principal(metadata=m.metadata_list_value(JWT_FILTER, [JWT_PAYLOAD_KEY, *claims], value))


def _http_only(key: str, for_tcp: bool) -> None:
    if for_tcp:
        raise Unsupported(f"{key!r} is HTTP only")


def _bracketed(text: str) -> str:
    if not (text.startswith("[") and text.endswith("]")):
        raise Unsupported(f"expecting format [<NAME>], but found {text}")
    return text[1:-1]


def nested_bracketed(text: str) -> list[str]:
    """`[a][b]` → [a, b]; a single `[a.b]` (or anything not a clean chain) → one name."""
    names: list[str] = []
    begin = 0
    while begin < len(text):
        end = -1
        if text[begin] == "[":
            for i in range(begin + 1, len(text)):
                if text[i] == "[":
                    break
                if text[i] == "]":
                    end = i
                    break
        if end == -1:
            return [_bracketed(text)]
        names.append(text[begin + 1 : end])
        begin = end + 1
    return names


# ---- simple generators (one value at a time) -------------------------------------------


class Generator:
    """Generates one value; `extended` generators take all values at once."""

    extended = False

    def permission(self, key: str, value: str, for_tcp: bool) -> Any:
        raise Unsupported("unimplemented")

    def principal(self, key: str, value: str, for_tcp: bool, use_authenticated: bool) -> Any:
        raise Unsupported("unimplemented")

    def extended_permission(self, key: str, values: Sequence[str], for_tcp: bool) -> Any:
        raise Unsupported("unimplemented")

    def extended_principal(self, key: str, values: Sequence[str], for_tcp: bool) -> Any:
        raise Unsupported("unimplemented")


def _cidr(value: str) -> Any:
    try:
        return m.cidr_range(value)
    except ValueError as e:
        raise Unsupported(str(e)) from None


class DestIP(Generator):
    def permission(self, key: str, value: str, for_tcp: bool) -> Any:
        return Permission(destination_ip=_cidr(value))


class DestPort(Generator):
    def permission(self, key: str, value: str, for_tcp: bool) -> Any:
        if not value.isdigit() or int(value) > 65535:
            raise Unsupported(f"invalid port {value}")
        return Permission(destination_port=int(value))


class ConnSNI(Generator):
    def permission(self, key: str, value: str, for_tcp: bool) -> Any:
        return Permission(requested_server_name=m.string_matcher(value))


class SrcIP(Generator):
    def principal(self, key: str, value: str, for_tcp: bool, use_authenticated: bool) -> Any:
        return Principal(direct_remote_ip=_cidr(value))


class RemoteIP(Generator):
    def principal(self, key: str, value: str, for_tcp: bool, use_authenticated: bool) -> Any:
        return Principal(remote_ip=_cidr(value))


class SrcNamespace(Generator):
    def principal(self, key: str, value: str, for_tcp: bool, use_authenticated: bool) -> Any:
        namespace = ".*".join(m.quote_meta(part) for part in value.split("*"))
        return authenticated(m.regex(f".*/ns/{namespace}/.*"), use_authenticated)


class SrcServiceAccount(Generator):
    def __init__(self, policy_namespace: str) -> None:
        self.policy_namespace = policy_namespace

    def principal(self, key: str, value: str, for_tcp: bool, use_authenticated: bool) -> Any:
        namespace, sep, account = value.partition("/")
        if not sep:
            namespace, account = self.policy_namespace, value
        pattern = f"spiffe://.+/ns/{m.quote_meta(namespace)}/(.+/|)sa/{m.quote_meta(account)}(/.+)?"
        return authenticated(m.regex(pattern), use_authenticated)


class SrcTrustDomain(Generator):
    def principal(self, key: str, value: str, for_tcp: bool, use_authenticated: bool) -> Any:
        if value == "*":
            match = m.prefix(SPIFFE_PREFIX)
        elif "*" not in value:
            match = m.prefix(f"{SPIFFE_PREFIX}{value}/")
        else:
            head, tail = value.split("*", 1)
            escaped = m.quote_meta(head) + "[^/]*" + m.quote_meta(tail)
            match = m.regex(f"{SPIFFE_PREFIX}{escaped}/.*")
        return authenticated(match, use_authenticated)


class SrcPrincipal(Generator):
    def principal(self, key: str, value: str, for_tcp: bool, use_authenticated: bool) -> Any:
        return authenticated(m.string_matcher(value, SPIFFE_PREFIX), use_authenticated)


class RequestHeader(Generator):
    def principal(self, key: str, value: str, for_tcp: bool, use_authenticated: bool) -> Any:
        _http_only(key, for_tcp)
        name = _bracketed(key.removeprefix("request.headers"))
        return Principal(header=m.header_matcher(name, value))


class Host(Generator):
    def permission(self, key: str, value: str, for_tcp: bool) -> Any:
        _http_only(key, for_tcp)
        return Permission(header=m.host_matcher(":authority", value))


class Method(Generator):
    def permission(self, key: str, value: str, for_tcp: bool) -> Any:
        _http_only(key, for_tcp)
        return Permission(header=m.header_matcher(":method", value))


class Path(Generator):
    def permission(self, key: str, value: str, for_tcp: bool) -> Any:
        _http_only(key, for_tcp)
        if m.contains_path_template(value):
            out = Permission()
            out.uri_template.name = "uri-template"
            out.uri_template.typed_config.CopyFrom(to_any(m.path_template(value)))
            return out
        return Permission(url_path=m.path_matcher(value))


# ---- extended generators (all values at once) -------------------------------------------


_MATCH_ANY = m.regex(".+")


class RequestPrincipal(Generator):
    """`iss/sub`: the issuer (up to the last `/`) and subject claims of the request's JWT."""

    extended = True

    def extended_principal(self, key: str, values: Sequence[str], for_tcp: bool) -> Any:
        _http_only(key, for_tcp)
        alternatives = [self._one(value) for value in values]
        if len(alternatives) == 1:
            return alternatives[0]
        return principal_or(alternatives)

    @staticmethod
    def _one(value: str) -> Any:
        iss, found, sub = value.rpartition("/")
        if not found:
            iss, sub = value, ""
        if value == "*":
            match_iss, match_sub = _MATCH_ANY, _MATCH_ANY
        elif value.startswith("*"):
            if found:
                match_iss = _MATCH_ANY if iss == "*" else m.suffix(iss[1:])
                match_sub = m.exact(sub)
            else:
                match_iss, match_sub = _MATCH_ANY, m.suffix(value[1:])
        elif value.endswith("*"):
            if found:
                match_iss = m.exact(iss)
                match_sub = _MATCH_ANY if sub == "*" else m.prefix(sub[:-1])
            else:
                match_iss, match_sub = m.prefix(value[:-1]), _MATCH_ANY
        else:
            match_iss, match_sub = m.exact(iss), m.exact(sub)
        return principal_and([_jwt_claim("iss", match_iss), _jwt_claim("sub", match_sub)])


class RequestClaims(Generator):
    """`request.auth.audiences` (aud), `request.auth.presenter` (azp) and
    `request.auth.claims[a][b]` (nested claims): a string claim or a list of strings."""

    extended = True

    def __init__(self, claims: Sequence[str] = ()) -> None:
        self.claims = tuple(claims)

    def extended_principal(self, key: str, values: Sequence[str], for_tcp: bool) -> Any:
        _http_only(key, for_tcp)
        claims = self.claims or tuple(nested_bracketed(key.removeprefix("request.auth.claims")))
        return _jwt_claims(claims, m.string_or(values))


class EnvoyFilter(Generator):
    """`experimental.envoy.filters.a.b[c]`: dynamic metadata `c` of filter `envoy.filters.a.b`;
    a value `[v]` matches an element of a list."""

    extended = True

    def extended_permission(self, key: str, values: Sequence[str], for_tcp: bool) -> Any:
        body = key.removeprefix("experimental.").removesuffix("]")
        parts = body.split("[", 1)
        if len(parts) != 2:
            raise Unsupported(f"invalid key: {key}")
        options = []
        for value in values:
            if value.startswith("[") and value.endswith("]"):
                inner = m.value_string(m.string_matcher(value.strip("[]")))
                options.append(
                    value_pb2.ValueMatcher(list_match=value_pb2.ListMatcher(one_of=inner))
                )
            else:
                options.append(m.value_string(m.string_matcher(value)))
        return Permission(metadata=m.metadata_value(parts[0], [parts[1]], m.or_value(options)))
