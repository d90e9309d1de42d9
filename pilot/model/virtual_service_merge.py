"""VirtualService short-name resolution and delegate merging, as Istio's VirtualService
controller does before any proxy sees them (virtualservice.go, virtualservice_controller.go).

Every VirtualService has its destination, mirror and match-gateway names resolved in its own
namespace (`reviews` → `reviews.<ns>.svc.<suffix>`, `gw` → `<ns>/gw`). A root VirtualService
(one whose http routes name a `delegate`) has each delegating route replaced by the delegate's
routes, each merged with the root route: a delegate match must be a subset of some root match
(else the delegate route is dropped with a warning), and what the delegate route leaves unset
(rewrite, timeout, retries, fault, mirrors, CORS, headers...) it inherits from the root route.
A delegate that does not exist or is not exported to the root's namespace drops the route.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pkg.config.host import resolve_short_name
from pkg.config.model import Config
from pkg.config.specs.virtual_service import (
    Destination,
    HTTPMatchRequest,
    HTTPRoute,
    StringMatch,
    VirtualService,
)

log = logging.getLogger(__name__)

MESH_GATEWAY = "mesh"

# (namespace, name) → the delegate's resolved spec and the namespaces it is exported to
# (None = every namespace).
DelegateLookup = Callable[[str, str], tuple[VirtualService, frozenset[str] | None] | None]

_INHERITED = (
    "rewrite", "direct_response", "timeout", "retries", "fault", "mirror", "mirror_percent",
    "mirror_percentage", "cors_policy", "headers",
)  # fmt: skip


def resolve_gateway_name(name: str, namespace: str) -> str:
    if name == MESH_GATEWAY or "/" in name:
        return name
    return f"{namespace}/{name}"


def _dest(d: Destination | None, ns: str, suffix: str) -> Destination | None:
    if d is None or not d.host:
        return d
    return dataclasses.replace(d, host=resolve_short_name(d.host, ns, suffix))


def _match_gateways(matches: Iterable[Any], ns: str) -> tuple[Any, ...]:
    out = []
    for m in matches:
        if m.gateways:
            m = dataclasses.replace(
                m, gateways=tuple(resolve_gateway_name(g, ns) for g in m.gateways)
            )
        out.append(m)
    return tuple(out)


def _routes(routes: Iterable[Any], ns: str, suffix: str) -> tuple[Any, ...]:
    return tuple(
        dataclasses.replace(r, destination=_dest(r.destination, ns, suffix)) for r in routes
    )


def resolve_short_names(spec: VirtualService, namespace: str, suffix: str) -> VirtualService:
    """Istio's ResolveVirtualServiceShortnames (top-level hosts and gateways are resolved by
    the index itself)."""
    http = []
    for h in spec.http:
        mirrors = tuple(
            dataclasses.replace(m, destination=_dest(m.destination, namespace, suffix))
            for m in h.mirrors
        )
        http.append(
            dataclasses.replace(
                h,
                match=_match_gateways(h.match, namespace),
                route=_routes(h.route, namespace, suffix),
                mirror=_dest(h.mirror, namespace, suffix),
                mirrors=mirrors,
            )
        )
    tcp = [
        dataclasses.replace(
            t, match=_match_gateways(t.match, namespace), route=_routes(t.route, namespace, suffix)
        )
        for t in spec.tcp
    ]
    tls = [
        dataclasses.replace(
            t, match=_match_gateways(t.match, namespace), route=_routes(t.route, namespace, suffix)
        )
        for t in spec.tls
    ]
    return dataclasses.replace(spec, http=tuple(http), tcp=tuple(tcp), tls=tuple(tls))


# ---- delegate merging ------------------------------------------------------------------------


def _string_conflict(root: StringMatch | None, leaf: StringMatch | None) -> bool:
    """Istio's stringMatchConflict: can `leaf` not be a narrowing of `root`?"""
    if root is None or leaf is None:
        return False
    if root.regex and (leaf.regex or leaf.prefix or leaf.exact):
        return True
    if leaf.regex and (root.regex or root.prefix or root.exact):
        return True
    if root.exact:
        return bool(leaf.prefix) or leaf.exact != root.exact
    if root.prefix:
        if leaf.prefix:
            return not leaf.prefix.startswith(root.prefix)
        if leaf.exact:
            return not leaf.exact.startswith(root.prefix)
    return True


