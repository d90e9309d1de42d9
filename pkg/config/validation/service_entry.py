"""ServiceEntry: hosts, addresses, ports, resolution and endpoints (CRD and webhook rules)."""

from __future__ import annotations

from pkg.config.specs.service_entry import Location, Resolution, ServiceEntry
from pkg.config.validation.names import (
    check_fqdn,
    check_ip_subnet,
    check_labels,
    check_partial_wildcard,
    check_port,
    check_port_name,
    check_protocol,
    check_wildcard_domain,
    is_http,
    is_ip,
    is_tcp,
    is_tls,
    parse_protocol,
)
from pkg.config.validation.policy import check_export_to, check_networking_selector
from pkg.config.validation.report import Report
from pkg.config.validation.workload_entry import UNIX_PREFIX, check_entry

USE_WAYPOINT_LABEL = "istio.io/use-waypoint"
AUTOALLOCATE_LABEL = "networking.istio.io/enable-autoallocate-ip"
_DYNAMIC_DNS_PROTOCOLS = ("HTTP", "TLS", "GRPC", "HTTP2")


def validate_service_entry(se: ServiceEntry, report: Report) -> None:
    check_networking_selector(
        report, se.workload_selector, "spec.workloadSelector", "service entry"
    )
    if se.workload_selector is not None and se.endpoints:
        report.error("spec", "only one of WorkloadSelector or Endpoints can be set")
    _check_hosts(report, se)
    cidr = False
    for index, address in enumerate(se.addresses):
        cidr = cidr or "/" in address
        report.error(f"spec.addresses[{index}]", check_ip_subnet(address))
    if cidr and se.resolution not in (Resolution.NONE, Resolution.STATIC):
        report.error(
            "spec.addresses", "CIDR addresses are allowed only for NONE/STATIC resolution types"
        )
    # Istio allocates a VIP itself unless resolution is NONE or the object opts out.
    opted_out = report.meta.labels.get(AUTOALLOCATE_LABEL, "").lower() == "false"
    auto_allocated = se.resolution != Resolution.NONE and not opted_out
    port_names: set[str] = set()
    for index, port in enumerate(se.ports):
        path = f"spec.ports[{index}]"
        if port.name in port_names:
            report.error(f"{path}.name", f"service entry port name {port.name!r} already defined")
        port_names.add(port.name)
        report.error(f"{path}.name", check_port_name(port.name))
        report.error(f"{path}.protocol", check_protocol(port.protocol))
        report.error(f"{path}.number", check_port(port.number))
        if not se.addresses and not auto_allocated and port.protocol in ("", "TCP"):
            report.warn(
                path,
                "addresses are required for ports serving TCP (or unset) protocol when IP "
                "Autoallocation is not enabled",
            )
    _check_resolution(report, se, port_names)
    if se.resolution != Resolution.NONE and len(se.hosts) > 1:
        for index, port in enumerate(se.ports):
            protocol = parse_protocol(port.protocol)
            if not is_http(protocol) and not is_tls(protocol):
                report.error(
                    f"spec.ports[{index}]", "multiple hosts provided with non-HTTP, non-TLS ports"
                )
                break
    check_export_to(report, se.export_to, service_entry=True)


def _check_hosts(report: Report, se: ServiceEntry) -> None:
    for index, host in enumerate(se.hosts):
        path = f"spec.hosts[{index}]"
        if host == "*":
            continue  # rejected by the CRD rule
        report.error(path, check_wildcard_domain(host))
        if se.resolution != Resolution.DYNAMIC_DNS:
            report.warn(path, check_partial_wildcard(host))


def _check_resolution(report: Report, se: ServiceEntry, port_names: set[str]) -> None:
    resolution = se.resolution
    if resolution == Resolution.NONE:
        if se.endpoints:
            report.error(
                "spec.endpoints", "no endpoints should be provided for resolution type none"
            )
        if se.workload_selector is not None:
            report.warn(
                "spec.workloadSelector",
                "workloadSelector should not be set when resolution mode is NONE",
            )
        return
    if resolution == Resolution.STATIC:
        for index, endpoint in enumerate(se.endpoints):
            check_entry(
                report,
                endpoint,
                f"spec.endpoints[{index}]",
                service_ports=port_names,
                allow_fqdn=False,
            )
        return
    if resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN):
        _check_dns(report, se, port_names)
        return
    # DYNAMIC_DNS
    for index, host in enumerate(se.hosts):
        if not host.startswith("*"):
            report.error(
                f"spec.hosts[{index}]", f"host must be wildcarded for resolution mode {resolution}"
            )
    if se.addresses:
        report.error("spec.addresses", f"addresses cannot be set for resolution type {resolution}")
    if se.endpoints:
        report.error("spec.endpoints", f"endpoints cannot be set for resolution type {resolution}")
    for index, port in enumerate(se.ports):
        if parse_protocol(port.protocol) not in _DYNAMIC_DNS_PROTOCOLS:
            report.error(
                f"spec.ports[{index}].protocol",
                "only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type "
                f"{resolution}",
            )
    waypoint = report.meta.labels.get(USE_WAYPOINT_LABEL, "")
    if se.location == Location.MESH_INTERNAL and waypoint and waypoint.lower() != "none":
        report.error(
            "spec.location",
            f"location MESH_INTERNAL with resolution type {resolution} is not supported when using "
            "waypoints",
        )


def _check_dns(report: Report, se: ServiceEntry, port_names: set[str]) -> None:
    resolution = se.resolution
    if not se.endpoints:
        for index, host in enumerate(se.hosts):
            problem = check_fqdn(host)
            if problem is not None:
                report.error(
                    f"spec.hosts[{index}]",
                    f"hosts must be FQDN or contain only prefix wildcards if no endpoints are "
                    f"provided for resolution mode {resolution}, {problem}",
                )
                break
    if resolution == Resolution.DNS_ROUND_ROBIN and len(se.endpoints) > 1:
        report.error(
            "spec.endpoints", f"there must only be 0 or 1 endpoint for resolution mode {resolution}"
        )
    for index, endpoint in enumerate(se.endpoints):
        path = f"spec.endpoints[{index}]"
        if not endpoint.address and not endpoint.network:
            report.error(f"{path}.address", "Address is required")
        if endpoint.address.startswith(UNIX_PREFIX) and endpoint.ports:
            report.error(f"{path}.ports", "UDS may not include ports")
        if endpoint.address and not is_ip(endpoint.address) and check_fqdn(endpoint.address):
            report.error(
                f"{path}.address",
                f"endpoint address {endpoint.address!r} is not a valid FQDN or an IP address",
            )
        report.errors_at(f"{path}.labels", check_labels(endpoint.labels))
        for name, port in endpoint.ports.items():
            at = f"{path}.ports[{name}]"
            if name not in port_names:
                report.error(at, f"endpoint port {port} is not defined by the service entry")
            report.error(at, check_port_name(name))
            report.error(at, check_port(port))
    tcp = any(is_tcp(parse_protocol(port.protocol)) for port in se.ports)
    if se.addresses and len(se.hosts) > 1 and tcp:
        report.warn(
            "spec.hosts",
            "service entry can not have more than one host specified simultaneously with "
            "address and tcp port",
        )
