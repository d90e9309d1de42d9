"""`proxy-config listener`: istioctl's listener table (`configdump/listener.go`).

Verbose (the default): `ADDRESSES  PORT  MATCH  DESTINATION`, one row per filter chain (the
default chain included), chains ordered by DESTINATION descending; otherwise `ADDRESSES  PORT
TYPE` (HTTP, TCP, HTTP+TCP or UNKNOWN). Padding 1. Listeners are sorted by port, address,
then type. MATCH describes the filter chain match (`SNI: ...; Trans: ...; App: ...; Addr:
...`, or `ALL`); DESTINATION the first HTTP connection manager (`Route: RDS_NAME`, an inline
route description, or `HTTP`) or TCP proxy (`Cluster: NAME`, or the bare name when it
contains "Cluster"); a TCP proxy to the BlackHoleCluster is skipped. Filters: `--address`
(the listener's or an additional address), `--port`, `--type`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from istioctl.proxyconfig.configdump import ConfigDump, NothingToShow
from istioctl.proxyconfig.routes import describe_match
from istioctl.proxyconfig.tabwriter import Table

PADDING = 1
HTTP_FILTER = "envoy.filters.network.http_connection_manager"
TCP_FILTER = "envoy.filters.network.tcp_proxy"
_HCM_TYPE = hcm_pb2.HttpConnectionManager.DESCRIPTOR.full_name
_TCP_TYPE = tcp_proxy_pb2.TcpProxy.DESCRIPTOR.full_name
BLACKHOLE = b"BlackHoleCluster"

# istioctl's names for well-known ALPN lists (an exact, ordered match).
_ALPN_NAMES = (
    (
        "App: HTTP TLS",
        ("http/1.0", "http/1.1", "h2c", "istio-http/1.0", "istio-http/1.1", "istio-h2"),
    ),
    ("App: Istio HTTP Plain", ("istio", "istio-http/1.0", "istio-http/1.1", "istio-h2")),
    ("App: TCP TLS", ("istio-peer-exchange", "istio")),
    ("App: HTTP", ("http/1.0", "http/1.1", "h2c")),
)


class NoListeners(NothingToShow):
    def __str__(self) -> str:
        return "no listeners found"


@dataclass(frozen=True)
class ListenerFilter:
    address: str = ""
    port: int = 0
    type: str = ""
    verbose: bool = True

    def matches(self, listener: Any) -> bool:
        if self.address:
            wanted = self.address.casefold()
            if not any(a.casefold() == wanted for a in addresses(listener)):
                return False
        if self.port and port(listener) != self.port:
            return False
        return not self.type or listener_type(listener).casefold() == self.type.casefold()


def selected(dump: ConfigDump, flt: ListenerFilter) -> list[Any]:
    """The listeners `-o json|yaml` prints (dump order); NoListeners when there are none."""
    listeners = dump.listeners()
    if not listeners:
        raise NoListeners()
    return [lis for lis in listeners if flt.matches(lis)]


def table(dump: ConfigDump, flt: ListenerFilter, *, with_name: bool = False) -> Table:
    listeners = sorted(
        selected(dump, flt), key=lambda lis: (port(lis), address(lis), listener_type(lis))
    )
    header: tuple[str, ...] = ("ADDRESSES", "PORT")
    header += ("MATCH", "DESTINATION") if flt.verbose else ("TYPE",)
    if with_name:
        header = ("NAME", *header)
    rows: list[tuple[str, ...]] = []
    for listener in listeners:
        lead: tuple[str, ...] = (",".join(addresses(listener)), str(port(listener)))
        if with_name:
            lead = (f"listener/{listener.name}", *lead)
        if not flt.verbose:
            rows.append((*lead, listener_type(listener)))
            continue
        chains = [(describe_chain_match(c), destination(c)) for c in filter_chains(listener)]
        chains.sort(key=lambda chain: chain[1], reverse=True)
        rows.extend((*lead, match, dest) for match, dest in chains)
    return Table(header, tuple(rows), PADDING)


# -- listener facts ------------------------------------------------------------------------


def filter_chains(listener: Any) -> list[Any]:
    chains = list(listener.filter_chains)
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    return chains


def address(listener: Any) -> str:
    addr = listener.address
    if addr.HasField("socket_address"):
        return str(addr.socket_address.address)
    if addr.HasField("pipe"):
        return str(addr.pipe.path)
    return ""


def addresses(listener: Any) -> list[str]:
    """The listener's address, then its additional addresses."""
    return [
        address(listener),
        *(str(a.address.socket_address.address) for a in listener.additional_addresses),
    ]