def has_conflict(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> bool:
    """Istio's hasConflict between a root match and a delegate match."""
    for field in ("uri", "scheme", "method", "authority"):
        if _string_conflict(getattr(root, field), getattr(leaf, field)):
            return True
    for field in ("headers", "without_headers", "query_params"):
        root_map: Mapping[str, StringMatch] = getattr(root, field)
        for key, value in getattr(leaf, field).items():
            if _string_conflict(root_map.get(key), value):
                return True
    if root.ignore_uri_case != leaf.ignore_uri_case:
        return True
    if root.port and leaf.port and root.port != leaf.port:
        return True
    if root.source_namespace and leaf.source_namespace != root.source_namespace:
        return True
    for key, value in leaf.source_labels.items():
        if key in root.source_labels and root.source_labels[key] != value:
            return True
    if root.gateways and leaf.gateways:
        if len(root.gateways) < len(leaf.gateways):
            return True
        if any(g not in root.gateways for g in leaf.gateways):
            return True
    return False


def _joined(root: str, leaf: str) -> str:
    if not leaf:
        return root
    return f"{root}-{leaf}" if root else leaf


def merge_match(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> HTTPMatchRequest:
    """Istio's mergeHTTPMatchRequest: the delegate match, completed from the root match."""
    return dataclasses.replace(
        leaf,
        name=_joined(root.name, leaf.name),
        uri=leaf.uri or root.uri,
        scheme=leaf.scheme or root.scheme,
        method=leaf.method or root.method,
        authority=leaf.authority or root.authority,
        headers={**root.headers, **leaf.headers},
        without_headers={**root.without_headers, **leaf.without_headers},
        query_params={**root.query_params, **leaf.query_params},
        port=leaf.port or root.port,
        source_labels={**root.source_labels, **leaf.source_labels},
        source_namespace=leaf.source_namespace or root.source_namespace,
        gateways=leaf.gateways or root.gateways,
        stat_prefix=leaf.stat_prefix or root.stat_prefix,
    )


def merge_matches(
    root: tuple[HTTPMatchRequest, ...], leaf: tuple[HTTPMatchRequest, ...]
) -> tuple[HTTPMatchRequest, ...] | None:
    """Istio's mergeHTTPMatchRequests; None on a conflict (some delegate match fits no root
    match)."""
    if not root:
        return leaf
    if not leaf:
        return root
    out: list[HTTPMatchRequest] = []
    for sub in leaf:
        merged = [merge_match(r, sub) for r in root if not has_conflict(r, sub)]
        if not merged:
            return None
        out.extend(merged)
    return tuple(out)


def merge_http_route(root: HTTPRoute, leaf: HTTPRoute) -> HTTPRoute | None:
    matches = merge_matches(root.match, leaf.match)
    if matches is None:
        return None
    inherited = {f: getattr(root, f) for f in _INHERITED if getattr(leaf, f) in (None, ())}
    return dataclasses.replace(
        leaf, match=matches, name=_joined(root.name, leaf.name), delegate=None, **inherited
    )


def merge_delegates(
    config: Config[Any], spec: VirtualService, lookup: DelegateLookup, problems: list[str]
) -> VirtualService:
    """The root VirtualService with its delegating routes replaced by the merged delegate
    routes (Istio's mergeVirtualServices)."""
    if not any(h.delegate is not None for h in spec.http):
        return spec
    root_ns = config.namespace
    out: list[HTTPRoute] = []
    for http in spec.http:
        if http.delegate is None:
            out.append(http)
            continue
        ns = http.delegate.namespace or root_ns
        name = http.delegate.name
        where = f"delegate virtual service {ns}/{name} of {root_ns}/{config.name}"
        found = lookup(ns, name)
        if found is None:
            _problem(problems, f"{where} not found")
            continue
        delegate_spec, export_to = found
        if export_to is not None and root_ns not in export_to:
            _problem(problems, f"{where} is not exported to {root_ns}")
            continue
        for leaf in delegate_spec.http:
            merged = merge_http_route(http, leaf)
            if merged is None:
                _problem(
                    problems,
                    f"HTTPMatchRequests conflict: root route {http.name!r} of "
                    f"{root_ns}/{config.name}, delegate route {leaf.name!r} of {ns}/{name}",
                )
                continue
            out.append(merged)
    return dataclasses.replace(spec, http=tuple(out))


def _problem(problems: list[str], message: str) -> None:
    log.warning("%s", message)
    problems.append(message)


__all__ = [
    "DelegateLookup",
    "has_conflict",
    "merge_delegates",
    "merge_http_route",
    "merge_matches",
    "resolve_gateway_name",
    "resolve_short_names",
]
