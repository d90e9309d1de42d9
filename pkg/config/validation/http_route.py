"""One VirtualService HTTP route: conflicts, matches, header operations, redirect, rewrite,
direct response, fault injection, CORS, retries, mirrors and weighted destinations
(istio/istio pkg/config/validation/virtualservice.go and validation.go)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from pkg.config.specs.virtual_service import (
    CorsPolicy,
    Headers,
    HTTPDirectResponse,
    HTTPFaultInjection,
    HTTPMatchRequest,
    HTTPRedirect,
    HTTPRetry,
    HTTPRewrite,
    HTTPRoute,
    HTTPRouteDestination,
)
from pkg.config.validation.http import (
    CORS_METHODS,
    GRPC_STATUSES,
    check_cors_header_name,
    check_header_add_or_set_name,
    check_header_name_or_jwt_claim,
    check_header_operation_name,
    check_header_value,
    check_http_status,
    check_regex,
    check_regex_program_size,
    check_retry_on,
    is_authority_header,
)
from pkg.config.validation.names import check_labels, check_port, is_dns1123_label
from pkg.config.validation.report import Report
from pkg.config.validation.routing import (
    check_destination,
    check_gateway_names,
    check_percentage,
    check_string_match,
)

_KB = 1024
_MB = 1024 * _KB


def check_http_route(
    report: Report, route: HTTPRoute, path: str, delegate: bool, gateway_semantics: bool
) -> None:
    _check_conflicts(report, route, path, delegate)
    for index, match in enumerate(route.match):
        _check_match(report, match, f"{path}.match[{index}]")
    check_header_operations(report, route.headers, f"{path}.headers")
    _check_cors(report, route.cors_policy, f"{path}.corsPolicy")
    _check_fault(report, route.fault, f"{path}.fault")
    if route.mirror_percent is not None:
        if route.mirror_percent > 100:
            report.error(
                f"{path}.mirrorPercent",
                f"mirror_percent must have a max value of 100 (it has {route.mirror_percent})",
            )
        report.warn(
            f"{path}.mirrorPercent",
            'using deprecated setting "mirrorPercent", use "mirrorPercentage" instead',
        )
    if route.mirror_percentage is not None:
        value = route.mirror_percentage.value
        if not 0 <= value <= 100:
            report.error(
                f"{path}.mirrorPercentage.value",
                f"mirror_percentage must be in range 0..100 (it has {value})",
            )
    check_destination(report, route.mirror, f"{path}.mirror")
    for index, mirror in enumerate(route.mirrors):
        at = f"{path}.mirrors[{index}]"
        check_destination(report, mirror.destination, f"{at}.destination")
        if mirror.percentage is not None and not 0 <= mirror.percentage.value <= 100:
            report.error(
                f"{at}.percentage.value",
                f"mirror percentage must be in range 0..100 (it has {mirror.percentage.value})",
            )
    _check_redirect(report, route.redirect, route.match, f"{path}.redirect")
    _check_direct_response(report, route.direct_response, f"{path}.directResponse")
    _check_retries(report, route.retries, f"{path}.retries")
    _check_rewrite(report, route.rewrite, f"{path}.rewrite")
    _check_authority_rewrite(report, route, path)
    _check_destinations(report, route.route, f"{path}.route", gateway_semantics)


def _check_conflicts(report: Report, route: HTTPRoute, path: str, delegate: bool) -> None:
    if not delegate and route.delegate is not None:
        # A root route: it may only delegate.
        if route.redirect is not None:
            report.error(
                f"{path}.redirect", f"root HTTP route {route.name} must not specify redirect"
            )
        if route.route:
            report.error(f"{path}.route", f"root HTTP route {route.name} must not specify route")
        return
    if delegate and route.delegate is not None:
        report.error(f"{path}.delegate", "delegate HTTP route cannot contain delegate")
    if route.redirect is not None:
        other = "redirect"
    elif route.direct_response is not None:
        other = "direct_response"
    else:
        other = ""
    if other:
        conflicts = (
            ("route", bool(route.route)),
            ("fault", route.fault is not None),
            ("rewrite", route.rewrite is not None),
            ("directResponse", other == "redirect" and route.direct_response is not None),
        )
        for field, present in conflicts:
            if present:
                report.error(
                    f"{path}.{field}", f"HTTP route cannot contain both {field} and {other}"
                )
    elif not route.route:
        report.error(f"{path}.route", "HTTP route, redirect or direct_response is required")
    if route.mirror is not None and route.mirrors:
        report.error(f"{path}.mirrors", "HTTP route cannot contain both mirror and mirrors")


def _check_match(report: Report, match: HTTPMatchRequest, path: str) -> None:
    for name, header in match.headers.items():
        at = f"{path}.headers[{name}]"
        report.error(at, check_header_name_or_jwt_claim(name))
        check_string_match(report, header, at, "headers", allow_empty_prefix=False)
    for name, header in match.without_headers.items():
        at = f"{path}.withoutHeaders[{name}]"
        report.error(at, check_header_name_or_jwt_claim(name))
        if header.regex != "*":  # `*` means "present", it is not a regex
            check_string_match(report, header, at, "withoutHeaders", allow_empty_prefix=False)
    # An empty uri prefix is valid (it matches everything); other string matches need one.
    check_string_match(report, match.uri, f"{path}.uri", "uri", allow_empty_prefix=True)
    for field in ("scheme", "method", "authority"):
        check_string_match(
            report, getattr(match, field), f"{path}.{field}", field, allow_empty_prefix=False
        )
    for name, param in match.query_params.items():
        check_string_match(
            report, param, f"{path}.queryParams[{name}]", "queryParams", allow_empty_prefix=False
        )
    if match.port != 0:
        report.error(f"{path}.port", check_port(match.port))
    report.errors_at(f"{path}.sourceLabels", check_labels(match.source_labels))
    check_gateway_names(report, match.gateways, f"{path}.gateways", False)
    if match.source_namespace and not is_dns1123_label(match.source_namespace):
        report.error(
            f"{path}.sourceNamespace", f"sourceNamespace match {match.source_namespace} is invalid"
        )


def check_header_operations(report: Report, headers: Headers | None, path: str) -> None:
    if headers is None:
        return
    if headers.request is not None:
        at = f"{path}.request"
        for op in ("add", "set"):
            for name, value in getattr(headers.request, op).items():
                report.error(f"{at}.{op}[{name}]", check_header_add_or_set_name(name))
                report.error(f"{at}.{op}[{name}]", check_header_value(value))
        for index, name in enumerate(headers.request.remove):
            report.error(f"{at}.remove[{index}]", check_header_operation_name(name))
    if headers.response is not None:
        at = f"{path}.response"
        for op in ("add", "set"):
            for name, value in getattr(headers.response, op).items():
                report.error(f"{at}.{op}[{name}]", check_header_operation_name(name))
                report.error(f"{at}.{op}[{name}]", check_header_value(value))
        for index, name in enumerate(headers.response.remove):
            report.error(f"{at}.remove[{index}]", check_header_operation_name(name))


def _check_cors(report: Report, cors: CorsPolicy | None, path: str) -> None:
    if cors is None:
        return
    for index, origin in enumerate(cors.allow_origins):
        at = f"{path}.allowOrigins[{index}]"
        value = origin.exact or origin.prefix or origin.regex
        if not value:
            report.error(at, "'' is not a valid match type for CORS allow origins")
        elif origin.regex is not None:
            report.error(at, check_regex(origin.regex))
            report.warn(at, check_regex_program_size(origin.regex))
    for index, method in enumerate(cors.allow_methods):
        if method not in CORS_METHODS:
            report.error(
                f"{path}.allowMethods[{index}]", f'"{method}" is not a supported HTTP method'
            )
    for field, names in (
        ("allowHeaders", cors.allow_headers),
        ("exposeHeaders", cors.expose_headers),
    ):
        for index, name in enumerate(names):
            report.error(f"{path}.{field}[{index}]", check_cors_header_name(name))
    if cors.max_age is not None and cors.max_age.nanos > 0:
        report.error(f"{path}.maxAge", "max_age duration is accurate only to seconds precision")


def _check_fault(report: Report, fault: HTTPFaultInjection | None, path: str) -> None:
    if fault is None:
        return
    if fault.abort is None and fault.delay is None:
        report.error(path, "HTTP fault injection must have an abort and/or a delay")
    if (abort := fault.abort) is not None:
        check_percentage(report, abort.percentage, f"{path}.abort.percentage")
        if abort.grpc_status is not None:
            if abort.grpc_status not in GRPC_STATUSES:
                report.error(
                    f"{path}.abort.grpcStatus",
                    f'gRPC status "{abort.grpc_status}" is not supported, for example use '
                    "'NOT_FOUND' (see https://github.com/grpc/grpc/blob/master/doc/statuscodes.md)",
                )
        elif abort.http2_error is not None:
            report.error(
                f"{path}.abort.http2Error", "HTTP/2 abort fault injection not supported yet"
            )
        elif abort.http_status is not None:
            report.error(f"{path}.abort.httpStatus", check_http_status(abort.http_status))
        else:
            report.warn(f"{path}.abort", "abort configured, but error type not set")
    if (delay := fault.delay) is not None:
        check_percentage(report, delay.percentage, f"{path}.delay.percentage")
        if delay.exponential_delay is not None:
            report.error(f"{path}.delay.exponentialDelay", "exponentialDelay not supported yet")


def _check_redirect(
    report: Report, redirect: HTTPRedirect | None, matches: Sequence[HTTPMatchRequest], path: str
) -> None:
    if redirect is None:
        return
    if redirect.uri and redirect.prefix_rewrite:
        report.error(path, "redirect may only specify one of uri or prefix_rewrite")
        return
    if redirect.prefix_rewrite and any(m.uri is not None and m.uri.prefix is None for m in matches):
        report.error(
            f"{path}.prefixRewrite",
            "redirect prefix_rewrite requires all URI matches to use prefix match type",
        )
        return
    has_port = redirect.port is not None or redirect.derive_port is not None
    if not (
        redirect.uri or redirect.prefix_rewrite or redirect.authority or has_port or redirect.scheme
    ):
        report.error(path, "redirect must specify URI, authority, scheme, or port")
        return
    if redirect.redirect_code != 0 and not 300 <= redirect.redirect_code <= 399:
        report.error(
            f"{path}.redirectCode",
            f"{redirect.redirect_code} is not a valid redirect code, must be 3xx",
        )
    if redirect.scheme not in ("", "http", "https"):
        report.error(f"{path}.scheme", 'invalid redirect scheme, must be "http" or "https"')
    if redirect.port:
        report.error(f"{path}.port", check_port(redirect.port))


def _check_direct_response(report: Report, response: HTTPDirectResponse | None, path: str) -> None:
    if response is None:
        return
    body = response.body
    if body is not None:
        size = len(body.string) if body.string is not None else len(body.bytes or b"")
        if size > _MB:
            report.error(
                f"{path}.body",
                "large direct_responses may impact control plane performance, must be less than "
                "1MB",
            )
        elif size > 100 * _KB:
            report.warn(
                f"{path}.body", "large direct_responses may impact control plane performance"
            )
    report.error(f"{path}.status", check_http_status(response.status))


def _check_retries(report: Report, retries: HTTPRetry | None, path: str) -> None:
    if retries is None:
        return
    if retries.attempts < 0:
        report.error(f"{path}.attempts", "attempts cannot be negative")
    configured = (
        retries.per_try_timeout is not None
        or retries.retry_on != ""
        or retries.retry_remote_localities is not None
    )
    if retries.attempts == 0 and configured:
        report.error(
            f"{path}.attempts", "http retry policy configured when attempts are set to 0 (disabled)"
        )
    if retries.retry_on:
        report.errors_at(f"{path}.retryOn", check_retry_on(retries.retry_on))


def _check_rewrite(report: Report, rewrite: HTTPRewrite | None, path: str) -> None:
    if rewrite is None:
        return
    if rewrite.uri and rewrite.uri_regex_rewrite is not None:
        report.error(path, "rewrite may only contain one of URI or UriRegexRewrite")
        return
    if not rewrite.uri and rewrite.uri_regex_rewrite is None and not rewrite.authority:
        report.error(
            path,
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of "
            "URI or UriRegexRewrite may be specified",
        )
        return
    regex_rewrite = rewrite.uri_regex_rewrite
    if regex_rewrite is not None:
        at = f"{path}.uriRegexRewrite"
        if not regex_rewrite.match or not regex_rewrite.rewrite:
            report.error(
                at, "UriRegexRewrite requires both Rewrite and Match fields to be specified"
            )
        else:
            report.error(f"{at}.match", check_regex(regex_rewrite.match))
            report.warn(f"{at}.match", check_regex_program_size(regex_rewrite.match))


def _check_authority_rewrite(report: Report, route: HTTPRoute, path: str) -> None:
    """The authority may be rewritten in one place only (rewrite, or a request header)."""
    current = route.rewrite.authority if route.rewrite is not None else ""
    request = route.headers.request if route.headers is not None else None
    if request is None:
        return
    for op in ("set", "add"):
        for name, value in getattr(request, op).items():
            if not is_authority_header(name):
                continue
            if current:
                report.error(
                    f"{path}.headers.request.{op}[{name}]",
                    f"authority header cannot be set multiple times: have {current!r}, "
                    f"attempting to set {value!r}",
                )
                return
            current = value


def _check_destinations(
    report: Report, routes: Sequence[HTTPRouteDestination], path: str, gateway_semantics: bool
) -> None:
    total = 0
    for index, route in enumerate(routes):
        at = f"{path}[{index}]"
        check_header_operations(report, route.headers, f"{at}.headers")
        if not gateway_semantics:
            check_destination(report, route.destination, f"{at}.destination")
        if route.weight < 0:
            report.error(f"{at}.weight", f"weight {route.weight} < 0")
        total += route.weight
    if len(routes) > 1 and total == 0:
        report.error(path, "total destination weight = 0")


def check_unreachable_http(report: Report, routes: Sequence[HTTPRoute]) -> None:
    """Warnings for rules that can never match: after a catch-all, or duplicate matches."""
    catch_all = -1
    seen: dict[str, int] = {}
    for index, route in enumerate(routes):
        name = f'"{route.name}"' if route.name else f"#{index}"
        if catch_all >= 0:
            report.warn(
                f"spec.http[{index}]",
                f"virtualService rule {name} not used (only the last rule can have no matches)",
            )
            continue
        if not route.match:
            catch_all = index
            continue
        for m, match in enumerate(route.match):
            key = _match_key(match)
            if key == "{}":
                catch_all = index
            if key in seen:
                report.warn(
                    f"spec.http[{index}].match[{m}]",
                    f"virtualService rule {name} match #{m} is not used (duplicate/overlapping "
                    f"match in rule #{seen[key]})",
                )
            else:
                seen[key] = index


def _match_key(match: HTTPMatchRequest) -> str:
    """A canonical form of a match, without its name, to find duplicates."""
    data = asdict(match)
    data.pop("name", None)
    cleaned = {k: v for k, v in data.items() if v not in (None, "", 0, False, (), {})}
    return json.dumps(cleaned, sort_keys=True, default=str)
