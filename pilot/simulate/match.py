"""Envoy's matching rules, as pure functions over decoded protobufs (`pilot.simulate`).

- listener filters and their `filter_disabled` predicates;
- the FilterChainMatch sieve: destination port, destination IP ranges, server names (SNI),
  transport protocol, application protocols (ALPN) — at each step the chains whose criterion
  is set and matches best win; when none matches, the chains without that criterion go on;
- virtual host selection: exact domain, then `*.suffix` wildcards, then `prefix.*` wildcards
  (longest first, a wildcard matches at least one character), then `*`; case-insensitive;
  the port is ignored when `ignore_port_in_host_matching`;
- route matching: path (prefix, exact, RE2 full match, path-separated prefix; case
  sensitivity), headers (exact/prefix/suffix/contains/regex/range/present, invert, missing as
  empty), query parameters, gRPC.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import re2

_LISTENER_FILTER_TYPES = {
    "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector": (
        "envoy.filters.listener.http_inspector"
    ),
    "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector": (
        "envoy.filters.listener.tls_inspector"
    ),
    "envoy.extensions.filters.listener.original_dst.v3.OriginalDst": (
        "envoy.filters.listener.original_dst"
    ),
}


@dataclass(frozen=True)
class Connection:
    """What Envoy knows of a new connection once the listener filters ran."""

    port: int
    address: str
    transport: str  # "tls" or "raw_buffer"
    sni: str = ""
    alpn: str = ""


# ---- listener filters ---------------------------------------------------------------------


def _predicate(pred: Any, port: int) -> bool:
    """ListenerFilterChainMatchPredicate (true = the filter is disabled)."""
    which = pred.WhichOneof("rule")
    if which == "any_match":
        return bool(pred.any_match)
    if which == "not_match":
        return not _predicate(pred.not_match, port)
    if which == "or_match":
        return any(_predicate(p, port) for p in pred.or_match.rules)
    if which == "and_match":
        return all(_predicate(p, port) for p in pred.and_match.rules)
    if which == "destination_port_range":
        r = pred.destination_port_range
        return bool(r.start <= port < r.end)
    return False


def active_listener_filters(listener: Any, port: int) -> set[str]:
    """Names of the listener filters that run for a connection to `port`."""
    out: set[str] = set()
    for f in listener.listener_filters:
        if f.HasField("filter_disabled") and _predicate(f.filter_disabled, port):
            continue
        type_name = f.typed_config.type_url.rsplit("/", 1)[-1]
        out.add(_LISTENER_FILTER_TYPES.get(type_name, f.name))
    return out


# ---- filter chains --------------------------------------------------------------------------


def _sieve(
    chains: list[Any], is_set: Callable[[Any], bool], rank: Callable[[Any], int]
) -> list[Any]:
    """One step of Envoy's FilterChainMatch selection (rank 0 = no match)."""
    if not any(is_set(c.filter_chain_match) for c in chains):
        return chains
    ranked = [(rank(c.filter_chain_match), c) for c in chains if is_set(c.filter_chain_match)]
    best = max((r for r, _ in ranked), default=0)
    if best > 0:
        return [c for r, c in ranked if r == best]
    return [c for c in chains if not is_set(c.filter_chain_match)]


def _prefix_rank(ranges: Sequence[Any], address: str) -> int:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return 0
    best = 0
    for r in ranges:
        length = r.prefix_len.value if r.HasField("prefix_len") else 0
        try:
            net = ipaddress.ip_network(f"{r.address_prefix}/{length}", strict=False)
        except ValueError:
            continue
        if ip.version == net.version and ip in net:
            best = max(best, length + 1)  # +1: a /0 match still beats no match
    return best


def _server_name_rank(names: Sequence[str], sni: str) -> int:
    best = 0
    sni = sni.lower()
    for name in names:
        name = name.lower()
        if name == sni:
            return 1 << 30
        if name.startswith("*.") and sni.endswith(name[1:]) and len(sni) > len(name) - 1:
            best = max(best, len(name))
    return best


def matching_filter_chains(listener: Any, conn: Connection) -> list[Any]:
    chains = list(listener.filter_chains)
    chains = _sieve(
        chains,
        lambda m: m.HasField("destination_port"),
        lambda m: int(m.destination_port.value == conn.port),
    )
    chains = _sieve(
        chains,
        lambda m: len(m.prefix_ranges) > 0,
        lambda m: _prefix_rank(m.prefix_ranges, conn.address),
    )
    chains = _sieve(
        chains,
        lambda m: len(m.server_names) > 0,
        lambda m: _server_name_rank(m.server_names, conn.sni),
    )
    chains = _sieve(
        chains,
        lambda m: bool(m.transport_protocol),
        lambda m: int(m.transport_protocol == conn.transport),
    )
    chains = _sieve(
        chains,
        lambda m: len(m.application_protocols) > 0,
        lambda m: int(bool(conn.alpn) and conn.alpn in m.application_protocols),
    )
    return chains


# ---- virtual hosts --------------------------------------------------------------------------


