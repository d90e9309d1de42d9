"""One VirtualService HTTPRoute (x one match) → one Envoy Route (Istio's TranslateRoute).

Covers destinations (single cluster or weighted clusters, weight-0 entries dropped), subsets,
timeout (none = disabled, as Istio), retries (Istio's default policy when a route names none),
header operations, rewrite, mirrors, CORS, fault, redirect and direct response. Each route
carries provenance metadata `istio.config` naming the VirtualService it came from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as route_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import (
    previous_priorities_config_pb2,
)
from envoy.type.matcher.v3 import regex_pb2

from pilot.model.service import Service
from pilot.model.virtual_service_index import BoundVirtualService
from pilot.networking import naming
from pilot.networking.fault import translate_fault
from pilot.networking.filters import CORS, FAULT
from pilot.networking.protos import duration, metadata, to_any
from pilot.networking.route_match import translate_route_match
from pilot.networking.route_policy import mirror_policies, translate_cors
from pkg.config.host import resolve_short_name

log = logging.getLogger(__name__)

DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
_HTTP_STATUS_CODES = frozenset(range(100, 600))

ServiceLookup = Callable[[str], Service | None]


def destination_cluster(dest: Any, host: str, svc: Service | None, listen_port: int) -> str:
    """Istio's GetDestinationCluster: the destination port, else the service's only port,
    else the listener port."""
    if svc is not None and svc.external_name:
        host = svc.external_name
    port = listen_port
    if dest.port is not None and dest.port.number:
        port = int(dest.port.number)
    elif svc is not None and len(svc.ports) == 1:
        port = svc.ports[0].port
    return naming.outbound_cluster(port, dest.subset, host)


def _parse_retry_on(value: str) -> tuple[str, list[int]]:
    codes: list[int] = []
    names: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if part.isdigit() and int(part) in _HTTP_STATUS_CODES:
            codes.append(int(part))
        else:
            names.append(part)
    return ",".join(names), codes


def _previous_hosts() -> Any:
    return route_pb2.RetryPolicy.RetryHostPredicate(
        name="envoy.retry_host_predicates.previous_hosts",
        typed_config=to_any(previous_hosts_pb2.PreviousHostsPredicate()),
    )


def default_retry_policy(consistent_hash: bool = False) -> Any:
    out = route_pb2.RetryPolicy(retry_on=DEFAULT_RETRY_ON, host_selection_retry_max_attempts=5)
    out.num_retries.value = 2
    if not consistent_hash:
        out.retry_host_predicate.append(_previous_hosts())
    return out


def retry_policy(retries: Any, consistent_hash: bool = False) -> Any | None:
    """Istio's retry.ConvertPolicy."""
    if retries is None:
        return default_retry_policy(consistent_hash)
    if retries.attempts <= 0:
        return None
    out = default_retry_policy(consistent_hash)
    out.num_retries.value = retries.attempts
    if retries.retry_on:
        retry_on, codes = _parse_retry_on(retries.retry_on)
        if codes and "retriable-status-codes" not in retry_on:
            retry_on = (
                f"{retry_on},retriable-status-codes" if retry_on else "retriable-status-codes"
            )
        out.retry_on = retry_on
        out.retriable_status_codes.extend(codes)
    if retries.per_try_timeout is not None:
        out.per_try_timeout.CopyFrom(duration(retries.per_try_timeout))
    if retries.retry_ignore_previous_hosts is not None:
        del out.retry_host_predicate[:]
        if retries.retry_ignore_previous_hosts:
            out.retry_host_predicate.append(_previous_hosts())
    if retries.retry_remote_localities:
        out.retry_priority.name = "envoy.retry_priorities.previous_priorities"
        out.retry_priority.typed_config.CopyFrom(
            to_any(previous_priorities_config_pb2.PreviousPrioritiesConfig(update_frequency=2))
        )
    if retries.backoff is not None:
        out.retry_back_off.base_interval.CopyFrom(duration(retries.backoff))
    return out


def _header_options(values: Mapping[str, str], append: bool) -> tuple[list[Any], str]:
    authority = ""
    out = []
    for key in sorted(values):
        value = values[key]
        if key.lower() in (":authority", "host"):
            authority = value
        if key.startswith(":") or key.lower() == "host":
            continue
        option = base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, value=value))
        option.append_action = (
            base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
            if append
            else base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
        )
        out.append(option)
    return out, authority


def _drop_internal(keys: Collection[str]) -> list[str]:
    return [k for k in keys if not (k.startswith(":") or k.lower() == "host")]


