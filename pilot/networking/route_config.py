"""RDS: route configurations for sidecars (named by port) and gateways (`http.<port>`).

Sidecar outbound (Istio's BuildSidecarOutboundVirtualHosts): for the egress listener of the
port, each VirtualService that has routes for the port makes virtual hosts for the services it
names (grouped by their HTTP ports) and for hosts outside the registry; services without a
VirtualService get a default route to `outbound|port||host`. The first virtual host to claim a
name or domain keeps it: several VirtualServices for one host are not merged on sidecars, the
oldest wins and the others are reported as `pilot_vservice_dup_domain` in the push status, as
Istio does. A catch-all `allow_any` (to
PassthroughCluster) or `block_all` (502) virtual host comes last.

Gateway (buildGatewayHTTPRouteConfig): for every server of the route, the VirtualServices bound
to its gateway whose hosts intersect the server's hosts contribute their routes to one virtual
host per intersecting host: several VirtualServices for one host are merged (oldest first,
catch-all routes last). A server with `tls.httpsRedirect` marks the virtual hosts of all its
hosts `require_tls: ALL` (Envoy answers plain-text requests with a 301 to https), adding one
without routes for a host no VirtualService serves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from envoy.config.route.v3 import route_components_pb2 as route_pb2
from envoy.config.route.v3 import route_pb2 as route_config_pb2
from google.protobuf import wrappers_pb2

from pilot.model.proxy_status import DUPLICATED_DOMAINS, proxy_status
from pilot.model.proxy_view import ProxyView
from pilot.model.service import Service
from pilot.model.sidecar_scope import EgressListener
from pilot.model.virtual_service_index import MESH_GATEWAY, BoundVirtualService
from pilot.networking import naming
from pilot.networking.hash_policy import add_destination_hashes, add_service_hash
from pilot.networking.protos import duration
from pilot.networking.route_action import default_retry_policy, translate_route
from pilot.networking.route_match import is_catch_all
from pkg.config.host import intersects, matches, short_forms

log = logging.getLogger(__name__)

MAX_DIRECT_RESPONSE_BODY = 1024 * 1024


def _route_configuration(name: str, vhosts: list[Any]) -> Any:
    out = route_config_pb2.RouteConfiguration(name=name)
    out.virtual_hosts.extend(vhosts)
    out.validate_clusters.CopyFrom(wrappers_pb2.BoolValue(value=False))
    out.ignore_port_in_host_matching = True
    out.max_direct_response_body_size_bytes.value = MAX_DIRECT_RESPONSE_BODY
    return out


def build_http_routes(
    view: ProxyView,
    vs: BoundVirtualService,
    listen_port: int,
    gateway_names: Iterable[str],
    lookup: Mapping[str, Service | None] | None = None,
    is_tls: bool = False,
) -> list[Any]:
    """BuildHTTPRoutesForVirtualService: one route per (http route x match), stopping at a
    catch-all."""
    push = view.push
    gateways = frozenset(gateway_names)

    def find(host: str) -> Service | None:
        if lookup is not None and host in lookup:
            return lookup[host]
        return view.scope.service(host) or push.services.for_host(host, view.namespace)

    out: list[Any] = []
    for http in vs.spec.http:
        matches_ = list(http.match) or [None]
        stop = False
        for match in matches_:
            route = translate_route(
                vs,
                http,
                match,
                listen_port,
                find,
                push.domain_suffix,
                proxy_labels=view.labels,
                proxy_namespace=view.namespace,
                gateway_names=gateways,
                is_tls=is_tls,
            )
            if route is None:
                continue
            add_destination_hashes(view, vs.namespace, http, route, find)  # DR consistentHash
            out.append(route)
            if match is None or is_catch_all(route.match):
                stop = True
                break
        if stop:
            break
    return out


@dataclass
class _VHostWrapper:
    port: int
    services: list[Service]
    vs_hosts: list[str]
    routes: list[Any]
    source: BoundVirtualService | None = None
    problems: list[str] = field(default_factory=list)


def _default_route(cluster: str, operation: str) -> Any:
    route = route_pb2.Route(name=naming.DEFAULT_ROUTE, match=route_pb2.RouteMatch(prefix="/"))
    route.decorator.operation = operation
    route.route.cluster = cluster
    route.route.timeout.CopyFrom(duration(None))
    route.route.max_stream_duration.grpc_timeout_header_max.CopyFrom(duration(None))
    route.route.retry_policy.CopyFrom(default_retry_policy())
    return route


def _select_virtual_services(
    vss: Iterable[BoundVirtualService], services: Mapping[str, Service]
) -> list[BoundVirtualService]:
    out = []
    for vs in vss:
        for h in vs.hosts:
            if h in services or any(intersects(h, s) for s in services):
                out.append(vs)
                break
    return out


def _wrappers_for_sidecar(
    view: ProxyView, egress: EgressListener, listen_port: int
) -> list[_VHostWrapper]:
    by_name: dict[str, Service] = {}
    for svc in egress.services:
        if listen_port == 0 or svc.port_by_number(listen_port) is not None:
            by_name[svc.hostname] = svc
    vss = list(egress.virtual_services)
    if listen_port != 80:
        vss = _select_virtual_services(vss, by_name)
    wrappers: list[_VHostWrapper] = []
    claimed: set[str] = set()
    for vs in vss:
        routes = build_http_routes(view, vs, listen_port, (MESH_GATEWAY,), None)
        if not routes:
            continue
        non_registry: list[str] = []
        matching: list[Service] = []
        for h in vs.hosts:
            if not h.startswith("*"):
                exact = by_name.get(h)
                if exact is not None:
                    matching.append(exact)
                else:
                    non_registry.append(h)
                continue
            found = False
            for svc_host, svc in by_name.items():
                if matches(h, svc_host):
                    found = True
                    if svc_host not in claimed:
                        matching.append(svc)
            if not found:
                non_registry.append(h)
        for svc in matching:
            claimed.add(svc.hostname)
        by_port: dict[int, list[Service]] = {}
        for svc in matching:
            for port in svc.ports:
                if port.protocol.is_http_or_sniffed:
                    by_port.setdefault(port.port, []).append(svc)
        if not by_port and listen_port == 80:
            by_port[80] = []
        for port_number, services in by_port.items():
            wrappers.append(_VHostWrapper(port_number, services, non_registry, routes, vs))
    for hostname, svc in by_name.items():
        if hostname in claimed:
            continue
        for port in svc.ports:
            if not port.protocol.is_http_or_sniffed:
                continue
            cluster = naming.outbound_cluster(port.port, "", svc.hostname)
            operation = f"{svc.hostname}:{port.port}/*"
            wrappers.append(
                _VHostWrapper(
                    port.port,
                    [svc],
                    [],
                    [add_service_hash(view, svc, port.port, _default_route(cluster, operation))],
                )
            )
    return wrappers


def _service_domains(view: ProxyView, svc: Service) -> list[str]:
    domains = [svc.hostname]
    domains.extend(short_forms(svc.hostname, view.namespace, view.push.domain_suffix))
    domains.extend(a for a in svc.all_addresses if a)
    return domains


def _catch_all_vhost(view: ProxyView) -> Any:
    mode = view.scope.outbound_mode
    if mode == "REGISTRY_ONLY":
        vhost = route_pb2.VirtualHost(name=naming.BLOCK_ALL_VHOST, domains=["*"])
        route = vhost.routes.add(name=naming.BLOCK_ALL_ROUTE)
        route.match.prefix = "/"
        route.direct_response.status = 502
        return vhost
    vhost = route_pb2.VirtualHost(name=naming.ALLOW_ANY_VHOST, domains=["*"])
    route = vhost.routes.add(name=naming.ALLOW_ANY_ROUTE)
    route.match.prefix = "/"
    route.route.cluster = naming.PASSTHROUGH_CLUSTER
    route.route.timeout.CopyFrom(duration(None))
    route.route.max_stream_duration.grpc_timeout_header_max.CopyFrom(duration(None))
    return vhost


def parse_sidecar_route_name(name: str) -> tuple[int, str] | None:
    """`"9080"` → (9080, ""); `"host:9080"` (sniffed) → (9080, "host"); else None."""
    host, sep, port = name.rpartition(":")
    try:
        number = int(port if sep else name)
    except ValueError:
        return None
    return number, host


def build_sidecar_route_config(view: ProxyView, name: str) -> Any | None:
    parsed = parse_sidecar_route_name(name)
    if parsed is None:
        return None
    listen_port, sniffed_host = parsed
    egress = view.scope.egress_for_port(listen_port)
    if egress is None:
        return _route_configuration(name, [])
    wrappers = _wrappers_for_sidecar(view, egress, listen_port)
    vhosts: list[Any] = []
    names: set[str] = set()
    domains_seen: set[str] = set()
    for wrapper in wrappers:
        if wrapper.port != listen_port or not wrapper.routes:
            continue
        candidates: list[tuple[str, list[str], str]] = []
        for h in wrapper.vs_hosts:
            candidates.append((h, [h], "virtual service"))
        for svc in wrapper.services:
            candidates.append((svc.hostname, _service_domains(view, svc), "service"))
        for host, domains, source in candidates:
            vhost_name = naming.virtual_host_name(host, wrapper.port)
            problem = f"duplicate domain from {source}: {vhost_name}"
            if vhost_name in names:
                _report_duplicate(view, vhost_name, problem)
                continue
            names.add(vhost_name)
            all_domains = list(dict.fromkeys(domains))
            unique = [d for d in all_domains if d not in domains_seen]
            if len(unique) != len(all_domains):
                _report_duplicate(view, vhost_name, problem)
            if not unique:
                continue
            domains_seen.update(unique)
            vhost = route_pb2.VirtualHost(name=vhost_name, domains=unique)
            vhost.routes.extend(wrapper.routes)
            vhosts.append(vhost)
    if sniffed_host:
        vhosts = [
            v for v in vhosts if v.name == naming.virtual_host_name(sniffed_host, listen_port)
        ]
    vhosts.sort(key=lambda v: v.name)
    if not sniffed_host:
        vhosts.append(_catch_all_vhost(view))
    return _route_configuration(name, vhosts)


def _report_duplicate(view: ProxyView, vhost_name: str, message: str) -> None:
    log.debug("%s (proxy %s)", message, view.proxy.id)
    proxy_status(view.push).add(DUPLICATED_DOMAINS, vhost_name, view.proxy.id, message)


def _server_hosts_for_namespace(hosts: Iterable[str], namespace: str) -> list[str]:
    out = []
    for h in hosts:
        if "/" in h:
            ns, name = h.split("/", 1)
            if ns not in (namespace, "*"):
                continue
            h = name
        out.append(h)
    return out


def _intersection(server_hosts: list[str], vs_hosts: Iterable[str]) -> list[str]:
    out: list[str] = []
    for s in server_hosts:
        for v in vs_hosts:
            picked = None
            if matches(v, s):  # server host is a subset of the VirtualService host
                picked = s
            elif matches(s, v):
                picked = v
            if picked is not None and picked not in out:
                out.append(picked)
    return out


def build_gateway_route_config(view: ProxyView, name: str) -> Any:
    merged = view.gateway
    if merged is None or name not in merged.servers_by_route:
        return _route_configuration(name, [])
    servers = merged.servers_by_route[name]
    vhosts: dict[str, Any] = {}
    routes_cache: dict[tuple[str, str, str], list[Any]] = {}
    for entry in servers:
        port = int(entry.server.port.number)
        gateway = entry.gateway_name
        is_tls = entry.server.tls is not None
        redirect = is_tls and bool(entry.server.tls.https_redirect)
        for vs in view.push.virtual_services.for_gateway(view.namespace, gateway):
            server_hosts = _server_hosts_for_namespace(entry.hosts, vs.namespace)
            hosts = _intersection(server_hosts, vs.hosts)
            if not hosts:
                continue
            key = (gateway, vs.namespace, vs.name)
            routes = routes_cache.get(key)
            if routes is None:
                routes = build_http_routes(view, vs, port, (gateway,), is_tls=is_tls)
                routes_cache[key] = routes
            if not routes:
                continue
            for host in hosts:
                host = host.lower()
                vhost = vhosts.get(host)
                if vhost is None:
                    vhost = route_pb2.VirtualHost(
                        name=naming.virtual_host_name(host, port), domains=[host]
                    )
                    vhosts[host] = vhost
                vhost.routes.extend(routes)
                if redirect:
                    vhost.require_tls = route_pb2.VirtualHost.ALL
        if redirect:
            # Every host of the server redirects to HTTPS, with or without routes.
            for host in entry.hosts:
                host = host.split("/", 1)[-1].lower()
                vhost = vhosts.get(host)
                if vhost is None:
                    vhost = route_pb2.VirtualHost(
                        name=naming.virtual_host_name(host, port), domains=[host]
                    )
                    vhosts[host] = vhost
                vhost.require_tls = route_pb2.VirtualHost.ALL
    if not vhosts:
        port = int(servers[0].server.port.number)
        blackhole = route_pb2.VirtualHost(
            name=naming.virtual_host_name("blackhole", port), domains=["*"]
        )
        return _route_configuration(name, [blackhole])
    out = []
    for host in sorted(vhosts):
        vhost = vhosts[host]
        ordinary = [r for r in vhost.routes if not is_catch_all(r.match)]
        catch_alls = [r for r in vhost.routes if is_catch_all(r.match)]
        del vhost.routes[:]
        vhost.routes.extend(ordinary + catch_alls)
        out.append(vhost)
    out.sort(key=lambda v: v.name)
    return _route_configuration(name, out)
