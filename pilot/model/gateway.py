"""MergedGateway: the Gateway servers a router proxy serves, grouped by listener port.

Gateways select routers by labels (in any namespace, Istio's default). A server's port is
translated through the targetPort of a service port the gateway workload serves (legacy label
selection: the first service port with that number; no such service: the port as written).
Plain-text servers on one (port, bind) merge when their protocols can (HTTP with HTTP); the
route configuration of HTTP servers is `http.<port>[.<bind>]`, of terminating HTTPS servers
`https.<port>.<portName>.<gateway>.<namespace>[.<bind>]`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pilot.model.service import Protocol
from pkg.config.labels import selector_matches
from pkg.config.model import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    """A service port the proxy's workload serves, and the port it listens on for it."""

    hostname: str
    namespace: str
    port: int
    port_name: str
    protocol: Protocol
    target_port: int


@dataclass(frozen=True, slots=True)
class GatewayServer:
    gateway: Config[Any]
    server: Any  # the Server spec, hosts sanitized
    hosts: tuple[str, ...]  # "ns/host" kept where given, "*/" stripped
    port: int  # listener port (target port)
    protocol: Protocol
    bind: str
    route_name: str  # "" for non-HTTP servers

    @property
    def gateway_name(self) -> str:
        return f"{self.gateway.namespace}/{self.gateway.name}"

    @property
    def is_tls(self) -> bool:
        return self.server.tls is not None and self.protocol in (
            Protocol.HTTPS,
            Protocol.TLS,
        )


@dataclass(frozen=True, slots=True)
class ServerPort:
    port: int
    protocol: Protocol
    bind: str


@dataclass(frozen=True, slots=True)
class MergedGateway:
    ports: tuple[ServerPort, ...]
    servers: Mapping[ServerPort, tuple[GatewayServer, ...]]
    servers_by_route: Mapping[str, tuple[GatewayServer, ...]]
    gateway_names: frozenset[str]
    # route port → the server port numbers declared for it (for VirtualService port matches)
    port_map: Mapping[int, frozenset[int]] = field(default_factory=dict)
    rejected: tuple[str, ...] = ()


def _sanitize_hosts(hosts: Sequence[str], namespace: str) -> tuple[str, ...]:
    out: list[str] = []
    for h in hosts:
        if "/" in h:
            ns, name = h.split("/", 1)
            if ns == ".":
                out.append(f"{namespace}/{name}")
            elif ns == "*":
                if name == "*":
                    return ("*",)
                out.append(name)
            else:
                out.append(h)
        else:
            out.append(h)
    return tuple(out)


def _route_name(protocol: Protocol, server: Any, port: int, gateway: Config[Any]) -> str:
    bind = f".{server.bind}" if server.bind else ""
    if protocol.is_http:
        return f"http.{port}{bind}"
    tls = server.tls
    passthrough = tls is not None and str(tls.mode) in ("PASSTHROUGH", "AUTO_PASSTHROUGH")
    if protocol is Protocol.HTTPS and not passthrough:
        port_part = f"{server.port.number}.{server.port.name}"
        return f"https.{port_part}.{gateway.name}.{gateway.namespace}{bind}"
    return ""


def _resolve_ports(number: int, targets: Sequence[ServiceTarget]) -> int:
    for target in targets:
        if target.port == number:
            return target.target_port or number
    return number


def merge_gateways(
    gateways: Sequence[Config[Any]],
    proxy_labels: Mapping[str, str],
    targets: Sequence[ServiceTarget],
) -> MergedGateway | None:
    selected = [g for g in gateways if selector_matches(g.spec.selector, proxy_labels)]
    if not selected:
        return None
    ports: list[ServerPort] = []
    servers: dict[ServerPort, list[GatewayServer]] = {}
    by_route: dict[str, list[GatewayServer]] = {}
    plaintext: dict[tuple[int, str], ServerPort] = {}
    tls_hosts: dict[int, dict[str, str]] = {}
    rejected: list[str] = []
    for gw in selected:
        gw_name = f"{gw.namespace}/{gw.name}"
        for server in gw.spec.servers:
            if server.port is None:
                continue
            protocol = Protocol.parse(server.port.protocol)
            port = _resolve_ports(int(server.port.number), targets)
            hosts = _sanitize_hosts(server.hosts, gw.namespace)
            route = _route_name(protocol, server, port, gw)
            entry = GatewayServer(gw, server, hosts, port, protocol, server.bind, route)
            key = ServerPort(port, protocol, server.bind)
            if entry.is_tls:
                known = tls_hosts.setdefault(port, {})
                dups = [h for h in hosts if known.get(h) == server.bind]
                if dups:
                    rejected.append(f"{gw_name}: duplicate host names {dups} on port {port}")
                    continue
                for h in hosts:
                    known[h] = server.bind
            current = plaintext.get((port, server.bind))
            if current is not None:
                if entry.is_tls or not (protocol.is_http and current.protocol.is_http):
                    rejected.append(
                        f"{gw_name}: server {server.port.name} on port {port} conflicts with "
                        f"an existing {current.protocol} server"
                    )
                    continue
                servers[current].append(entry)
                by_route.setdefault(route, []).append(entry)
                continue
            if not entry.is_tls:
                if any(sp.port == port and sp.bind == server.bind for sp in servers):
                    rejected.append(
                        f"{gw_name}: plain-text server on port {port} conflicts with a TLS server"
                    )
                    continue
                plaintext[(port, server.bind)] = key
            elif route and route in by_route:
                rejected.append(f"{gw_name}: non unique port name for HTTPS port {port}")
                continue
            if key not in servers:
                servers[key] = []
                ports.append(key)
            servers[key].append(entry)
            if route:
                by_route.setdefault(route, []).append(entry)
    for problem in rejected:
        log.warning("gateway server skipped: %s", problem)
    port_map: dict[int, set[int]] = {}
    for entries in by_route.values():
        for entry in entries:
            port_map.setdefault(entry.port, set()).add(int(entry.server.port.number))
    return MergedGateway(
        ports=tuple(ports),
        servers=MappingProxyType({k: tuple(v) for k, v in servers.items()}),
        servers_by_route=MappingProxyType({k: tuple(v) for k, v in by_route.items()}),
        gateway_names=frozenset(f"{g.namespace}/{g.name}" for g in selected),
        port_map=MappingProxyType({k: frozenset(v) for k, v in port_map.items()}),
        rejected=tuple(rejected),
    )
