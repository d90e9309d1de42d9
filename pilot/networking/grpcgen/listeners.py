"""Proxyless gRPC LDS: ApiListeners named as the client asked (Istio's grpcgen BuildListeners,
outbound side).

A requested `echo:7070` matches the service `echo.<ns>.svc.<suffix>` of the proxy's scope (a
name without a dot is completed with the proxy's DNS domain; `echo.ns` and `echo.ns.svc` with
the rest of it, as Istio's tryFindFQDN), and yields the listener `echo:7070`; a name without a
port yields one listener per service port. With no names (a wildcard request) every service of
the scope gets listeners named by its hostname.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import config_source_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from pilot.model.proxy import Proxy
from pilot.model.proxy_view import ProxyView
from pilot.networking import naming
from pilot.networking.filters import FAULT, ROUTER
from pilot.networking.protos import socket_address, to_any


@dataclass
class RequestedHost:
    """How the client spelled one host, and which ports it asked for (None: every port)."""

    spellings: set[str] = field(default_factory=set)
    ports: set[int] | None = None


def _split(name: str) -> tuple[str, int | None]:
    host, sep, port = name.rpartition(":")
    if sep and port.isdigit() and host:
        return host, int(port)
    return name, None


def expand_fqdn(name: str, proxy: Proxy) -> str:
    """Istio's tryFindFQDN: `echo` → `echo.<dns domain>`; `echo.ns`/`echo.ns.svc` → the FQDN
    when the proxy's DNS domain continues them; else "" (already qualified, or unknown)."""
    domain = proxy.dns_domain
    if "." not in name:
        return f"{name}.{domain}"
    for suffix in (proxy.namespace, f"{proxy.namespace}.svc"):
        short = name.removesuffix(f".{suffix}")
        if short != name and domain.startswith(suffix):
            return f"{short}.{domain}"
    return ""


def requested_hosts(names: Iterable[str], proxy: Proxy) -> dict[str, RequestedHost]:
    """Istio's newListenerNameFilter: service host → how it was asked for."""
    out: dict[str, RequestedHost] = {}
    for name in sorted(names):
        host, port = _split(name)
        candidates = [host]
        fqdn = expand_fqdn(host, proxy)
        if fqdn:
            candidates.append(fqdn)
        for candidate in candidates:
            entry = out.get(candidate)
            fresh = entry is None
            if entry is None:
                entry = out[candidate] = RequestedHost()
            entry.spellings.add(host)
            if port is None:
                entry.ports = None  # the bare name asks for every port
            elif fresh or entry.ports is not None:
                entry.ports = (entry.ports or set()) | {port}
    return out


def _http_filters() -> list[Any]:
    """Fault, then router: the filters Istio gives gRPC (it NACKs an empty list)."""
    return [
        hcm_pb2.HttpFilter(name=FAULT, typed_config=to_any(fault_pb2.HTTPFault())),
        hcm_pb2.HttpFilter(name=ROUTER, typed_config=to_any(router_pb2.Router())),
    ]


def _api_listener(name: str, address: str, port: int, route_name: str) -> Any:
    manager = hcm_pb2.HttpConnectionManager()
    manager.http_filters.extend(_http_filters())
    manager.rds.route_config_name = route_name
    manager.rds.config_source.CopyFrom(
        config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource())
    )
    listener = listener_pb2.Listener(name=name)
    listener.address.CopyFrom(socket_address(address, port))
    listener.api_listener.api_listener.CopyFrom(to_any(manager))
    return listener


def build_grpc_listeners(view: ProxyView, names: frozenset[str] | None) -> list[Any]:
    wanted = None if names is None else requested_hosts(names, view.proxy)
    out: list[Any] = []
    seen: set[str] = set()
    for svc in view.scope.services:
        if wanted is None:
            request: RequestedHost | None = RequestedHost({svc.hostname})
        else:
            request = wanted.get(svc.hostname)
        if request is None:
            continue
        for spelling in sorted(request.spellings):
            for port in svc.ports:
                if request.ports is not None and port.port not in request.ports:
                    continue
                name = naming.grpc_listener_name(spelling, port.port)
                if name in seen:
                    continue
                seen.add(name)
                route = naming.grpc_route_name(port.port, svc.hostname)
                out.append(_api_listener(name, svc.address, port.port, route))
    return out
