"""Envoy matchers for AuthorizationPolicy values (Istio's pilot/pkg/security/authz/matcher).

Policy values use `*` as a wildcard at one end: `*` alone means "any non-empty value"
(regex `.+`, or a presence match for headers), `x*` a prefix, `*x` a suffix, anything else an
exact match. Paths may also be URI templates (`{*}` one segment, `{**}` any number of
segments), matched by Envoy's `envoy.path.match.uri_template` extension.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from envoy.config.core.v3 import address_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2
from envoy.type.matcher.v3 import metadata_pb2, path_pb2, regex_pb2, string_pb2, value_pb2

MATCH_ONE_TEMPLATE = "{*}"
MATCH_ANY_TEMPLATE = "{**}"

# Go's regexp.QuoteMeta escapes exactly these characters (Python's re.escape escapes more,
# which would change the generated regexes).
_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def quote_meta(value: str) -> str:
    """Escape regex metacharacters as Go's regexp.QuoteMeta does."""
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in value)


# ---- string matchers ---------------------------------------------------------------------


def exact(value: str, ignore_case: bool = False) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(exact=value, ignore_case=ignore_case)


def prefix(value: str, ignore_case: bool = False) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(prefix=value, ignore_case=ignore_case)


def suffix(value: str, ignore_case: bool = False) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(suffix=value, ignore_case=ignore_case)


def regex(pattern: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern))


def string_matcher(value: str, prepend: str = "") -> string_pb2.StringMatcher:
    """A policy value as a StringMatcher, with `prepend` (e.g. `spiffe://`) in front of what it
    matches; `*` alone becomes the regex `.+` (Envoy rejects an empty prefix or suffix)."""
    if value == "*":
        return regex(".+")
    if value.startswith("*"):
        if not prepend:
            return suffix(value[1:])
        return regex(prepend + ".*" + quote_meta(value[1:]))
    if value.endswith("*"):
        return prefix(prepend + value[:-1])
    return exact(prepend + value)


# ---- header, host and path matchers ------------------------------------------------------


def _header(name: str, value: str, ignore_case: bool) -> route_components_pb2.HeaderMatcher:
    if value == "*":
        return route_components_pb2.HeaderMatcher(name=name, present_match=True)
    if value.startswith("*"):
        match = suffix(value[1:], ignore_case)
    elif value.endswith("*"):
        match = prefix(value[:-1], ignore_case)
    else:
        match = exact(value, ignore_case)
    return route_components_pb2.HeaderMatcher(name=name, string_match=match)


def header_matcher(name: str, value: str) -> route_components_pb2.HeaderMatcher:
    return _header(name, value, ignore_case=False)


def host_matcher(name: str, value: str) -> route_components_pb2.HeaderMatcher:
    """Hosts compare case-insensitively."""
    return _header(name, value, ignore_case=True)


def path_matcher(value: str) -> path_pb2.PathMatcher:
    return path_pb2.PathMatcher(path=string_matcher(value))


def contains_path_template(value: str) -> bool:
    return MATCH_ONE_TEMPLATE in value or MATCH_ANY_TEMPLATE in value


def path_template(value: str) -> uri_template_match_pb2.UriTemplateMatchConfig:
    """`/a/{*}/b/{**}` → Envoy's template syntax `/a/*/b/**` (bare `*`/`**` are kept)."""
    template = value.replace(MATCH_ANY_TEMPLATE, "**").replace(MATCH_ONE_TEMPLATE, "*")
    return uri_template_match_pb2.UriTemplateMatchConfig(path_template=template)


# ---- value and metadata matchers -----------------------------------------------------------


def value_string(match: string_pb2.StringMatcher) -> value_pb2.ValueMatcher:
    return value_pb2.ValueMatcher(string_match=match)


def or_value(matchers: Sequence[value_pb2.ValueMatcher]) -> value_pb2.ValueMatcher:
    """OR of value matchers; a single one stands alone."""
    if len(matchers) == 1:
        return matchers[0]
    return value_pb2.ValueMatcher(or_match=value_pb2.OrMatcher(value_matchers=list(matchers)))


def string_or(values: Sequence[str]) -> value_pb2.ValueMatcher:
    return or_value([value_string(string_matcher(v)) for v in values])


def _path(keys: Sequence[str]) -> list[metadata_pb2.MetadataMatcher.PathSegment]:
    return [metadata_pb2.MetadataMatcher.PathSegment(key=k) for k in keys]


def metadata_value(
    filter_name: str, keys: Sequence[str], value: value_pb2.ValueMatcher
) -> metadata_pb2.MetadataMatcher:
    return metadata_pb2.MetadataMatcher(filter=filter_name, path=_path(keys), value=value)


def metadata_list_value(
    filter_name: str, keys: Sequence[str], value: value_pb2.ValueMatcher
) -> metadata_pb2.MetadataMatcher:
    """Match a metadata value that is either a list with one element matching `value`, or
    the value itself matching (a JWT claim can be a string or a list of strings)."""
    one_of = value_pb2.ValueMatcher(list_match=value_pb2.ListMatcher(one_of=value))
    either = value_pb2.ValueMatcher(or_match=value_pb2.OrMatcher(value_matchers=[one_of, value]))
    return metadata_value(filter_name, keys, either)


# ---- addresses ---------------------------------------------------------------------------


def cidr_range(value: str) -> address_pb2.CidrRange:
    """An IP or CIDR as a CidrRange; the address is kept as written (Go's netip.ParsePrefix
    does not mask host bits). Raises ValueError for anything else."""
    if not value:
        raise ValueError("empty address")
    if "/" in value:
        iface = ipaddress.ip_interface(value)
        address, bits = iface.ip, iface.network.prefixlen
        if not value.split("/", 1)[1].isdigit():
            raise ValueError(f"invalid prefix length in {value!r}")
    else:
        address = ipaddress.ip_address(value)
        bits = address.max_prefixlen
    out = address_pb2.CidrRange(address_prefix=str(address))
    out.prefix_len.value = bits
    return out
