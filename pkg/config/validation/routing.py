"""Routing checks shared by VirtualService HTTP, TLS and TCP routes."""

from __future__ import annotations

from collections.abc import Sequence

from pkg.config.specs.virtual_service import (
    Destination,
    L4MatchAttributes,
    Percent,
    RouteDestination,
    StringMatch,
    TLSMatchAttributes,
)
from pkg.config.validation.http import check_regex, check_regex_program_size
from pkg.config.validation.names import (
    check_fqdn,
    check_ip_subnet,
    check_labels,
    check_port,
    check_wildcard_domain,
    is_dns1123_label,
)
from pkg.config.validation.report import Report


def check_gateway_names(
    report: Report, names: Sequence[str], path: str, gateway_semantics: bool
) -> None:
    """Gateway references: `namespace/name`, or a plain (legacy FQDN-style) name."""
    for index, name in enumerate(names):
        at = f"{path}[{index}]"
        namespace, slash, gateway = name.partition("/")
        if not slash:
            if "." in name:
                parts = name.split(".")
                report.warn(
                    at,
                    f"using legacy gatewayName format {name!r}; prefer the <namespace>/<name> "
                    f"format: '{parts[1]}/{parts[0]}'",
                )
            report.error(at, check_fqdn(name))
            continue
        if not namespace or not gateway:
            report.error(at, "config namespace and gateway name cannot be empty")
        if not is_dns1123_label(namespace):
            report.error(at, f"invalid value for namespace: {namespace!r}")
        if not is_dns1123_label(gateway) and not gateway_semantics:
            report.error(at, f"invalid value for gateway name: {gateway!r}")


def check_destination(report: Report, destination: Destination | None, path: str) -> None:
    if destination is None:
        return
    if destination.host == "*":
        report.error(f"{path}.host", f"invalid destination host {destination.host}")
    else:
        report.error(f"{path}.host", check_wildcard_domain(destination.host))
    if destination.subset and not is_dns1123_label(destination.subset):
        report.error(f"{path}.subset", f"subset name is invalid: {destination.subset}")
    if destination.port is not None:
        report.error(f"{path}.port.number", check_port(destination.port.number))


def check_route_destinations(
    report: Report, routes: Sequence[RouteDestination], path: str, gateway_semantics: bool
) -> None:
    total = 0
    for index, route in enumerate(routes):
        at = f"{path}[{index}]"
        if not gateway_semantics:
            check_destination(report, route.destination, f"{at}.destination")
        if route.weight < 0:
            report.error(f"{at}.weight", f"weight {route.weight} < 0")
        total += route.weight
    if len(routes) > 1 and total == 0:
        report.error(path, "total destination weight = 0")


def check_string_match(
    report: Report, match: StringMatch | None, path: str, where: str, *, allow_empty_prefix: bool
) -> None:
    """A StringMatch: a non-empty prefix (except for `uri`), a non-empty valid RE2 regex."""
    if match is None:
        return
    if match.prefix is not None and match.prefix == "" and not allow_empty_prefix:
        report.error(path, f'"{where}": prefix string match should not be empty')
    if match.regex is not None:
        if match.regex == "":
            report.error(path, f'"{where}": regex string match should not be empty')
        else:
            problem = check_regex(match.regex)
            if problem is not None:
                report.error(path, f'"{where}": {problem}')
            else:
                too_big = check_regex_program_size(match.regex)
                report.warn(path, None if too_big is None else f'"{where}": {too_big}')


def check_percentage(report: Report, percent: Percent | None, path: str) -> None:
    if percent is None:
        return
    value = percent.value
    if value < 0.0 or value > 100.0 or 0.0 < value < 0.0001:
        report.error(
            f"{path}.value", f"percentage {value} is neither 0.0, nor in range [0.0001, 100.0]"
        )


def check_l4_match_common(
    report: Report, match: L4MatchAttributes | TLSMatchAttributes, path: str
) -> None:
    for index, subnet in enumerate(match.destination_subnets):
        report.error(f"{path}.destinationSubnets[{index}]", check_ip_subnet(subnet))
    if match.port != 0:
        report.error(f"{path}.port", check_port(match.port))
    report.errors_at(f"{path}.sourceLabels", check_labels(match.source_labels))
    check_gateway_names(report, match.gateways, f"{path}.gateways", False)
