"""VirtualService HTTPMatchRequest → Envoy RouteMatch (Istio's TranslateRouteMatch).

A match with no uri matches every path (prefix `/`); header, method (`:method`), authority
(`:authority`), scheme (`:scheme`) and query parameters become matchers; a regex of exactly `*`
means "present" (Istio treats it as a metacharacter, not RE2); `withoutHeaders` inverts.
A header named `@request.auth.claims.a.b` or `@request.auth.claims[a][b]` (gateways only) is
a JWT claim: a dynamic metadata matcher on the verified token's payload (jwt_authn), matching
a string claim or any element of a list claim.
"""

from __future__ import annotations

from typing import Any

from envoy.config.route.v3 import route_components_pb2 as route_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2, value_pb2
from google.protobuf import wrappers_pb2

from pilot.networking import naming
from pilot.networking.authz.matchers import metadata_list_value

_JWT_CLAIM_PREFIX = "@request.auth.claims"


def string_matcher(match: Any, ignore_case: bool = False) -> Any | None:
    """StringMatch (exact/prefix/regex) → envoy.type.matcher.v3.StringMatcher."""
    if match is None:
        return None
    out = string_pb2.StringMatcher(ignore_case=ignore_case)
    if match.exact is not None:
        out.exact = match.exact
    elif match.prefix is not None:
        out.prefix = match.prefix
    elif match.regex is not None:
        out.ClearField("ignore_case")
        out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=match.regex))
    else:
        return None
    return out


def _is_present_match(match: Any) -> bool:
    if match is None:
        return True
    if match.exact is None and match.prefix is None and match.regex is None:
        return True
    return bool(match.regex == "*")


def _fill(out: Any, match: Any) -> Any:
    """Set present_match or string_match on a header or query parameter matcher."""
    if _is_present_match(match):
        out.present_match = True
        return out
    sm = string_matcher(match)
    if sm is not None:
        out.string_match.CopyFrom(sm)
    return out


def header_matcher(name: str, match: Any) -> Any:
    return _fill(route_pb2.HeaderMatcher(name=name), match)


def query_matcher(name: str, match: Any) -> Any:
    return _fill(route_pb2.QueryParameterMatcher(name=name), match)


def routing_claims(name: str) -> list[str] | None:
    """Istio's ToRoutingClaim: the claim path of a JWT claim header name, else None."""
    if not name.lower().startswith(_JWT_CLAIM_PREFIX):
        return None
    rest = name[len(_JWT_CLAIM_PREFIX) :]
    if rest.startswith(".") and len(rest) > 1:
        return rest[1:].split(".")
    if rest.startswith("[") and rest.endswith("]") and len(rest) > 2:
        return rest[1:-1].split("][")
    return None


def jwt_claim_matcher(claims: list[str], match: Any) -> Any:
    sm = string_matcher(match)
    value = (
        value_pb2.ValueMatcher(string_match=sm)
        if sm is not None
        else value_pb2.ValueMatcher(present_match=True)
    )
    keys = [naming.JWT_PAYLOAD_METADATA_KEY, *claims]
    return metadata_list_value(naming.JWT_AUTHN_FILTER, keys, value)


def translate_route_match(match: Any | None) -> Any:
    out = route_pb2.RouteMatch(prefix="/")
    if match is None:
        return out
    headers = []
    for name, value in match.headers.items():
        claims = routing_claims(name)
        if claims is not None:
            out.dynamic_metadata.append(jwt_claim_matcher(claims, value))
            continue
        headers.append(header_matcher(name, value))
    for name, value in match.without_headers.items():
        claims = routing_claims(name)
        if claims is not None:
            inverted = jwt_claim_matcher(claims, value)
            inverted.invert = True
            out.dynamic_metadata.append(inverted)
            continue
        h = header_matcher(name, value)
        h.invert_match = True
        if not _is_present_match(value):
            h.treat_missing_header_as_empty = True
        headers.append(h)
    headers.sort(key=lambda h: h.name)
    uri = match.uri
    if uri is not None:
        if uri.exact is not None:
            out.path = uri.exact
        elif uri.prefix is not None:
            out.prefix = uri.prefix
        elif uri.regex is not None:
            out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=uri.regex))
    out.case_sensitive.CopyFrom(wrappers_pb2.BoolValue(value=not match.ignore_uri_case))
    if match.method is not None:
        headers.append(header_matcher(":method", match.method))
    if match.authority is not None:
        headers.append(header_matcher(":authority", match.authority))
    if match.scheme is not None:
        headers.append(header_matcher(":scheme", match.scheme))
    out.headers.extend(headers)
    for name in sorted(match.query_params):
        out.query_parameters.append(query_matcher(name, match.query_params[name]))
    return out


def is_catch_all(match: Any) -> bool:
    """No header/query/metadata conditions and a path of `/` or `.*`."""
    which = match.WhichOneof("path_specifier")
    catch_all = (
        (which == "prefix" and match.prefix == "/")
        or (which == "path_separated_prefix" and match.path_separated_prefix == "/")
        or (which == "safe_regex" and match.safe_regex.regex == ".*")
    )
    return (
        catch_all
        and not match.headers
        and not match.query_parameters
        and not match.dynamic_metadata
    )
