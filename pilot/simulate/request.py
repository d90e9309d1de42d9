"""The request `explain` replays: parsed from JSON (istiod's /debug/explain body) and turned
into a simulator `Call` for one proxy (where it lands depends on the proxy's kind)."""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pilot.model.proxy import InterceptionMode, NodeType, Proxy
from pilot.model.push_context import PushContext
from pilot.simulate.traffic import TLS, Call, CallMode
from pilot.simulate.traffic import Protocol as CallProtocol

_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}
)
# Where a REDIRECT-mode call goes when the host is no known service (any address would do).
UNKNOWN_DESTINATION = "240.240.240.240"


class RequestError(ValueError):
    """The request cannot be explained as given; the message names the field."""


@dataclass(frozen=True)
class ExplainRequest:
    method: str
    scheme: str
    host: str  # the Host header, with the port when the URL has one
    port: int
    path: str  # with the query string
    headers: Mapping[str, str] = field(default_factory=dict)
    source_principal: str = ""  # the peer's certificate URI SAN (spiffe://...)
    source_ip: str = "127.0.0.1"
    destination_ip: str = ""  # "" = where this proxy would receive the call
    inbound: bool = False  # the call arrives at the proxy's own workload

    @property
    def hostname(self) -> str:
        return self.host.rsplit(":", 1)[0] if ":" in self.host else self.host

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": f"{self.scheme}://{self.host}{self.path}",
            "headers": dict(self.headers),
            "sourcePrincipal": self.source_principal,
            "sourceIP": self.source_ip,
            "destinationIP": self.destination_ip,
            "port": self.port,
            "inbound": self.inbound,
        }


def _text(body: Mapping[str, Any], key: str, default: str = "") -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise RequestError(f'"{key}" must be a string')
    return value


def _ip(value: str, key: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise RequestError(f'"{key}": "{value}" is not an IP address') from None
    return value


def parse_request(body: Any) -> ExplainRequest:
    """`{"method": "GET", "url": "http://reviews:9080/api", "headers": {...},
    "sourcePrincipal": "...", "sourceIP": "...", "destinationIP": "...", "inbound": false,
    "port": 8080}`; `port` (the port dialled) overrides the URL's, which stays the Host."""
    if not isinstance(body, Mapping):
        raise RequestError("the request must be a JSON object")
    method = _text(body, "method", "GET").upper()
    if method not in _METHODS:
        raise RequestError(f'"method": unknown HTTP method "{method}"')
    url = _text(body, "url")
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestError(f'"url": "{url}" is not an http(s) URL with a host')
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RequestError(f'"url": "{url}" has an invalid port') from None
    override = body.get("port", 0)
    if not isinstance(override, int) or isinstance(override, bool) or not 0 <= override < 65536:
        raise RequestError('"port" must be a port number')
    port = override or port
    headers = body.get("headers") or {}
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise RequestError('"headers" must map header names to strings')
    source_ip = _ip(_text(body, "sourceIP", "127.0.0.1") or "127.0.0.1", "sourceIP")
    destination = _text(body, "destinationIP")
    inbound = body.get("inbound", False)
    if not isinstance(inbound, bool):
        raise RequestError('"inbound" must be true or false')
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return ExplainRequest(
        method=method,
        scheme=parts.scheme,
        host=parts.netloc.rsplit("@", 1)[-1],
        port=port,
        path=path,
        headers={k.lower(): v for k, v in headers.items()},
        source_principal=_text(body, "sourcePrincipal"),
        source_ip=source_ip,
        destination_ip=_ip(destination, "destinationIP") if destination else "",
        inbound=inbound,
    )


def _service_address(push: PushContext, proxy: Proxy, host: str) -> str:
    """The VIP a client would dial for `host` (short names resolve in the proxy's namespace)."""
    wanted = host.lower()
    candidates = (wanted, f"{wanted}.{proxy.namespace}.svc.", f"{wanted}.")
    for candidate in candidates:
        for svc in push.services.services:
            name = svc.hostname.lower()
            exact = name == candidate
            if (exact or (candidate.endswith(".") and name.startswith(candidate))) and (
                svc.address not in ("", "0.0.0.0")
            ):
                return svc.address
    return UNKNOWN_DESTINATION


def _bound_address(
    listeners: Mapping[str, Any], proxy: Proxy, port: int, own_only: bool = False
) -> str:
    """Where a client reaches this proxy on `port` without interception: the proxy's own IP
    when a listener is bound there, else (unless `own_only`: calls to the workload itself)
    a listener's address on that port."""
    found: list[str] = []
    for listener in listeners.values():
        sock = listener.address.socket_address
        if sock.port_value == port and not (
            listener.HasField("bind_to_port") and not listener.bind_to_port.value
        ):
            found.append(str(sock.address))
    for address in found:
        if address in proxy.ip_addresses:
            return address
    return found[0] if found and not own_only else proxy.ip


def to_call(
    request: ExplainRequest, proxy: Proxy, push: PushContext, listeners: Mapping[str, Any]
) -> Call:
    """The simulator call: inbound or outbound through iptables (REDIRECT: virtualInbound,
    virtualOutbound), or straight to a bound listener (gateways, NONE-mode sidecars, both
    directions)."""
    direct = proxy.type is NodeType.ROUTER or proxy.interception_mode is InterceptionMode.NONE
    if request.inbound and not direct:
        mode, address = CallMode.INBOUND, request.destination_ip or proxy.ip
    elif direct:
        # No iptables: an inbound call, too, reaches the listener bound on the workload's
        # own address and port (a NONE-mode sidecar has no virtualInbound).
        mode = CallMode.DIRECT
        address = request.destination_ip or _bound_address(
            listeners, proxy, request.port, own_only=request.inbound
        )
    else:
        mode = CallMode.OUTBOUND
        address = request.destination_ip or _service_address(push, proxy, request.hostname)
    mtls = request.inbound and bool(request.source_principal)
    return Call(
        address=address,
        port=request.port,
        host=request.host,
        path=request.path,
        method=request.method,
        headers=dict(request.headers),
        protocol=CallProtocol.HTTP,
        tls=TLS.MTLS if mtls else TLS.PLAINTEXT,
        alpn="istio-http/1.1" if mtls else "",
        mode=mode,
        scheme=request.scheme,
    )
