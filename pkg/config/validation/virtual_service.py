"""VirtualService: istiod's webhook rules (pkg/config/validation/validation.go, virtualservice.go).

HTTP route internals (matches, redirects, rewrites, faults, CORS, retries) are in
`pkg.config.validation.http_route`.
"""

from __future__ import annotations

from pkg.config.specs.virtual_service import TCPRoute, TLSRoute, VirtualService
from pkg.config.validation.http import is_jwt_claim_route
from pkg.config.validation.http_route import check_http_route, check_unreachable_http
from pkg.config.validation.names import (
    check_wildcard_domain,
    check_wildcard_domain_for_gateway_vs,
    host_matches,
    host_subset_of,
    is_ip,
)
from pkg.config.validation.policy import check_export_to
from pkg.config.validation.report import Report
from pkg.config.validation.routing import (
    check_gateway_names,
    check_l4_match_common,
    check_route_destinations,
)

MESH_GATEWAY = "mesh"
ROUTE_SEMANTICS = "internal.istio.io/route-semantics"


def validate_virtual_service(vs: VirtualService, report: Report) -> None:
    gateway_semantics = report.meta.annotations.get(ROUTE_SEMANTICS) == "gateway"
    delegate = not vs.hosts
    if delegate:
        if vs.gateways:
            report.error(
                "spec.gateways", "delegate virtual service must have no gateways specified"
            )
        if vs.tls:
            report.error("spec.tls", "delegate virtual service must have no tls route specified")
        if vs.tcp:
            report.error("spec.tcp", "delegate virtual service must have no tcp route specified")

    applies_to_gateway = bool(vs.gateways) and MESH_GATEWAY not in vs.gateways
    applies_to_mesh = not applies_to_gateway
    if vs.gateways:
        check_gateway_names(report, vs.gateways, "spec.gateways", gateway_semantics)
    if not applies_to_gateway:
        _check_no_jwt_claim_routes(report, vs)

    _check_hosts(report, vs, applies_to_gateway, applies_to_mesh)
    if not vs.http and not vs.tcp and not vs.tls:
        report.error("spec", "http, tcp or tls must be provided in virtual service")
    for index, route in enumerate(vs.http):
        check_http_route(report, route, f"spec.http[{index}]", delegate, gateway_semantics)
    for index, tls in enumerate(vs.tls):
        _check_tls_route(report, tls, vs, f"spec.tls[{index}]", gateway_semantics)
    for index, tcp in enumerate(vs.tcp):
        _check_tcp_route(report, tcp, f"spec.tcp[{index}]", gateway_semantics)
    check_export_to(report, vs.export_to)
    check_unreachable_http(report, vs.http)


def _check_no_jwt_claim_routes(report: Report, vs: VirtualService) -> None:
    for i, route in enumerate(vs.http):
        for j, match in enumerate(route.match):
            for field, headers in (
                ("headers", match.headers),
                ("withoutHeaders", match.without_headers),
            ):
                for key in headers:
                    if is_jwt_claim_route(key):
                        report.error(
                            f"spec.http[{i}].match[{j}].{field}[{key}]",
                            f"JWT claim based routing (key: {key}) is only supported for gateway, "
                            f"found no gateways: {list(vs.gateways)}",
                        )


def _check_hosts(
    report: Report, vs: VirtualService, applies_to_gateway: bool, applies_to_mesh: bool
) -> None:
    sni = any(match.sni_hosts for tls in vs.tls for match in tls.match)
    all_valid = True
    for index, host in enumerate(vs.hosts):
        if applies_to_gateway:
            problem = check_wildcard_domain_for_gateway_vs(sni, host)
        else:
            problem = check_wildcard_domain(host)
        if problem is not None:
            if not is_ip(host):
                report.error(f"spec.hosts[{index}]", problem)
                all_valid = False
        elif applies_to_mesh and host == "*":
            report.error(
                f"spec.hosts[{index}]",
                "wildcard host * is not allowed for virtual services bound to the mesh gateway",
            )
            all_valid = False
    if not all_valid:
        return
    for i, first in enumerate(vs.hosts):
        for j in range(i + 1, len(vs.hosts)):
            if host_matches(first, vs.hosts[j]):
                report.error(
                    f"spec.hosts[{j}]",
                    f"duplicate hosts in virtual service: {first} & {vs.hosts[j]}",
                )


def _check_tls_route(
    report: Report, tls: TLSRoute, vs: VirtualService, path: str, gateway_semantics: bool
) -> None:
    if not tls.match:
        report.error(f"{path}.match", "TLS route must have at least one match condition")
    for index, match in enumerate(tls.match):
        at = f"{path}.match[{index}]"
        if not match.sni_hosts:
            report.error(f"{at}.sniHosts", "TLS match must have at least one SNI host")
        for h, sni_host in enumerate(match.sni_hosts):
            _check_sni_host(report, sni_host, vs, f"{at}.sniHosts[{h}]")
        check_l4_match_common(report, match, at)
    if not tls.route:
        report.error(f"{path}.route", "TLS route is required")
    check_route_destinations(report, tls.route, f"{path}.route", gateway_semantics)


def _check_sni_host(report: Report, sni_host: str, vs: VirtualService, path: str) -> None:
    to_gateway = bool(vs.gateways) and MESH_GATEWAY not in vs.gateways
    if to_gateway:
        problem = check_wildcard_domain_for_gateway_vs(True, sni_host)
    else:
        problem = check_wildcard_domain(sni_host)
    if problem is not None:
        if is_ip(sni_host):
            report.warn(
                path,
                f"using an IP address ({sni_host!r}) goes against SNI spec and most clients do "
                "not support this",
            )
        else:
            report.error(path, problem)
        return
    if not any(host_subset_of(sni_host, host) for host in vs.hosts):
        report.error(
            path,
            f"SNI host {sni_host!r} is not a compatible subset of any of the virtual service "
            f"hosts: [{', '.join(vs.hosts)}]",
        )


def _check_tcp_route(report: Report, tcp: TCPRoute, path: str, gateway_semantics: bool) -> None:
    for index, match in enumerate(tcp.match):
        check_l4_match_common(report, match, f"{path}.match[{index}]")
    if not tcp.route:
        report.error(f"{path}.route", "TCP route is required")
    check_route_destinations(report, tcp.route, f"{path}.route", gateway_semantics)
