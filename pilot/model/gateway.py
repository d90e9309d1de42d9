"""MergedGateway: the Gateway servers a router proxy serves, grouped by listener port
(Istio's mergeGateways, pilot/pkg/model/gateway.go).

Gateways select routers by labels (in any namespace, Istio's default). A server's port is
translated through the targetPort of a service port the gateway workload serves (legacy label
selection: the first service port with that number; no such service: the port as written).

Servers sharing a port merge as Istio merges them:
- plain-text servers (HTTP, or TCP without TLS) on one (port, bind) merge when both are HTTP;
  they share the route configuration `http.<port>[.<bind>]`; a second TCP server is rejected;
- TLS servers (TLS settings on a non-HTTP protocol: HTTPS, TLS) merge on a port, told apart by
  SNI; a host may appear once per (port, bind); a terminating HTTPS server gets its own route
  configuration `https.<number>.<portName>.<gateway>.<namespace>[.<bind>]`;
- a plain-text server may join a port of TLS servers (its chain then matches what SNI does not).
Servers that cannot merge are skipped and listed in `rejected`.
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

PASSTHROUGH_MODES = frozenset({"PASSTHROUGH", "AUTO_PASSTHROUGH"})


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
    server: Any  # the Server spec
    hosts: tuple[str, ...]  # sanitized: "ns/host" kept, "./" → own namespace, "*/" stripped
    port: int  # listener port (target port)
    protocol: Protocol
    bind: str
    route_name: str  # "" for servers without an HTTP connection manager

    @property
    def gateway_name(self) -> str:
        return f"{self.gateway.namespace}/{self.gateway.name}"

    @property
    def tls_mode(self) -> str:
        tls = self.server.tls
        return str(tls.mode) if tls is not None else ""

    @property
    def is_tls(self) -> bool:
        """Istio's IsTLSServer: TLS settings on a non-HTTP protocol (an HTTP server's `tls`
        only asks for httpsRedirect)."""
        return self.server.tls is not None and not self.protocol.is_http

    @property
    def is_passthrough(self) -> bool:
        return self.tls_mode in PASSTHROUGH_MODES

    @property
    def terminates_https(self) -> bool:
        """Istio's IsHTTPSServerWithTLSTermination."""
        return self.protocol is Protocol.HTTPS and self.is_tls and not self.is_passthrough

    @property
    def is_http_server(self) -> bool:
        """Istio's IsHTTPServer: plain HTTP, or HTTPS terminated here."""
        return self.protocol.is_http or self.terminates_https

    @property
    def sni_hosts(self) -> tuple[str, ...]:
        """Istio's GetSNIHostsForServer: the hosts without their namespace, sorted, unique."""
        if self.server.tls is None:
            return ()
        return tuple(sorted({h.split("/", 1)[1] if "/" in h else h for h in self.hosts}))


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
    # plain-text server port → its shared route configuration (`http.<port>[.<bind>]`)
    route_names: Mapping[ServerPort, str] = field(default_factory=dict)
    # route port → the server port numbers declared for it (for VirtualService port matches)
    port_map: Mapping[int, frozenset[int]] = field(default_factory=dict)
    rejected: tuple[str, ...] = ()
    auto_passthrough: bool = False


def _sanitize_hosts(hosts: Sequence[str], namespace: str) -> tuple[str, ...]:
    """Istio's sanitizeServerHostNamespace: `./h` → `<ns>/h`, `*/h` → `h`, `*/*` → `*`."""
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
    """Istio's gatewayRDSRouteName."""
    bind = f".{server.bind}" if server.bind else ""
    if protocol.is_http:
        return f"http.{port}{bind}"
    tls = server.tls
    passthrough = tls is not None and str(tls.mode) in PASSTHROUGH_MODES
    if protocol is Protocol.HTTPS and not passthrough:
        port_part = f"{server.port.number}.{server.port.name}"
        return f"https.{port_part}.{gateway.name}.{gateway.namespace}{bind}"
    return ""


def _resolve_port(number: int, targets: Sequence[ServiceTarget]) -> int:
    for target in targets:
        if target.port == number:
            return target.target_port or number
    return number


def _can_merge(current: Protocol, new: Protocol) -> bool:
    """Istio's canMergeProtocols."""
    return (current.is_http or current is new) and new.is_http


