"""The simulator's matching rules against hand-built protobufs (Envoy's documented behaviour)."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as route_pb2
from envoy.config.route.v3 import route_pb2 as route_config_pb2
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2

from tests.helpers.simulate_match import (
    Connection,
    active_listener_filters,
    header_matches,
    match_virtual_host,
    matching_filter_chains,
    route_matches,
    split_path,
)


def _config(*vhosts: tuple[str, list[str]], ignore_port: bool = True) -> Any:
    out = route_config_pb2.RouteConfiguration(name="r", ignore_port_in_host_matching=ignore_port)
    for name, domains in vhosts:
        out.virtual_hosts.add(name=name, domains=domains)
    return out


def _vhost_name(config: Any, host: str) -> str | None:
    found = match_virtual_host(config, host)
    return found.name if found is not None else None


VHOSTS = _config(
    ("exact", ["api.example.com", "10.0.0.1"]),
    ("suffix-long", ["*.api.example.com"]),
    ("suffix", ["*.example.com"]),
    ("dash", ["*-bar.example.org"]),
    ("prefix", ["api.*"]),
    ("any", ["*"]),
)


@pytest.mark.parametrize(
    ("host", "vhost"),
    [
        ("api.example.com", "exact"),
        ("API.Example.COM", "exact"),
        ("api.example.com:8080", "exact"),
        ("10.0.0.1:80", "exact"),
        ("v1.api.example.com", "suffix-long"),
        ("www.example.com", "suffix"),
        ("example.com", "any"),  # `*.example.com` needs at least one character before the dot
        ("foo-bar.example.org", "dash"),
        ("-bar.example.org", "any"),
        ("api.other.net", "prefix"),
        ("nothing.net", "any"),
    ],
)
def test_virtual_host_search_order(host: str, vhost: str) -> None:
    assert _vhost_name(VHOSTS, host) == vhost


def test_virtual_host_keeps_port_unless_ignored() -> None:
    config = _config(("exact", ["a.com"]), ignore_port=False)
    assert match_virtual_host(config, "a.com:80") is None
    assert _vhost_name(config, "a.com") == "exact"
    ipv6 = _config(("v6", ["[::1]"]))
    assert _vhost_name(ipv6, "[::1]:8080") == "v6"


def _chain(name: str, **match: Any) -> Any:
    chain = listener_components_pb2.FilterChain(name=name)
    chain.filter_chain_match.CopyFrom(listener_components_pb2.FilterChainMatch(**match))
    return chain


def _listener(*chains: Any) -> Any:
    out = listener_pb2.Listener(name="l")
    out.filter_chains.extend(chains)
    return out


def _names(listener: Any, conn: Connection) -> list[str]:
    return [c.name for c in matching_filter_chains(listener, conn)]


PLAIN_HTTP = Connection(port=9080, address="10.0.0.1", transport="raw_buffer", alpn="http/1.1")


def test_filter_chain_destination_port_is_decided_first() -> None:
    listener = _listener(
        _chain("port", destination_port={"value": 9080}),
        _chain("http", transport_protocol="raw_buffer", application_protocols=["http/1.1"]),
    )
    # The port match wins even though the other chain matches more criteria later.
    assert _names(listener, PLAIN_HTTP) == ["port"]
    other_port = Connection(port=1, address="10.0.0.1", transport="raw_buffer", alpn="http/1.1")
    assert _names(listener, other_port) == ["http"]


def test_filter_chain_alpn_and_transport() -> None:
    listener = _listener(
        _chain("http", transport_protocol="raw_buffer", application_protocols=["http/1.1", "h2c"]),
        _chain("tls", transport_protocol="tls"),
        _chain("tcp"),
    )
    assert _names(listener, PLAIN_HTTP) == ["http"]
    raw = Connection(port=9080, address="10.0.0.1", transport="raw_buffer")
    assert _names(listener, raw) == []  # the raw_buffer chain needs an ALPN: default chain
    tls = Connection(port=9080, address="10.0.0.1", transport="tls", sni="a.com")
    assert _names(listener, tls) == ["tls"]


def test_filter_chain_prefix_ranges_and_server_names() -> None:
    listener = _listener(
        _chain("wide", prefix_ranges=[{"address_prefix": "10.0.0.0", "prefix_len": {"value": 8}}]),
        _chain(
            "narrow", prefix_ranges=[{"address_prefix": "10.0.0.1", "prefix_len": {"value": 32}}]
        ),
        _chain(
            "other", prefix_ranges=[{"address_prefix": "192.168.0.0", "prefix_len": {"value": 16}}]
        ),
    )
    assert _names(listener, PLAIN_HTTP) == ["narrow"]
    assert _names(listener, Connection(1, "10.9.9.9", "raw_buffer")) == ["wide"]
    assert _names(listener, Connection(1, "172.16.0.1", "raw_buffer")) == []
    sni = _listener(
        _chain("exact", server_names=["www.a.com"]),
        _chain("wild", server_names=["*.a.com"]),
        _chain("none"),
    )
    assert _names(sni, Connection(1, "1.1.1.1", "tls", sni="www.a.com")) == ["exact"]
    assert _names(sni, Connection(1, "1.1.1.1", "tls", sni="api.a.com")) == ["wild"]
    assert _names(sni, Connection(1, "1.1.1.1", "tls", sni="b.com")) == ["none"]


def test_listener_filter_disabled_by_port_range() -> None:
    listener = listener_pb2.Listener(name="l")
    f = listener.listener_filters.add(name="envoy.filters.listener.http_inspector")
    f.typed_config.Pack(http_inspector_pb2.HttpInspector())
    f.filter_disabled.destination_port_range.start = 3306
    f.filter_disabled.destination_port_range.end = 3307
    assert active_listener_filters(listener, 9080) == {"envoy.filters.listener.http_inspector"}
    assert active_listener_filters(listener, 3306) == set()


def _header(name: str, **kwargs: Any) -> Any:
    return route_pb2.HeaderMatcher(name=name, **kwargs)


@pytest.mark.parametrize(
    ("matcher", "headers", "expected"),
    [
        (_header("x", present_match=True), {"x": ""}, True),
        (_header("x", present_match=True), {}, False),
        (_header("x", present_match=True, invert_match=True), {}, True),
        (_header("x"), {"x": "1"}, True),  # no specifier: presence
        (_header("x", string_match={"exact": "a"}), {"x": "a"}, True),
        (_header("X", string_match={"exact": "a"}), {"x": "a"}, True),  # names are lower-case
        (_header("x", string_match={"exact": "a"}), {"x": "A"}, False),
        (_header("x", string_match={"exact": "a", "ignore_case": True}), {"x": "A"}, True),
        (_header("x", string_match={"prefix": "ab"}), {"x": "abc"}, True),
        (_header("x", string_match={"suffix": "bc"}), {"x": "abc"}, True),
        (_header("x", string_match={"contains": "b"}), {"x": "abc"}, True),
        (_header("x", string_match={"safe_regex": {"regex": "a.c"}}), {"x": "abc"}, True),
        (_header("x", string_match={"safe_regex": {"regex": "a"}}), {"x": "abc"}, False),
        (_header("x", string_match={"exact": "a"}, invert_match=True), {}, False),
        (
            _header(
                "x",
                string_match={"exact": "a"},
                invert_match=True,
                treat_missing_header_as_empty=True,
            ),
            {},
            True,
        ),
        (_header("x", range_match={"start": 1, "end": 10}), {"x": "9"}, True),
        (_header("x", range_match={"start": 1, "end": 10}), {"x": "10"}, False),
    ],
)
def test_header_matcher(matcher: Any, headers: dict[str, str], expected: bool) -> None:
    assert header_matches(matcher, headers) is expected


def _route(**match: Any) -> Any:
    return route_pb2.Route(name="r", match=route_pb2.RouteMatch(**match))


@pytest.mark.parametrize(
    ("route", "path", "expected"),
    [
        (_route(prefix="/api"), "/api/v1", True),
        (_route(prefix="/api"), "/API/v1", False),
        (_route(prefix="/api", case_sensitive={"value": False}), "/API/v1", True),
        (_route(path="/login"), "/login?next=/", True),
        (_route(path="/login"), "/login/x", False),
        (_route(safe_regex={"regex": "/reviews/[0-9]+"}), "/reviews/12", True),
        (_route(safe_regex={"regex": "/reviews/[0-9]+"}), "/reviews/12/x", False),
        (_route(path_separated_prefix="/api"), "/api", True),
        (_route(path_separated_prefix="/api"), "/api/x", True),
        (_route(path_separated_prefix="/api"), "/apix", False),
        (
            _route(prefix="/", query_parameters=[{"name": "u", "string_match": {"exact": "1"}}]),
            "/?u=1",
            True,
        ),
        (
            _route(prefix="/", query_parameters=[{"name": "u", "string_match": {"exact": "1"}}]),
            "/?u=2",
            False,
        ),
        (
            _route(prefix="/", query_parameters=[{"name": "u", "present_match": True}]),
            "/?a&u",
            True,
        ),
        (_route(prefix="/", query_parameters=[{"name": "u", "present_match": True}]), "/", False),
        (_route(prefix="/", grpc={}), "/", False),
    ],
)
def test_route_match(route: Any, path: str, expected: bool) -> None:
    assert route_matches(route, {":path": path}) is expected


def test_split_path() -> None:
    assert split_path("/a/b?x=1&y&x=2#frag") == ("/a/b", {"x": "1", "y": ""})
