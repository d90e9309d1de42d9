"""VirtualService (networking/v1alpha3/virtual_service.proto).

Nested proto types become top-level classes under their own name: `Headers.HeaderOperations`
→ `HeaderOperations`, `HTTPFaultInjection.Delay` → `Delay`, `HTTPFaultInjection.Abort` →
`Abort`, `HTTPRedirect.RedirectPortSelection` → `RedirectPortSelection`,
`CorsPolicy.UnmatchedPreflights` → `UnmatchedPreflights`. Proto `oneof` members are
`T | None` fields; each class lists its oneof groups in `ONEOFS` (Python field names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from pkg.config.fields import (
    int32,
    mapping,
    optional,
    repeated,
    schema,
    string,
    uint32,
    wrapper,
)
from pkg.config.types import Duration

_Bytes = bytes  # HTTPBody has a field named `bytes`


@dataclass(frozen=True, slots=True)
class PortSelector:
    """Selects a port of the destination service by number."""

    number: int = uint32()


@dataclass(frozen=True, slots=True)
class Destination:
    host: str = string(required=True)
    subset: str = ""
    port: PortSelector | None = None


@dataclass(frozen=True, slots=True)
class Percent:
    value: float = 0.0


@dataclass(frozen=True, slots=True)
class StringMatch:
    ONEOFS: ClassVar[tuple[tuple[str, ...], ...]] = (("exact", "prefix", "regex"),)

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None


@dataclass(frozen=True, slots=True)
class HeaderOperations:
    set: Mapping[str, str] = mapping()
    add: Mapping[str, str] = mapping()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Headers:
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


@dataclass(frozen=True, slots=True)
class Delegate:
    name: str = ""
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class HTTPMatchRequest:
    name: str = ""
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: Mapping[str, StringMatch] = mapping()
    port: int = uint32()
    source_labels: Mapping[str, str] = mapping()
    gateways: tuple[str, ...] = ()
    query_params: Mapping[str, StringMatch] = mapping()
    ignore_uri_case: bool = False
    without_headers: Mapping[str, StringMatch] = mapping()
    source_namespace: str = ""
    stat_prefix: str = ""


@dataclass(frozen=True, slots=True)
class HTTPRouteDestination:
    destination: Destination | None = field(default=None, metadata=schema(required=True))
    weight: int = int32()
    headers: Headers | None = None


@dataclass(frozen=True, slots=True)
class RouteDestination:
    destination: Destination | None = field(default=None, metadata=schema(required=True))
    weight: int = int32()


@dataclass(frozen=True, slots=True)
class L4MatchAttributes:
    destination_subnets: tuple[str, ...] = ()
    port: int = uint32()
    source_subnet: str = ""
    source_labels: Mapping[str, str] = mapping()
    gateways: tuple[str, ...] = ()
    source_namespace: str = ""


@dataclass(frozen=True, slots=True)
class TLSMatchAttributes:
    sni_hosts: tuple[str, ...] = repeated(required=True)
    destination_subnets: tuple[str, ...] = ()
    port: int = uint32()
    source_labels: Mapping[str, str] = mapping()
    gateways: tuple[str, ...] = ()
    source_namespace: str = ""


class RedirectPortSelection(StrEnum):
    FROM_PROTOCOL_DEFAULT = "FROM_PROTOCOL_DEFAULT"
    FROM_REQUEST_PORT = "FROM_REQUEST_PORT"


@dataclass(frozen=True, slots=True)
class HTTPRedirect:
    ONEOFS: ClassVar[tuple[tuple[str, ...], ...]] = (("port", "derive_port"),)

    uri: str = ""
    authority: str = ""
    port: int | None = optional(fmt="uint32")
    derive_port: RedirectPortSelection | None = None
    scheme: str = ""
    redirect_code: int = uint32()
    prefix_rewrite: str = ""


@dataclass(frozen=True, slots=True)
class HTTPBody:
    ONEOFS: ClassVar[tuple[tuple[str, ...], ...]] = (("string", "bytes"),)

    string: str | None = None
    bytes: _Bytes | None = field(default=None, metadata=schema(fmt="bytes"))


@dataclass(frozen=True, slots=True)
class HTTPDirectResponse:
    status: int = uint32(required=True)
    body: HTTPBody | None = None


@dataclass(frozen=True, slots=True)
class RegexRewrite:
    match: str = ""
    rewrite: str = ""


@dataclass(frozen=True, slots=True)
class HTTPRewrite:
    uri: str = ""
    authority: str = ""
    uri_regex_rewrite: RegexRewrite | None = None


@dataclass(frozen=True, slots=True)
class HTTPRetry:
    attempts: int = int32()
    per_try_timeout: Duration | None = None
    retry_on: str = ""
    retry_remote_localities: bool | None = wrapper()
    retry_ignore_previous_hosts: bool | None = wrapper()
    backoff: Duration | None = None


class UnmatchedPreflights(StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    FORWARD = "FORWARD"
    IGNORE = "IGNORE"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    allow_origin: tuple[str, ...] = ()  # deprecated: use allow_origins
    allow_origins: tuple[StringMatch, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: Duration | None = None
    allow_credentials: bool | None = wrapper()
    unmatched_preflights: UnmatchedPreflights = UnmatchedPreflights.UNSPECIFIED


@dataclass(frozen=True, slots=True)
class Delay:
    """HTTPFaultInjection.Delay."""

    ONEOFS: ClassVar[tuple[tuple[str, ...], ...]] = (("fixed_delay", "exponential_delay"),)

    percent: int = int32()  # deprecated: use percentage
    fixed_delay: Duration | None = None
    exponential_delay: Duration | None = None
    percentage: Percent | None = None


@dataclass(frozen=True, slots=True)
class Abort:
    """HTTPFaultInjection.Abort."""

    ONEOFS: ClassVar[tuple[tuple[str, ...], ...]] = (("http_status", "grpc_status", "http2_error"),)

    http_status: int | None = optional(fmt="int32")
    grpc_status: str | None = None
    http2_error: str | None = None
    percentage: Percent | None = None


@dataclass(frozen=True, slots=True)
class HTTPFaultInjection:
    delay: Delay | None = None
    abort: Abort | None = None


@dataclass(frozen=True, slots=True)
class HTTPMirrorPolicy:
    destination: Destination | None = field(default=None, metadata=schema(required=True))
    percentage: Percent | None = None


@dataclass(frozen=True, slots=True)
class HTTPRoute:
    name: str = ""
    match: tuple[HTTPMatchRequest, ...] = ()
    route: tuple[HTTPRouteDestination, ...] = ()
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: Duration | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrors: tuple[HTTPMirrorPolicy, ...] = ()
    # deprecated: use mirror_percentage. The CRD also accepts the proto name `mirror_percent`.
    mirror_percent: int | None = wrapper("uint32", aliases=("mirror_percent",))
    mirror_percentage: Percent | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None


@dataclass(frozen=True, slots=True)
class TLSRoute:
    match: tuple[TLSMatchAttributes, ...] = repeated(required=True)
    route: tuple[RouteDestination, ...] = ()


@dataclass(frozen=True, slots=True)
class TCPRoute:
    match: tuple[L4MatchAttributes, ...] = ()
    route: tuple[RouteDestination, ...] = ()


@dataclass(frozen=True, slots=True)
class VirtualService:
    hosts: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    http: tuple[HTTPRoute, ...] = ()
    tls: tuple[TLSRoute, ...] = ()
    tcp: tuple[TCPRoute, ...] = ()
    export_to: tuple[str, ...] = ()


__all__ = [
    "Abort",
    "CorsPolicy",
    "Delay",
    "Delegate",
    "Destination",
    "HTTPBody",
    "HTTPDirectResponse",
    "HTTPFaultInjection",
    "HTTPMatchRequest",
    "HTTPMirrorPolicy",
    "HTTPRedirect",
    "HTTPRetry",
    "HTTPRewrite",
    "HTTPRoute",
    "HTTPRouteDestination",
    "HeaderOperations",
    "Headers",
    "L4MatchAttributes",
    "Percent",
    "PortSelector",
    "RedirectPortSelection",
    "RegexRewrite",
    "RouteDestination",
    "StringMatch",
    "TCPRoute",
    "TLSMatchAttributes",
    "TLSRoute",
    "UnmatchedPreflights",
    "VirtualService",
]