class HeaderOps:
    def __init__(self, headers: Any) -> None:
        req = headers.request if headers is not None else None
        resp = headers.response if headers is not None else None
        req_set, set_auth = _header_options(req.set if req else {}, False)
        req_add, add_auth = _header_options(req.add if req else {}, True)
        resp_set, _ = _header_options(resp.set if resp else {}, False)
        resp_add, _ = _header_options(resp.add if resp else {}, True)
        self.request_add = req_set + req_add
        self.response_add = resp_set + resp_add
        self.request_remove = _drop_internal(req.remove if req else ())
        self.response_remove = _drop_internal(resp.remove if resp else ())
        self.authority = set_auth or add_auth


def route_operation(route: Any, vs_name: str, port: int) -> str:
    """Istio's decorator operation: `host:port/path*` for one cluster, else `vs:port/path*`."""
    match = route.match
    which = match.WhichOneof("path_specifier")
    path = "/*"
    if which == "prefix":
        path = match.prefix + "*"
    elif which == "path":
        path = match.path
    elif which == "safe_regex":
        path = match.safe_regex.regex
    if route.HasField("route") and route.route.WhichOneof("cluster_specifier") == "cluster":
        key = naming.parse_subset_key(route.route.cluster)
        if key is not None and route.route.cluster.count("|") == 3:
            return f"{key.host}:{key.port}{path}"
    return f"{vs_name}:{port}{path}"


def source_matches(
    match: Any | None, labels: Mapping[str, str], gateways: Collection[str], namespace: str
) -> bool:
    """Istio's sourceMatchHTTP: match.gateways, else sourceLabels ⊆ labels and sourceNamespace."""
    if match is None:
        return True
    if match.gateways:
        return any(g in gateways for g in match.gateways)
    if not all(labels.get(k) == v for k, v in match.source_labels.items()):
        return False
    return not match.source_namespace or match.source_namespace == namespace


def translate_route(
    vs: BoundVirtualService,
    http: Any,
    match: Any | None,
    listen_port: int,
    lookup_service: ServiceLookup,
    domain_suffix: str,
    *,
    proxy_labels: Mapping[str, str],
    proxy_namespace: str,
    gateway_names: Collection[str],
    default_retries: Any = None,
    is_tls: bool = False,
) -> Any | None:
    if match is not None and match.port and int(match.port) != listen_port:
        return None
    if not source_matches(match, proxy_labels, gateway_names, proxy_namespace):
        return None
    name = http.name
    if match is not None and match.name:
        name = f"{name}.{match.name}"
    out = route_pb2.Route(name=name, match=translate_route_match(match))
    if match is not None and match.stat_prefix:
        out.stat_prefix = match.stat_prefix
    out.metadata.CopyFrom(
        metadata({"istio": {"config": naming.virtual_service_config_path(vs.namespace, vs.name)}})
    )
    ops = HeaderOps(http.headers)
    out.request_headers_to_add.extend(ops.request_add)
    out.response_headers_to_add.extend(ops.response_add)
    out.request_headers_to_remove.extend(ops.request_remove)
    out.response_headers_to_remove.extend(ops.response_remove)
    if http.redirect is not None:
        if not _apply_redirect(out, http.redirect, listen_port, is_tls):
            log.warning("redirect code %s is not supported", http.redirect.redirect_code)
            return None
    elif http.direct_response is not None:
        _apply_direct_response(out, http.direct_response)
    else:
        _apply_destinations(
            out, vs, http, listen_port, lookup_service, domain_suffix, ops.authority,
            default_retries,
        )  # fmt: skip
    out.decorator.operation = route_operation(out, vs.name, listen_port)
    fault = translate_fault(http.fault)
    if fault is not None:
        out.typed_per_filter_config[FAULT].CopyFrom(to_any(fault))
    if http.cors_policy is not None:
        out.typed_per_filter_config[CORS].CopyFrom(to_any(translate_cors(http.cors_policy)))
    return out


