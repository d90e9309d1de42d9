"""The Kubernetes documents: Service, EndpointSlice, Secret and Namespace, checked as the API
server would (the subset that matters for a mesh)."""

from __future__ import annotations

import re

from pkg.config.specs.kube import (
    SERVICE_NAME_LABEL,
    AddressType,
    EndpointSlice,
    NamespaceSpec,
    Protocol,
    Secret,
    ServiceSpec,
    ServiceType,
)
from pkg.config.validation.names import (
    UNSUPPORTED,
    check_fqdn,
    check_ip,
    check_k8s_label,
    check_k8s_subdomain,
    check_qualified_name,
    parse_protocol,
)
from pkg.config.validation.report import Report

_IANA_SVC_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_MAX_SECRET_BYTES = 1024 * 1024
ISTIO_SYSTEM = "istio-system"


def validate_service(spec: ServiceSpec, report: Report) -> None:
    headless = spec.cluster_ip == "None"
    external_name = spec.type == ServiceType.EXTERNAL_NAME
    if not spec.ports and not headless and not external_name:
        report.error("spec.ports", "Required value")
    if external_name:
        if not spec.external_name:
            report.error("spec.externalName", "Required value")
        else:
            report.error("spec.externalName", check_fqdn(spec.external_name.rstrip(".")))
    if spec.cluster_ip not in ("", "None"):
        report.error("spec.clusterIP", check_ip(spec.cluster_ip))
    for index, ip in enumerate(spec.external_ips):
        report.error(f"spec.externalIPs[{index}]", check_ip(ip))
    seen_names: set[str] = set()
    seen_ports: set[tuple[int, str]] = set()
    for index, port in enumerate(spec.ports):
        path = f"spec.ports[{index}]"
        if len(spec.ports) > 1 and not port.name:
            report.error(f"{path}.name", "Required value")
        if port.name:
            report.error(f"{path}.name", check_k8s_label(port.name))
            if port.name in seen_names:
                report.error(f"{path}.name", f"Duplicate value: {port.name!r}")
            seen_names.add(port.name)
        if not 1 <= port.port <= 65535:
            report.error(f"{path}.port", "must be between 1 and 65535, inclusive")
        if (port.port, port.protocol) in seen_ports:
            report.error(path, f"Duplicate value: {port.port}/{port.protocol}")
        seen_ports.add((port.port, port.protocol))
        _check_target_port(report, port.target_port, f"{path}.targetPort")
        if not 0 <= port.node_port <= 65535:
            report.error(f"{path}.nodePort", "must be between 1 and 65535, inclusive")
        if port.app_protocol:
            report.error(f"{path}.appProtocol", check_qualified_name(port.app_protocol))
    for key in spec.selector:
        report.error(f"spec.selector[{key}]", check_qualified_name(key))
    if report.namespace != ISTIO_SYSTEM:
        _warn_protocol_selection(report, spec)


def _warn_protocol_selection(report: Report, spec: ServiceSpec) -> None:
    """Istio picks a port's protocol from `appProtocol` or a `<protocol>[-suffix]` port name."""
    for index, port in enumerate(spec.ports):
        path = f"spec.ports[{index}]"
        if port.protocol == Protocol.UDP:
            continue
        if port.app_protocol:
            if parse_protocol(port.app_protocol) == UNSUPPORTED:
                report.warn(
                    f"{path}.appProtocol",
                    f"appProtocol {port.app_protocol!r} is not a protocol Istio knows; traffic "
                    "will be treated as TCP (or sniffed)",
                )
        elif not port.name:
            report.warn(
                path, "unnamed port: Istio cannot select its protocol, see protocol selection"
            )
        elif parse_protocol(port.name.split("-", 1)[0]) == UNSUPPORTED:
            report.warn(
                f"{path}.name",
                f"port name {port.name!r} does not follow the Istio naming convention "
                "<protocol>[-<suffix>] and sets no appProtocol",
            )


def _check_target_port(report: Report, target: int | str, path: str) -> None:
    if isinstance(target, int):
        if target != 0 and not 1 <= target <= 65535:
            report.error(path, "must be between 1 and 65535, inclusive")
        return
    if len(target) > 15 or _IANA_SVC_NAME.fullmatch(target) is None or "--" in target:
        report.error(path, f"must be a valid port name (IANA_SVC_NAME): {target!r}")
    elif not any(ch.isalpha() for ch in target):
        report.error(path, "must contain at least one letter (a-z)")


def validate_endpoint_slice(slice_: EndpointSlice, report: Report) -> None:
    if SERVICE_NAME_LABEL not in report.meta.labels:
        report.warn(
            f"metadata.labels[{SERVICE_NAME_LABEL}]",
            "an EndpointSlice without this label belongs to no Service and is ignored",
        )
    for index, endpoint in enumerate(slice_.endpoints):
        for a, address in enumerate(endpoint.addresses):
            path = f"endpoints[{index}].addresses[{a}]"
            if slice_.address_type == AddressType.FQDN:
                report.error(path, check_fqdn(address))
                continue
            problem = check_ip(address)
            if problem is None and (":" in address) != (slice_.address_type == AddressType.IPV6):
                problem = f"{address} is not an {slice_.address_type} address"
            report.error(path, problem)
        if endpoint.hostname:
            report.error(f"endpoints[{index}].hostname", check_k8s_label(endpoint.hostname))
    names: set[str] = set()
    for index, port in enumerate(slice_.ports):
        if port.name:
            report.error(f"ports[{index}].name", check_k8s_label(port.name))
        if port.name in names:
            report.error(f"ports[{index}].name", f"Duplicate value: {port.name!r}")
        names.add(port.name)
        if port.port is not None and not 0 <= port.port <= 65535:
            report.error(f"ports[{index}].port", "must be between 0 and 65535, inclusive")


def validate_secret(secret: Secret, report: Report) -> None:
    total = 0
    for field, keys in (("data", secret.data), ("stringData", secret.string_data)):
        for key in keys:
            if _SECRET_KEY.fullmatch(key) is None:
                report.error(
                    f"{field}[{key}]",
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                )
    total = sum(len(v) for v in secret.data.values()) + sum(
        len(v.encode()) for v in secret.string_data.values()
    )
    if total > _MAX_SECRET_BYTES:
        report.error("data", f"Too long: must have at most {_MAX_SECRET_BYTES} bytes")
    if secret.type == "kubernetes.io/tls":
        for key in ("tls.crt", "tls.key"):
            if secret.get(key) is None:
                report.error(f"data[{key}]", "Required value")


def validate_namespace(spec: NamespaceSpec, report: Report) -> None:
    for index, finalizer in enumerate(spec.finalizers):
        name = finalizer.rpartition("/")[2]
        if "/" in finalizer:
            report.error(f"spec.finalizers[{index}]", check_qualified_name(finalizer))
        else:
            report.error(f"spec.finalizers[{index}]", check_k8s_subdomain(name))
