"""CUSTOM authorization providers: MeshConfig `extensionProviders` of type `envoyExtAuthzHttp`
and `envoyExtAuthzGrpc` → Envoy ext_authz filters (Istio's authz/builder/extauthz.go).

Each provider is resolved once per push: its service is looked up (`ns/host`, or a host that
exactly one namespace has), its settings validated as istiod does. A provider with any problem
keeps its errors; a CUSTOM policy using it then gets a DENY filter instead (fail closed).
An HTTP provider has no TCP form: CUSTOM policies using it are ignored on TCP chains.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2, http_uri_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2 as http_ext_authz_pb2
from envoy.extensions.filters.network.ext_authz.v3 import ext_authz_pb2 as tcp_ext_authz_pb2
from envoy.type.matcher.v3 import metadata_pb2, string_pb2
from envoy.type.v3 import http_status_pb2

from pilot.model.push_context import PushContext
from pilot.networking import naming
from pilot.networking.authz import matchers as m
from pilot.networking.protos import duration
from pkg.config.types import Duration
from pkg.config.validation.names import check_fqdn, check_namespace_slash_host, is_ip

log = logging.getLogger(__name__)

# Matches the policy names the CUSTOM shadow RBAC filter reports (naming.authz_policy_name).
EXT_AUTHZ_MATCH_PREFIX = "istio-ext-authz"
SHADOW_EFFECTIVE_POLICY_ID = "istio_ext_authz_shadow_effective_policy_id"
DEFAULT_TIMEOUT = Duration(600, 0)
_STATUS_CODES = frozenset(v.number for v in http_status_pb2.StatusCode.DESCRIPTOR.values)


@dataclass
class ExtAuthz:
    """A resolved provider: its HTTP and (gRPC providers only) TCP filter configs, or errors."""

    http: Any = None
    tcp: Any = None
    errors: list[str] = field(default_factory=list)


def filter_enabled_metadata(rbac_filter: str, provider: str) -> metadata_pb2.MetadataMatcher:
    """ext_authz runs only when the shadow RBAC filter matched a policy of this provider."""
    return m.metadata_value(
        rbac_filter,
        [SHADOW_EFFECTIVE_POLICY_ID],
        m.value_string(m.prefix(f"{EXT_AUTHZ_MATCH_PREFIX}-{provider}")),
    )


def _provider_name_problem(name: str) -> str | None:
    if len(name) > 63:
        return f"provider name too long (max 63 characters): {len(name)}"
    for i, c in enumerate(name):
        if (c.islower() and c.isascii()) or (c.isdigit() and c.isascii()) or c == "-":
            continue
        return f"invalid character {c!r} at position {i}"
    if name.startswith("-") or name.endswith("-"):
        return "provider name cannot start or end with hyphen"
    return None


def _service_problems(service: str) -> list[str]:
    if not service:
        return ["service must not be empty"]
    if "/" not in service:
        if check_fqdn(service) is not None and not is_ip(service):
            return [f"invalid service fmt {service}"]
        return []
    return check_namespace_slash_host(service, False, False)


def _port(raw: Mapping[str, Any]) -> tuple[int, list[str]]:
    port = raw.get("port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return 0, [f"port must be in the range [1, 65535], found: {port}"]
    return port, []


def _status(raw: Mapping[str, Any]) -> tuple[Any, list[str]]:
    text = str(raw.get("statusOnError", "") or "")
    if not text:
        return None, []
    try:
        code = int(text)
    except ValueError:
        return None, [f"invalid statusOnError {text!r}"]
    if code not in _STATUS_CODES:
        return None, [f"unsupported statusOnError {text}"]
    return http_status_pb2.HttpStatus(code=code), []


def lookup_cluster(push: PushContext, service: str, port: int) -> tuple[str, str, str | None]:
    """(hostname, cluster, error) of a provider's `service` (Istio's model.LookupCluster)."""
    if not service:
        return "", "", "service must not be empty"
    by_host = push.services.by_host
    if service.count("/") == 1:
        namespace, name = service.split("/")
        svc = by_host.get(name, {}).get(namespace)
        if svc is not None:
            return svc.hostname, naming.outbound_cluster(port, "", svc.hostname), None
    elif "/" not in service:
        owners = by_host.get(service, {})
        if len(owners) == 1:
            svc = next(iter(owners.values()))
            return svc.hostname, naming.outbound_cluster(port, "", svc.hostname), None
        if len(owners) > 1:
            return "", "", f"found {service} in multiple namespaces {sorted(owners)}"
    return "", "", f"could not find service {service} in Istio service registry"


def _timeout(raw: Mapping[str, Any], errors: list[str]) -> Any:
    value = raw.get("timeout")
    if value in (None, ""):
        return duration(DEFAULT_TIMEOUT)
    try:
        return duration(Duration.parse(str(value)))
    except ValueError as e:
        errors.append(f"invalid timeout {value!r}: {e}")
        return duration(DEFAULT_TIMEOUT)


def _headers(values: Sequence[str] | None) -> string_pb2.ListStringMatcher | None:
    if not values:
        return None
    patterns = []
    for header in values:
        if header.startswith("*"):
            patterns.append(m.suffix(header[1:], ignore_case=True))
        elif header.endswith("*"):
            patterns.append(m.prefix(header[:-1], ignore_case=True))
        else:
            patterns.append(m.exact(header, ignore_case=True))
    return string_pb2.ListStringMatcher(patterns=patterns)


def _body(raw: Mapping[str, Any]) -> http_ext_authz_pb2.BufferSettings | None:
    body = raw.get("includeRequestBodyInCheck")
    if not isinstance(body, Mapping):
        return None
    return http_ext_authz_pb2.BufferSettings(
        max_request_bytes=int(body.get("maxRequestBytes", 0) or 0),
        allow_partial_message=bool(body.get("allowPartialMessage", False)),
        pack_as_bytes=bool(body.get("packAsBytes", False)),
    )


def _common(push: PushContext, raw: Mapping[str, Any]) -> tuple[str, str, Any, Any, list[str]]:
    """(hostname, cluster, status, timeout, errors) shared by HTTP and gRPC providers."""
    port, errors = _port(raw)
    service = str(raw.get("service", "") or "")
    errors += _service_problems(service)
    status, problems = _status(raw)
    errors += problems
    hostname, cluster, error = lookup_cluster(push, service, port)
    if error:
        errors.append(error)
    timeout = _timeout(raw, errors)
    return hostname, cluster, status, timeout, errors


def _http_provider(push: PushContext, raw: Mapping[str, Any]) -> ExtAuthz:
    hostname, cluster, status, timeout, errors = _common(push, raw)
    path_prefix = str(raw.get("pathPrefix", "") or "")
    if path_prefix and not path_prefix.startswith("/"):
        errors.append(f"pathPrefix must begin with `/`, found: {path_prefix!r}")
    header_fields = (
        "includeRequestHeadersInCheck",
        "includeHeadersInCheck",
        "headersToDownstreamOnDeny",
        "headersToDownstreamOnAllow",
        "headersToUpstreamOnAllow",
    )
    for name in header_fields:
        if "*" in (raw.get(name) or ()):
            errors.append(f'a single wildcard ("*") is not supported: {name}')
    if errors:
        return ExtAuthz(errors=errors)
    service = http_ext_authz_pb2.HttpService(
        path_prefix=path_prefix,
        server_uri=http_uri_pb2.HttpUri(uri=f"http://{hostname}", cluster=cluster, timeout=timeout),
    )
    additional = raw.get("includeAdditionalHeadersInCheck") or {}
    for key in sorted(additional):
        service.authorization_request.headers_to_add.append(
            base_pb2.HeaderValue(key=key, value=str(additional[key]))
        )
    upstream = _headers(raw.get("headersToUpstreamOnAllow"))
    on_deny = _headers(raw.get("headersToDownstreamOnDeny"))
    on_allow = _headers(raw.get("headersToDownstreamOnAllow"))
    if upstream or on_deny or on_allow:
        response = service.authorization_response
        response.SetInParent()
        if upstream:
            response.allowed_upstream_headers.CopyFrom(upstream)
        if on_deny:
            response.allowed_client_headers.CopyFrom(on_deny)
        if on_allow:
            response.allowed_client_headers_on_success.CopyFrom(on_allow)
    http = http_ext_authz_pb2.ExtAuthz(
        failure_mode_allow=bool(raw.get("failOpen", False)),
        transport_api_version=config_source_pb2.V3,
        http_service=service,
    )
    if status is not None:
        http.status_on_error.CopyFrom(status)
    body = _body(raw)
    if body is not None:
        http.with_request_body.CopyFrom(body)
    # includeHeadersInCheck is the deprecated name, used only without the new one.
    allowed = _headers(raw.get("includeRequestHeadersInCheck")) or _headers(
        raw.get("includeHeadersInCheck")
    )
    if allowed is not None:
        http.allowed_headers.CopyFrom(allowed)
    return ExtAuthz(http=http)


def _grpc_provider(push: PushContext, raw: Mapping[str, Any]) -> ExtAuthz:
    hostname, cluster, status, timeout, errors = _common(push, raw)
    if errors:
        return ExtAuthz(errors=errors)
    grpc = grpc_service_pb2.GrpcService(
        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=cluster, authority=hostname),
        timeout=timeout,
    )
    fail_open = bool(raw.get("failOpen", False))
    http = http_ext_authz_pb2.ExtAuthz(
        failure_mode_allow=fail_open,
        grpc_service=grpc,
        transport_api_version=config_source_pb2.V3,
    )
    if status is not None:
        http.status_on_error.CopyFrom(status)
    body = _body(raw)
    if body is not None:
        http.with_request_body.CopyFrom(body)
    tcp = tcp_ext_authz_pb2.ExtAuthz(
        stat_prefix="tcp.",
        failure_mode_allow=fail_open,
        transport_api_version=config_source_pb2.V3,
        grpc_service=grpc,
    )
    return ExtAuthz(http=http, tcp=tcp)


def resolve_providers(push: PushContext) -> dict[str, ExtAuthz]:
    """Every ext_authz provider of the mesh config by name (other provider types are not
    authorization providers and are left out)."""
    resolved: dict[str, ExtAuthz] = {}
    for index, raw in enumerate(push.mesh.extension_providers):
        name = str(raw.get("name", "") or "")
        errors: list[str] = []
        if not name:
            errors.append(f"extension provider name must not be empty, found at index: {index}")
        elif name in resolved:
            errors.append(f"extension provider name must be unique, found duplicate: {name}")
        if name:
            problem = _provider_name_problem(name)
            if problem:
                errors.append(f"invalid provider name {name!r}: {problem}")
        if isinstance(raw.get("envoyExtAuthzHttp"), Mapping):
            built = _http_provider(push, raw["envoyExtAuthzHttp"])
        elif isinstance(raw.get("envoyExtAuthzGrpc"), Mapping):
            built = _grpc_provider(push, raw["envoyExtAuthzGrpc"])
        else:
            continue
        built.errors = errors + built.errors
        if built.errors:
            log.warning("extension provider %r: %s", name, "; ".join(built.errors))
        resolved[name] = built
    return resolved


def providers(push: PushContext) -> dict[str, ExtAuthz]:
    """`resolve_providers`, once per push."""
    return push.memo(("authz", "ext-authz-providers"), lambda: resolve_providers(push))


def find_provider(resolved: Mapping[str, ExtAuthz], name: str) -> tuple[ExtAuthz | None, str]:
    found = resolved.get(name)
    if found is None:
        return None, f"available providers are {sorted(resolved)} but found {name!r}"
    if found.errors:
        return None, f"found errors in provider {name}: {'; '.join(found.errors)}"
    return found, ""