def _apply_destinations(
    out: Any,
    vs: BoundVirtualService,
    http: Any,
    listen_port: int,
    lookup_service: ServiceLookup,
    domain_suffix: str,
    authority: str,
    default_retries: Any,
) -> None:
    action = out.route
    timeout = http.timeout
    action.timeout.CopyFrom(duration(timeout))
    # gRPC requests honour the grpc-timeout header up to the route timeout (0 = unbounded),
    # as Istio's max_grpc_timeout did; max_stream_duration is its non-deprecated form.
    action.max_stream_duration.grpc_timeout_header_max.CopyFrom(duration(timeout))
    if http.rewrite is not None:
        rewrite = http.rewrite
        if rewrite.uri_regex_rewrite is not None:
            action.regex_rewrite.pattern.CopyFrom(
                regex_pb2.RegexMatcher(regex=rewrite.uri_regex_rewrite.match)
            )
            action.regex_rewrite.substitution = rewrite.uri_regex_rewrite.rewrite
        elif rewrite.uri:
            action.prefix_rewrite = rewrite.uri
        if rewrite.authority:
            authority = rewrite.authority
    if authority:
        action.host_rewrite_literal = authority

    def mirror_cluster(dest: Any) -> str:
        host = resolve_short_name(dest.host, vs.namespace, domain_suffix)
        return destination_cluster(dest, host, lookup_service(host), listen_port)

    action.request_mirror_policies.extend(mirror_policies(http, mirror_cluster))
    routes = list(http.route)
    if len(routes) == 1:
        dest = routes[0]
        host = resolve_short_name(dest.destination.host, vs.namespace, domain_suffix)
        action.cluster = destination_cluster(
            dest.destination, host, lookup_service(host), listen_port
        )
        if dest.headers is not None:
            ops = HeaderOps(dest.headers)
            out.request_headers_to_add.extend(ops.request_add)
            out.request_headers_to_remove.extend(ops.request_remove)
            out.response_headers_to_add.extend(ops.response_add)
            out.response_headers_to_remove.extend(ops.response_remove)
            if ops.authority and not action.host_rewrite_literal:
                action.host_rewrite_literal = ops.authority
    else:
        for dest in routes:
            if dest.weight == 0:
                continue
            host = resolve_short_name(dest.destination.host, vs.namespace, domain_suffix)
            weighted = action.weighted_clusters.clusters.add(
                name=destination_cluster(dest.destination, host, lookup_service(host), listen_port)
            )
            weighted.weight.value = dest.weight
            if dest.headers is not None:
                ops = HeaderOps(dest.headers)
                weighted.request_headers_to_add.extend(ops.request_add)
                weighted.request_headers_to_remove.extend(ops.request_remove)
                weighted.response_headers_to_add.extend(ops.response_add)
                weighted.response_headers_to_remove.extend(ops.response_remove)
                if ops.authority:
                    weighted.host_rewrite_literal = ops.authority
    policy = http.retries if http.retries is not None else default_retries
    converted = retry_policy(policy)
    if converted is not None:
        action.retry_policy.CopyFrom(converted)


_REDIRECT_CODES = {
    301: route_pb2.RedirectAction.MOVED_PERMANENTLY,
    302: route_pb2.RedirectAction.FOUND,
    303: route_pb2.RedirectAction.SEE_OTHER,
    307: route_pb2.RedirectAction.TEMPORARY_REDIRECT,
    308: route_pb2.RedirectAction.PERMANENT_REDIRECT,
}


def _apply_redirect(out: Any, redirect: Any, listen_port: int, is_tls: bool) -> bool:
    """Istio's ApplyRedirect; False for a redirect code Envoy cannot send (Istio then leaves
    the route without an action, which Envoy rejects: such a route is dropped instead)."""
    code = int(redirect.redirect_code or 301)
    if code not in _REDIRECT_CODES:
        return False
    action = out.redirect
    action.response_code = _REDIRECT_CODES[code]
    if redirect.authority:
        action.host_redirect = redirect.authority
    if redirect.prefix_rewrite:
        action.prefix_rewrite = redirect.prefix_rewrite
    elif redirect.uri:
        action.path_redirect = redirect.uri
    if redirect.scheme:
        action.scheme_redirect = redirect.scheme
    if redirect.port is None and redirect.derive_port is None:
        return True
    if redirect.port is not None:
        action.port_redirect = int(redirect.port)
    elif str(redirect.derive_port) == "FROM_REQUEST_PORT":
        action.port_redirect = listen_port
    # No explicit :80 for http nor :443 for https.
    scheme = redirect.scheme or ("https" if is_tls else "http")
    if (action.port_redirect, scheme) in ((80, "http"), (443, "https")):
        action.port_redirect = 0
    return True


def _apply_direct_response(out: Any, direct: Any) -> None:
    out.direct_response.status = int(direct.status)
    body = direct.body
    if body is not None:
        if body.string is not None:
            out.direct_response.body.inline_string = body.string
        elif body.bytes is not None:
            raw = body.bytes
            out.direct_response.body.inline_bytes = (
                raw if isinstance(raw, bytes) else str(raw).encode()
            )
