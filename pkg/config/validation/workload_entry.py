"""WorkloadEntry (standalone or as a ServiceEntry endpoint) and WorkloadGroup."""

from __future__ import annotations

from collections.abc import Collection

from pkg.config.specs.workload_entry import ReadinessProbe, WorkloadEntry, WorkloadGroup
from pkg.config.validation.http import check_probe_header_name
from pkg.config.validation.names import (
    check_fqdn,
    check_labels,
    check_port,
    check_port_name,
    check_unix_address,
    is_ip,
)
from pkg.config.validation.report import Report

UNIX_PREFIX = "unix://"


def validate_workload_entry(entry: WorkloadEntry, report: Report) -> None:
    check_entry(report, entry, "spec", service_ports=None, allow_fqdn=True)


def check_entry(
    report: Report,
    entry: WorkloadEntry,
    path: str,
    *,
    service_ports: Collection[str] | None,
    allow_fqdn: bool,
) -> None:
    """A workload address and ports; `service_ports` are the port names of a ServiceEntry."""
    address = entry.address
    if not address:
        if not entry.network:
            report.error(f"{path}.address", "Address is required")
            return
        report.warn(f"{path}.address", f"address is unset with network {entry.network!r}")
    unix = address.startswith(UNIX_PREFIX)
    if unix:
        report.error(f"{path}.address", check_unix_address(address.removeprefix(UNIX_PREFIX)))
        if entry.ports:
            report.error(f"{path}.ports", "UDS may not include ports")
    elif address and not is_ip(address):
        if not allow_fqdn:
            report.error(
                f"{path}.address", f"endpoint address {address!r} is not a valid IP address"
            )
        elif check_fqdn(address) is not None:
            report.error(
                f"{path}.address",
                f"endpoint address {address!r} is not a valid FQDN or an IP address",
            )
    for name, port in entry.ports.items():
        at = f"{path}.ports[{name}]"
        if service_ports is not None and name not in service_ports:
            report.error(at, f"endpoint port {port} is not defined by the service entry")
        report.error(at, check_port_name(name))
        report.error(at, check_port(port))
    report.errors_at(f"{path}.labels", check_labels(entry.labels))
    if unix and service_ports is not None and len(service_ports) != 1:
        report.error(f"{path}.address", "exactly 1 service port required for unix endpoints")


def validate_workload_group(group: WorkloadGroup, report: Report) -> None:
    template = group.template
    if template is not None and template.address.startswith(UNIX_PREFIX) and template.ports:
        report.error("spec.template.ports", "UDS may not include ports")
    if group.metadata is not None:
        problems = check_labels(group.metadata.labels)
        report.errors_at("spec.metadata.labels", (f"invalid labels: {p}" for p in problems))
    _check_probe(report, group.probe, "spec.probe")


def _check_probe(report: Report, probe: ReadinessProbe | None, path: str) -> None:
    if probe is None:
        return
    if probe.http_get is not None:
        http = probe.http_get
        report.error(f"{path}.httpGet.port", check_port(http.port))
        for index, header in enumerate(http.http_headers):
            report.error(
                f"{path}.httpGet.httpHeaders[{index}].name", check_probe_header_name(header.name)
            )
    elif probe.tcp_socket is not None:
        report.error(f"{path}.tcpSocket.port", check_port(probe.tcp_socket.port))
    elif probe.exec is not None:
        if not probe.exec.command:
            report.error(f"{path}.exec.command", "exec.command is required")
    elif probe.grpc is None:
        report.error(path, "a health check method (httpGet, tcpSocket, exec or grpc) is required")