def _strip_port(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end >= 0 else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host


def _longest_wildcard(vhosts: Sequence[Any], host: str, suffix: bool) -> Any | None:
    """The virtual host with the longest `*.suffix` (or `prefix.*`) domain matching `host`;
    the wildcard stands for at least one character."""
    best: tuple[int, Any] | None = None
    for vhost in vhosts:
        for d in (d.lower() for d in vhost.domains):
            if d == "*" or len(host) < len(d):
                continue
            if suffix:
                hit = d.startswith("*") and host.endswith(d[1:])
            else:
                hit = d.endswith("*") and host.startswith(d[:-1])
            if hit and (best is None or len(d) > best[0]):
                best = (len(d), vhost)
    return best[1] if best is not None else None


def match_virtual_host(config: Any, host: str) -> Any | None:
    host = host.lower()
    if config.ignore_port_in_host_matching:
        host = _strip_port(host)
    vhosts = list(config.virtual_hosts)
    for vhost in vhosts:
        if host in (d.lower() for d in vhost.domains):
            return vhost
    found = _longest_wildcard(vhosts, host, suffix=True)
    if found is None:
        found = _longest_wildcard(vhosts, host, suffix=False)
    if found is not None:
        return found
    for vhost in vhosts:
        if "*" in vhost.domains:
            return vhost
    return None


# ---- routes -----------------------------------------------------------------------------


def regex_full_match(pattern: str, value: str) -> bool:
    return re2.fullmatch(pattern, value) is not None


def string_matches(matcher: Any, value: str) -> bool:
    """envoy.type.matcher.v3.StringMatcher."""
    which = matcher.WhichOneof("match_pattern")
    if which == "safe_regex":
        return regex_full_match(matcher.safe_regex.regex, value)
    expected = getattr(matcher, which) if which else ""
    if matcher.ignore_case:
        value, expected = value.lower(), expected.lower()
    if which == "exact":
        return value == expected
    if which == "prefix":
        return value.startswith(expected)
    if which == "suffix":
        return value.endswith(expected)
    if which == "contains":
        return expected in value
    return False


def header_matches(matcher: Any, headers: Mapping[str, str]) -> bool:
    """envoy.config.route.v3.HeaderMatcher, with Envoy's missing-header rules."""
    value = headers.get(matcher.name.lower())
    which = matcher.WhichOneof("header_match_specifier")
    if which in (None, "present_match"):
        wanted = matcher.present_match if which else True
        return bool(((value is not None) == wanted) != matcher.invert_match)
    if value is None:
        if not matcher.treat_missing_header_as_empty:
            return False
        value = ""
    if which == "string_match":
        ok = string_matches(matcher.string_match, value)
    elif which == "exact_match":
        ok = value == matcher.exact_match
    elif which == "prefix_match":
        ok = value.startswith(matcher.prefix_match)
    elif which == "suffix_match":
        ok = value.endswith(matcher.suffix_match)
    elif which == "contains_match":
        ok = matcher.contains_match in value
    elif which == "safe_regex_match":
        ok = regex_full_match(matcher.safe_regex_match.regex, value)
    elif which == "range_match":
        try:
            number = int(value)
        except ValueError:
            ok = False
        else:
            ok = matcher.range_match.start <= number < matcher.range_match.end
    else:
        ok = False
    return bool(ok != matcher.invert_match)


def split_path(path: str) -> tuple[str, dict[str, str]]:
    """(path without query and fragment, first value of each query parameter)."""
    path = path.split("#", 1)[0]
    bare, _, query = path.partition("?")
    params: dict[str, str] = {}
    for part in query.split("&") if query else ():
        name, _, value = part.partition("=")
        params.setdefault(name, value)
    return bare, params


def _path_matches(match: Any, path: str) -> bool:
    which = match.WhichOneof("path_specifier")
    sensitive = match.case_sensitive.value if match.HasField("case_sensitive") else True
    if which == "safe_regex":
        return regex_full_match(match.safe_regex.regex, path)
    candidate = path if sensitive else path.lower()

    def fold(value: str) -> str:
        return value if sensitive else value.lower()

    if which == "prefix":
        return candidate.startswith(fold(match.prefix))
    if which == "path":
        return candidate == fold(match.path)
    if which == "path_separated_prefix":
        prefix = fold(match.path_separated_prefix)
        return candidate == prefix or candidate.startswith(prefix.rstrip("/") + "/")
    return False


def route_matches(route: Any, headers: Mapping[str, str]) -> bool:
    match = route.match
    path, params = split_path(headers.get(":path", "/"))
    if not _path_matches(match, path):
        return False
    if not all(header_matches(h, headers) for h in match.headers):
        return False
    # Simulated calls carry no dynamic metadata (e.g. no verified JWT payload): a metadata
    # matcher never matches, an inverted one always does.
    if not all(m.invert for m in match.dynamic_metadata):
        return False
    for q in match.query_parameters:
        value = params.get(q.name)
        if value is None:
            return False
        which = q.WhichOneof("query_parameter_match_specifier")
        if which == "string_match" and not string_matches(q.string_match, value):
            return False
        if which == "present_match" and not q.present_match:
            return False
    if match.HasField("grpc"):
        return headers.get("content-type", "").startswith("application/grpc")
    return True


def match_route(vhost: Any, headers: Mapping[str, str]) -> Any | None:
    for route in vhost.routes:
        if route_matches(route, headers):
            return route
    return None
