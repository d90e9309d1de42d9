"""Envoy's matching rules for the test simulator: now product code in `pilot.simulate.match`."""

from pilot.simulate.match import (
    Connection,
    active_listener_filters,
    header_matches,
    match_route,
    match_virtual_host,
    matching_filter_chains,
    regex_full_match,
    route_matches,
    split_path,
    string_matches,
)

__all__ = [
    "Connection",
    "active_listener_filters",
    "header_matches",
    "match_route",
    "match_virtual_host",
    "matching_filter_chains",
    "regex_full_match",
    "route_matches",
    "split_path",
    "string_matches",
]
