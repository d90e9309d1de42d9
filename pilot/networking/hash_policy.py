"""Consistent-hash keys on routes (Istio's HashForHTTPDestination, hashForService and
ConsistentHashToHashPolicy).

A DestinationRule's `loadBalancer.consistentHash` picks the hash key Envoy's RING_HASH / MAGLEV
cluster needs; the key itself is a route setting, so every route to the destination carries a
`hash_policy`: a header, a cookie (Envoy sets it when the request has none and a `ttl` is
given), the source IP, or a query parameter.

Which consistentHash applies to a VirtualService destination: the subset's port-level setting,
else the subset's, else the top-level port-level one (only when the destination names a port),
else the top-level one. A service without a VirtualService: the port-level setting of its port,
else the top-level one.

With consistent hashing, retries of a single-destination route stay on the same host: Istio's
retry policy then leaves out the previous_hosts predicate, unless the route's retries say
`retryIgnorePreviousHosts` themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envoy.config.route.v3 import route_components_pb2 as route_pb2

from pilot.model.proxy_view import ProxyView
from pilot.model.service import Service
from pilot.networking.protos import duration
from pkg.config.host import resolve_short_name

HashPolicy = route_pb2.RouteAction.HashPolicy


def to_hash_policy(ch: Any) -> Any | None:
    """ConsistentHashToHashPolicy: the route hash policy of a ConsistentHashLB (or None)."""
    if ch is None:
        return None
    if ch.http_header_name is not None:
        return HashPolicy(header=HashPolicy.Header(header_name=ch.http_header_name))
    if ch.http_cookie is not None:
        cookie = ch.http_cookie
        out = HashPolicy(cookie=HashPolicy.Cookie(name=cookie.name, path=cookie.path))
        if cookie.ttl is not None:
            out.cookie.ttl.CopyFrom(duration(cookie.ttl))
        for attribute in cookie.attributes:
            out.cookie.attributes.add(name=attribute.name, value=attribute.value)
        return out
    if ch.use_source_ip is not None:
        return HashPolicy(
            connection_properties=HashPolicy.ConnectionProperties(source_ip=ch.use_source_ip)
        )
    if ch.http_query_parameter_name is not None:
        return HashPolicy(
            query_parameter=HashPolicy.QueryParameter(name=ch.http_query_parameter_name)
        )
    return None


def _port_level(policy: Any, port: int) -> Any | None:
    if policy is None:
        return None
    for settings in policy.port_level_settings:
        if settings.port is not None and int(settings.port.number) == port:
            lb = settings.load_balancer
            return lb.consistent_hash if lb is not None else None
    return None


def _top_level(policy: Any) -> Any | None:
    lb = policy.load_balancer if policy is not None else None
    return lb.consistent_hash if lb is not None else None


def _rule(view: ProxyView, host: str, svc: Service | None) -> Any | None:
    if svc is not None:
        return view.push.destination_rule(view.namespace, svc, view.labels)
    return view.push.destination_rules.lookup(view.namespace, host, "", view.labels)


def destination_hash(view: ProxyView, destination: Any, host: str, svc: Service | None) -> Any:
    """HashForHTTPDestination for a route destination whose host resolves to `host`."""
    dr = _rule(view, host, svc)
    if dr is None:
        return None
    top = dr.spec.traffic_policy
    port = int(destination.port.number) if destination.port is not None else 0
    port_hash = _port_level(top, port) if port else None
    subset_hash = subset_port_hash = None
    if destination.subset:
        subset = dr.subset(destination.subset)
        if subset is not None:
            subset_hash = _top_level(subset.traffic_policy)
            subset_port_hash = _port_level(subset.traffic_policy, port) if port else None
    for candidate in (subset_port_hash, subset_hash, port_hash):
        if candidate is not None:
            return candidate
    return _top_level(top)


def service_hash(view: ProxyView, svc: Service, port: int) -> Any:
    """hashForService: the consistentHash of a service's default route."""
    dr = view.push.destination_rule(view.namespace, svc, view.labels)
    if dr is None:
        return None
    top = dr.spec.traffic_policy
    lb = None
    if top is not None:
        for settings in top.port_level_settings:
            if settings.port is not None and int(settings.port.number) == port:
                lb = settings.load_balancer
                break
    found = lb.consistent_hash if lb is not None else None
    return found if found is not None else _top_level(top)


def add_service_hash(view: ProxyView, svc: Service, port: int, route: Any) -> Any:
    """The default route of a service without a VirtualService, with its hash policy."""
    policy = to_hash_policy(service_hash(view, svc, port))
    if policy is not None:
        route.route.hash_policy.append(policy)
    return route


ServiceLookup = Callable[[str], Service | None]


def add_destination_hashes(
    view: ProxyView, vs_namespace: str, http: Any, route: Any, lookup: ServiceLookup
) -> None:
    """Add the hash policies of a translated VirtualService HTTP route's destinations."""
    if not route.HasField("route") or not http.route:
        return
    action = route.route
    suffix = view.push.domain_suffix
    destinations = list(http.route)
    single = len(destinations) == 1
    for dest in destinations:
        if not single and dest.weight == 0:
            continue
        host = resolve_short_name(dest.destination.host, vs_namespace, suffix)
        policy = to_hash_policy(destination_hash(view, dest.destination, host, lookup(host)))
        if policy is None:
            continue
        action.hash_policy.append(policy)
        explicit = _ignores_previous_hosts_explicitly(view, http)
        if single and action.HasField("retry_policy") and not explicit:
            del action.retry_policy.retry_host_predicate[:]


def _ignores_previous_hosts_explicitly(view: ProxyView, http: Any) -> bool:
    """Whether the route's retry policy sets retryIgnorePreviousHosts itself."""
    if http.retries is not None:
        return http.retries.retry_ignore_previous_hosts is not None
    default = view.push.mesh.default_http_retry_policy
    return default is not None and "retryIgnorePreviousHosts" in default