def port(listener: Any) -> int:
    return int(listener.address.socket_address.port_value)


def _is_http(f: Any) -> bool:
    return bool(f.name == HTTP_FILTER or f.typed_config.type_url.endswith("/" + _HCM_TYPE))


def _is_tcp(f: Any) -> bool:
    return bool(f.name == TCP_FILTER or f.typed_config.type_url.endswith("/" + _TCP_TYPE))


def listener_type(listener: Any) -> str:
    """HTTP, TCP, HTTP+TCP or UNKNOWN, by the network filters of all chains."""
    http = tcp = 0
    for chain in filter_chains(listener):
        for f in chain.filters:
            if _is_http(f):
                http += 1
            elif _is_tcp(f) and BLACKHOLE not in f.typed_config.value:
                tcp += 1
    if http:
        return "HTTP+TCP" if tcp else "HTTP"
    return "TCP" if tcp else "UNKNOWN"


def describe_chain_match(chain: Any) -> str:
    match = chain.filter_chain_match
    parts: list[str] = []
    if match.server_names:
        parts.append("SNI: " + ",".join(match.server_names))
    if match.transport_protocol:
        parts.append(f"Trans: {match.transport_protocol}")
    if match.application_protocols:
        alpn = tuple(match.application_protocols)
        named = next((label for label, known in _ALPN_NAMES if known == alpn), None)
        parts.append(named or "App: " + ",".join(alpn))
    dport = f":{match.destination_port.value}" if match.HasField("destination_port") else ""
    if match.prefix_ranges:
        cidrs = ",".join(f"{r.address_prefix}/{r.prefix_len.value}" for r in match.prefix_ranges)
        parts.append(f"Addr: {cidrs}{dport}")
    elif dport:
        parts.append(f"Addr: *{dport}")
    return "; ".join(parts) or "ALL"


def destination(chain: Any) -> str:
    for f in chain.filters:
        if _is_http(f):
            hcm = hcm_pb2.HttpConnectionManager()
            hcm.ParseFromString(f.typed_config.value)
            if hcm.HasField("route_config"):
                return describe_route_config(hcm.route_config)
            if hcm.rds.route_config_name:
                return f"Route: {hcm.rds.route_config_name}"
            return "HTTP"
        if _is_tcp(f) and BLACKHOLE not in f.typed_config.value:
            proxy = tcp_proxy_pb2.TcpProxy()
            proxy.ParseFromString(f.typed_config.value)
            return _cluster_text(proxy.cluster)
    return "Non-HTTP/Non-TCP"


def _cluster_text(cluster: str) -> str:
    return cluster if "Cluster" in cluster else f"Cluster: {cluster}"


def describe_route_config(config: Any) -> str:
    """An inline route configuration: its one match-all cluster, or its virtual hosts."""
    catch_all = _match_all_cluster(config)
    if catch_all:
        return catch_all
    vhosts = []
    for vhost in config.virtual_hosts:
        domains = "" if list(vhost.domains) == ["*"] else "/".join(vhost.domains)
        routes = ", ".join(describe_match(r.match) for r in vhost.routes)
        vhosts.append(f"{domains} {routes}" if domains else routes)
    return "Inline Route: " + "; ".join(vhosts)


def _match_all_cluster(config: Any) -> str:
    if len(config.virtual_hosts) != 1:
        return ""
    vhost = config.virtual_hosts[0]
    if list(vhost.domains) != ["*"] or len(vhost.routes) != 1:
        return ""
    route = vhost.routes[0]
    if route.match.prefix != "/" or route.WhichOneof("action") != "route":
        return ""
    if route.route.WhichOneof("cluster_specifier") != "cluster":
        return ""
    return _cluster_text(route.route.cluster)