class _Merger:
    def __init__(self) -> None:
        self.ports: list[ServerPort] = []
        self.seen_ports: set[int] = set()
        self.servers: dict[ServerPort, list[GatewayServer]] = {}
        self.route_names: dict[ServerPort, str] = {}
        self.by_route: dict[str, list[GatewayServer]] = {}
        self.plaintext: dict[int, ServerPort] = {}
        self.tls_hosts: dict[int, dict[str, str]] = {}
        self.rejected: list[str] = []
        self.auto_passthrough = False

    def reject(self, entry: GatewayServer, reason: str) -> None:
        name = entry.server.port.name
        self.rejected.append(f"{entry.gateway_name}: server {name} on port {entry.port}: {reason}")

    def _new(self, key: ServerPort, entry: GatewayServer) -> None:
        """Istio's addPlainTextServer (for every first server of a (port, protocol, bind))."""
        if not entry.is_tls:
            self.plaintext[entry.port] = key
        if entry.is_http_server:
            self.by_route[entry.route_name] = [entry]
        self.servers[key] = [entry]
        self.route_names[key] = entry.route_name
        self.ports.append(key)

    def add(self, entry: GatewayServer) -> None:
        if entry.server.tls is not None:
            known = self.tls_hosts.setdefault(entry.port, {})
            dups = sorted(h for h in entry.hosts if known.get(h) == entry.bind)
            if dups:
                self.reject(entry, f"duplicate host names {dups}")
                return
            for h in entry.hosts:
                known[h] = entry.bind
            self.auto_passthrough |= entry.tls_mode == "AUTO_PASSTHROUGH"
        key = ServerPort(entry.port, entry.protocol, entry.bind)
        if entry.port not in self.seen_ports:
            self.seen_ports.add(entry.port)
            self._new(key, entry)
            return
        current = self.plaintext.get(entry.port)
        if current is not None:
            same_bind = current.bind == entry.bind
            if same_bind and not _can_merge(current.protocol, entry.protocol):
                self.reject(entry, f"conflicts with an existing {current.protocol} server")
                return
            if same_bind and not entry.route_name:
                self.reject(entry, "a second non-HTTP server on the port")
                return
            if same_bind:
                self.servers[current].append(entry)
                self.by_route.setdefault(entry.route_name, []).append(entry)
            elif key not in self.servers:
                self._new(key, entry)
            else:
                self.route_names[key] = entry.route_name
                self.servers[key].append(entry)
                self.by_route.setdefault(entry.route_name, []).append(entry)
            return
        if not entry.is_tls:
            self._new(key, entry)  # a plain-text server joining a port of TLS servers
            return
        if entry.is_http_server:
            if entry.route_name in self.by_route:
                self.reject(entry, "non unique port name for HTTPS port")
                return
            self.by_route[entry.route_name] = [entry]
        if key not in self.servers:
            self.servers[key] = [entry]
            self.ports.append(key)
        else:
            self.servers[key].append(entry)


def merge_gateways(
    gateways: Sequence[Config[Any]],
    proxy_labels: Mapping[str, str],
    targets: Sequence[ServiceTarget],
) -> MergedGateway | None:
    selected = [g for g in gateways if selector_matches(g.spec.selector, proxy_labels)]
    if not selected:
        return None
    merger = _Merger()
    for gw in selected:
        for server in gw.spec.servers:
            if server.port is None:
                continue
            protocol = Protocol.parse(server.port.protocol)
            port = _resolve_port(int(server.port.number), targets)
            hosts = _sanitize_hosts(server.hosts, gw.namespace)
            route = _route_name(protocol, server, port, gw)
            merger.add(GatewayServer(gw, server, hosts, port, protocol, server.bind, route))
    for problem in merger.rejected:
        log.warning("gateway server skipped: %s", problem)
    port_map: dict[int, set[int]] = {}
    for entries in merger.by_route.values():
        for entry in entries:
            port_map.setdefault(entry.port, set()).add(int(entry.server.port.number))
    return MergedGateway(
        ports=tuple(merger.ports),
        servers=MappingProxyType({k: tuple(v) for k, v in merger.servers.items()}),
        servers_by_route=MappingProxyType({k: tuple(v) for k, v in merger.by_route.items()}),
        gateway_names=frozenset(f"{g.namespace}/{g.name}" for g in selected),
        route_names=MappingProxyType(merger.route_names),
        port_map=MappingProxyType({k: frozenset(v) for k, v in port_map.items()}),
        rejected=tuple(merger.rejected),
        auto_passthrough=merger.auto_passthrough,
    )
