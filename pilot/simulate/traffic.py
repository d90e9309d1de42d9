"""Send a simulated call through one proxy's generated xDS (Envoy's selection rules).

A re-implementation of Istio's `pilot/pkg/simulation/traffic.go` on our decoded protobufs,
following Envoy's own selection rules step by step:

1. listener: REDIRECT-mode outbound calls land on `virtualOutbound` and are handed off (its
   `use_original_dst`) to the listener at the original destination `address:port`, else the
   one on `0.0.0.0:port`, else stay there; inbound calls land on `virtualInbound`; direct calls
   (NONE mode, gateways) reach a listener bound to `address:port` or `0.0.0.0:port`;
2. listener filters: tls_inspector reads SNI/ALPN of TLS calls, http_inspector gives plaintext
   HTTP the ALPN `http/1.1` (`h2c` for HTTP/2); the transport is `tls` or `raw_buffer`;
3. filter chain: Envoy's FilterChainMatch sieve (`simulate_match.select_filter_chain`);
4. HTTP: the route configuration (inline or RDS), virtual host, route and its action; TCP: the
   tcp_proxy cluster(s);
5. the cluster, and the endpoints it would pick from (EDS assignment, inline load assignment,
   or the original destination).

`Simulation(resources).run(Call(...))` returns a `Result`; errors are `Result.error` values,
named as in Istio (no listener, no filter chain, no virtual host = 404, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import health_check_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf.json_format import MessageToDict

from pilot.simulate.match import (
    Connection,
    active_listener_filters,
    match_route,
    match_virtual_host,
    matching_filter_chains,
)
from pilot.simulate.resources import HCM_TYPE, ProxyResources, eds_service_name

HTTP_INSPECTOR = "envoy.filters.listener.http_inspector"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
TCP_PROXY_TYPE = "type.googleapis.com/" + tcp_proxy_pb2.TcpProxy.DESCRIPTOR.full_name
VIRTUAL_OUTBOUND = "virtualOutbound"
VIRTUAL_INBOUND = "virtualInbound"
_WILDCARDS = ("0.0.0.0", "::")


class Protocol(StrEnum):
    HTTP = "http"
    HTTP2 = "http2"
    TCP = "tcp"


class TLS(StrEnum):
    PLAINTEXT = "plaintext"
    TLS = "tls"
    MTLS = "mtls"


class CallMode(StrEnum):
    OUTBOUND = "outbound"  # iptables REDIRECT to virtualOutbound (15001)
    INBOUND = "inbound"  # iptables REDIRECT to virtualInbound (15006)
    DIRECT = "direct"  # no iptables: NONE-mode sidecars and gateways


class Error(StrEnum):
    NO_LISTENER = "no listener matched"
    NO_FILTER_CHAIN = "no filter chains matched"
    MULTIPLE_FILTER_CHAINS = "multiple filter chains matched"
    PROTOCOL_ERROR = "protocol error"  # e.g. raw TCP or TLS bytes into an HTTP manager
    TLS_ERROR = "invalid TLS"  # plaintext into a chain that terminates TLS
    NO_ROUTE_CONFIG = "route configuration not found"
    NO_VIRTUAL_HOST = "no virtual host matched"  # Envoy answers 404
    TLS_REDIRECT = "tls required, sending 301"
    NO_ROUTE = "no route matched"  # Envoy answers 404 (NR)
    NO_CLUSTER = "cluster not found"  # Envoy answers 503 (NC)


@dataclass(frozen=True)
class Call:
    address: str = "1.3.3.7"  # destination IP (the original destination in REDIRECT mode)
    port: int = 80
    host: str = ""  # Host / :authority header
    path: str = "/"  # with an optional query string
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    protocol: Protocol = Protocol.HTTP
    tls: TLS = TLS.PLAINTEXT
    sni: str = ""
    alpn: str = ""  # TLS ALPN offered by the client
    mode: CallMode = CallMode.OUTBOUND
    scheme: str = "http"

    def request_headers(self) -> dict[str, str]:
        """Lower-cased request headers including the HTTP/2 pseudo-headers."""
        out = {k.lower(): v for k, v in self.headers.items()}
        out[":authority"] = self.host
        out[":method"] = self.method
        out[":path"] = self.path
        out[":scheme"] = self.scheme
        if self.host:
            out.setdefault("host", self.host)
        return out


@dataclass(frozen=True)
class Result:
    error: Error | None = None
    listener: str = ""
    filter_chain: str = ""
    route_config: str = ""
    virtual_host: str = ""
    route: str = ""  # the route's name ("" for unnamed VirtualService routes)
    cluster: str = ""
    weighted_clusters: tuple[tuple[str, int], ...] = ()
    direct_response: int = 0  # status of a direct response
    redirect: str = ""  # "host/path" of a redirect
    endpoints: tuple[str, ...] = ()  # where `cluster` sends traffic ("ip:port")
    route_proto: Any = field(default=None, compare=False, repr=False)
    chain_proto: Any = field(default=None, compare=False, repr=False)

    @property
    def terminates_tls(self) -> bool:
        """The matched filter chain terminates TLS (has a transport socket)."""
        return self.chain_proto is not None and self.chain_proto.HasField("transport_socket")

    @property
    def clusters(self) -> tuple[str, ...]:
        """Every cluster the call may reach (one, or the weighted ones)."""
        if self.weighted_clusters:
            return tuple(name for name, _ in self.weighted_clusters)
        return (self.cluster,) if self.cluster else ()


def _is_wildcard(address: str) -> bool:
    return address in _WILDCARDS


class Simulation:
    def __init__(self, resources: ProxyResources) -> None:
        self.resources = resources
        self.listeners = resources.listeners
        self.routes = resources.routes
        self.clusters = resources.clusters
        self.endpoints_by_name = resources.endpoints

    # ---- listener ---------------------------------------------------------------------

    def _by_address(self, address: str, port: int, bound_only: bool) -> Any | None:
        candidates = [
            lst
            for lst in self.listeners.values()
            if lst.address.HasField("socket_address")
            and lst.address.socket_address.port_value == port
            and (not bound_only or not lst.HasField("bind_to_port") or lst.bind_to_port.value)
        ]
        for lst in candidates:
            if lst.address.socket_address.address == address:
                return lst
        for lst in candidates:
            if _is_wildcard(lst.address.socket_address.address):
                return lst
        return None

    def match_listener(self, call: Call) -> Any | None:
        if call.mode is CallMode.INBOUND:
            return self.listeners.get(VIRTUAL_INBOUND)
        if call.mode is CallMode.DIRECT:
            return self._by_address(call.address, call.port, bound_only=True)
        outbound = self.listeners.get(VIRTUAL_OUTBOUND)
        if outbound is None:
            return None
        if outbound.use_original_dst.value:
            target = self._by_address(call.address, call.port, bound_only=False)
            if target is not None:
                return target
        return outbound

    # ---- the call ---------------------------------------------------------------------

    def run(self, call: Call) -> Result:
        listener = self.match_listener(call)
        if listener is None:
            return Result(Error.NO_LISTENER)
        result = Result(listener=listener.name)
        filters = active_listener_filters(listener, call.port)
        tls = call.tls is not TLS.PLAINTEXT and TLS_INSPECTOR in filters
        alpn = call.alpn if tls else ""
        if call.tls is TLS.PLAINTEXT and HTTP_INSPECTOR in filters:
            alpn = {Protocol.HTTP: "http/1.1", Protocol.HTTP2: "h2c"}.get(call.protocol, "")
        connection = Connection(
            port=call.port,
            address=call.address,
            transport="tls" if tls else "raw_buffer",
            sni=call.sni if tls else "",
            alpn=alpn,
        )
        chains = matching_filter_chains(listener, connection)
        if len(chains) > 1:
            return replace(result, error=Error.MULTIPLE_FILTER_CHAINS)
        if chains:
            chain = chains[0]
        elif listener.HasField("default_filter_chain"):
            chain = listener.default_filter_chain
        else:
            return replace(result, error=Error.NO_FILTER_CHAIN)
        result = replace(result, filter_chain=chain.name, chain_proto=chain)
        if chain.HasField("transport_socket") and call.tls is TLS.PLAINTEXT:
            return replace(result, error=Error.TLS_ERROR)
        if call.tls is TLS.TLS and _requires_client_certificate(chain.transport_socket):
            return replace(result, error=Error.TLS_ERROR)
        for f in chain.filters:
            if f.typed_config.type_url == HCM_TYPE:
                hcm = hcm_pb2.HttpConnectionManager()
                f.typed_config.Unpack(hcm)
                return self._http(result, chain, hcm, call)
            if f.typed_config.type_url == TCP_PROXY_TYPE:
                proxy = tcp_proxy_pb2.TcpProxy()
                f.typed_config.Unpack(proxy)
                if proxy.WhichOneof("cluster_specifier") == "weighted_clusters":
                    weighted = tuple((c.name, c.weight) for c in proxy.weighted_clusters.clusters)
                    return replace(result, weighted_clusters=weighted)
                return self._with_cluster(result, proxy.cluster, call)
        return result

    def _http(self, result: Result, chain: Any, hcm: Any, call: Call) -> Result:
        if call.protocol is Protocol.TCP:
            return replace(result, error=Error.PROTOCOL_ERROR)
        if call.tls is not TLS.PLAINTEXT and not chain.HasField("transport_socket"):
            return replace(result, error=Error.PROTOCOL_ERROR)
        if hcm.HasField("route_config"):
            config = hcm.route_config
        else:
            name = hcm.rds.route_config_name
            result = replace(result, route_config=name)
            config = self.routes.get(name)
            if config is None:
                return replace(result, error=Error.NO_ROUTE_CONFIG)
        vhost = match_virtual_host(config, call.host)
        if vhost is None:
            return replace(result, error=Error.NO_VIRTUAL_HOST)
        result = replace(result, virtual_host=vhost.name)
        if vhost.require_tls == route_components_pb2.VirtualHost.ALL and call.tls is TLS.PLAINTEXT:
            return replace(result, error=Error.TLS_REDIRECT)
        route = match_route(vhost, call.request_headers())
        if route is None:
            return replace(result, error=Error.NO_ROUTE)
        result = replace(result, route=route.name, route_proto=route)
        action = route.WhichOneof("action")
        if action == "direct_response":
            return replace(result, direct_response=route.direct_response.status)
        if action == "redirect":
            redirect = route.redirect
            host = redirect.host_redirect or call.host
            path = redirect.path_redirect or call.path
            return replace(result, redirect=f"{host}{path}")
        if action != "route":
            return result
        specifier = route.route.WhichOneof("cluster_specifier")
        if specifier == "weighted_clusters":
            weighted = tuple(
                (c.name, c.weight.value) for c in route.route.weighted_clusters.clusters
            )
            return replace(result, weighted_clusters=weighted)
        if specifier == "cluster":
            return self._with_cluster(result, route.route.cluster, call)
        return result

    # ---- clusters -----------------------------------------------------------------------

    def _with_cluster(self, result: Result, name: str, call: Call) -> Result:
        result = replace(result, cluster=name)
        if name not in self.clusters:
            return replace(result, error=Error.NO_CLUSTER)
        return replace(result, endpoints=self.cluster_endpoints(name, call))

    def cluster_endpoints(self, name: str, call: Call | None = None) -> tuple[str, ...]:
        """Addresses traffic to cluster `name` may reach: healthy endpoints (all of them when
        none is healthy, Envoy's panic mode); the original destination for ORIGINAL_DST."""
        cluster = self.clusters[name]
        if cluster.type == cluster_pb2.Cluster.ORIGINAL_DST:
            return (f"{call.address}:{call.port}",) if call is not None else ()
        if cluster.type == cluster_pb2.Cluster.EDS:
            assignment = self.endpoints_by_name.get(eds_service_name(cluster))
        else:
            assignment = cluster.load_assignment
        if assignment is None:
            return ()
        healthy: list[str] = []
        every: list[str] = []
        for group in assignment.endpoints:
            for lb in group.lb_endpoints:
                address = lb.endpoint.address
                if address.HasField("pipe"):
                    text = "unix://" + address.pipe.path
                else:
                    text = f"{address.socket_address.address}:{address.socket_address.port_value}"
                every.append(text)
                if lb.health_status not in (
                    health_check_pb2.UNHEALTHY,
                    health_check_pb2.DRAINING,
                    health_check_pb2.TIMEOUT,
                ):
                    healthy.append(text)
        return tuple(sorted(healthy or every))

    def upstream_tls(self, cluster_name: str, endpoint: str) -> UpstreamTLS:
        """How the proxy connects to `endpoint` ("ip:port") of a cluster: Envoy picks the first
        transport_socket_matches entry whose `match` is a subset of the endpoint's
        `envoy.transport_socket_match` metadata, else the cluster's transport_socket."""
        cluster = self.clusters[cluster_name]
        metadata = self._endpoint_socket_metadata(cluster, endpoint)
        for entry in cluster.transport_socket_matches:
            wanted = MessageToDict(entry.match)
            if all(metadata.get(k) == v for k, v in wanted.items()):
                return _describe_socket(entry.transport_socket)
        if cluster.HasField("transport_socket"):
            return _describe_socket(cluster.transport_socket)
        return UpstreamTLS(TLS.PLAINTEXT)

    def _endpoint_socket_metadata(self, cluster: Any, endpoint: str) -> dict[str, Any]:
        if cluster.type == cluster_pb2.Cluster.EDS:
            assignment = self.endpoints_by_name.get(eds_service_name(cluster))
        else:
            assignment = cluster.load_assignment
        for group in assignment.endpoints if assignment is not None else ():
            for lb in group.lb_endpoints:
                socket = lb.endpoint.address.socket_address
                if f"{socket.address}:{socket.port_value}" == endpoint:
                    fields = lb.metadata.filter_metadata.get(SOCKET_MATCH_METADATA)
                    return MessageToDict(fields) if fields is not None else {}
        raise AssertionError(f"{endpoint} is not an endpoint of {cluster.name}")


SOCKET_MATCH_METADATA = "envoy.transport_socket_match"


@dataclass(frozen=True)
class UpstreamTLS:
    """The upstream side of a connection: plaintext, TLS, or mutual TLS with these SDS
    secrets, SNI, ALPN and peer SANs."""

    tls: TLS
    sni: str = ""
    alpn: tuple[str, ...] = ()
    certificate: str = ""  # SDS name of the client certificate (mutual TLS)
    validation: str = ""  # SDS name of the trust bundle
    sans: tuple[str, ...] = ()


def _unpack_tls(socket: Any, message: Any) -> Any | None:
    if socket.name != "envoy.transport_sockets.tls":
        return None
    if not socket.typed_config.Is(message.DESCRIPTOR):
        return None
    socket.typed_config.Unpack(message)
    return message


def _requires_client_certificate(socket: Any) -> bool:
    context = _unpack_tls(socket, tls_pb2.DownstreamTlsContext())
    return context is not None and context.require_client_certificate.value


def _describe_socket(socket: Any) -> UpstreamTLS:
    context = _unpack_tls(socket, tls_pb2.UpstreamTlsContext())
    if context is None:
        return UpstreamTLS(TLS.PLAINTEXT)
    common = context.common_tls_context
    certs = [c.name for c in common.tls_certificate_sds_secret_configs]
    if common.HasField("combined_validation_context"):
        combined = common.combined_validation_context
        validation = combined.validation_context_sds_secret_config.name
        sans = combined.default_validation_context.match_typed_subject_alt_names
    else:
        validation = common.validation_context_sds_secret_config.name
        sans = common.validation_context.match_typed_subject_alt_names
    return UpstreamTLS(
        TLS.MTLS if certs else TLS.TLS,
        sni=context.sni,
        alpn=tuple(common.alpn_protocols),
        certificate=certs[0] if certs else "",
        validation=validation,
        sans=tuple(m.matcher.exact or m.matcher.prefix for m in sans),
    )
