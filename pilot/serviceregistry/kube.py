"""Kubernetes registry: Service + EndpointSlice documents (+ selected WorkloadEntries).

A Service becomes `<name>.<namespace>.svc.<domain-suffix>` with Istio's protocol selection
(appProtocol, then the port name prefix). Its endpoints are the addresses of the EndpointSlices
labelled `kubernetes.io/service-name: <name>` (matched to service ports by port name), plus the
WorkloadEntries of its namespace that its selector matches — Istio lets a Kubernetes Service
select WorkloadEntries, which is how VMs (or standalone workloads) join a Kubernetes service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pilot.model.endpoint import HealthStatus, IstioEndpoint, TlsMode
from pilot.model.service import (
    Registry,
    Resolution,
    Service,
    ServicePort,
    protocol_from_kube_port,
)
from pilot.serviceregistry.workload import WorkloadInstance, endpoint_for
from pkg.config.labels import selector_matches
from pkg.config.model import Config

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"


def kube_hostname(name: str, namespace: str, domain_suffix: str) -> str:
    return f"{name}.{namespace}.svc.{domain_suffix}"


def _ports(spec: Any) -> tuple[ServicePort, ...]:
    out = []
    for p in spec.ports:
        target = p.target_port if isinstance(p.target_port, int) else 0
        out.append(
            ServicePort(
                p.name,
                int(p.port),
                protocol_from_kube_port(
                    int(p.port), p.name, str(p.protocol), p.app_protocol or None
                ),
                target,
            )
        )
    return tuple(out)


def convert_service(
    config: Config[Any],
    slices: Sequence[Config[Any]],
    workloads: Sequence[WorkloadInstance],
    domain_suffix: str,
    trust_domain: str,
) -> tuple[Service, tuple[IstioEndpoint, ...]]:
    spec = config.spec
    ns = config.namespace
    ports = _ports(spec)
    cluster_ip = spec.cluster_ip
    headless = cluster_ip == "None"
    resolution = Resolution.PASSTHROUGH if headless else Resolution.CLIENT_SIDE_LB
    external_name = ""
    if str(spec.type) == "ExternalName":
        external_name = spec.external_name
        resolution = Resolution.DNS_LB
    selector = dict(spec.selector) if spec.selector else None
    endpoints: list[IstioEndpoint] = []
    named_targets = {p.name: p.target_port for p in spec.ports if isinstance(p.target_port, str)}
    for sl in slices:
        _slice_endpoints(sl, ports, spec.publish_not_ready_addresses, endpoints)
    if selector is not None:
        for workload in workloads:
            if workload.namespace != ns or not selector_matches(selector, workload.labels):
                continue
            for port in ports:
                target = port.target_port
                named = named_targets.get(port.name)
                if named and named in workload.ports:
                    target = workload.ports[named]
                endpoints.append(endpoint_for(workload, port.name, port.port, target, trust_domain))
    annotations: Mapping[str, str] = config.meta.annotations
    export_to = frozenset(
        e.strip() for e in annotations.get(EXPORT_TO_ANNOTATION, "").split(",") if e.strip()
    )
    accounts = sorted({e.service_account for e in endpoints if e.service_account})
    address = cluster_ip if cluster_ip and not headless else "0.0.0.0"
    service = Service(
        hostname=kube_hostname(config.name, ns, domain_suffix),
        namespace=ns,
        name=config.name,
        ports=ports,
        registry=Registry.KUBERNETES,
        resolution=resolution,
        address=address,
        extra_addresses=tuple(ip for ip in spec.cluster_ips if ip != cluster_ip and ip != "None"),
        mesh_external=False,
        export_to=export_to,
        labels=dict(config.meta.labels),
        selector=selector,
        service_accounts=tuple(accounts),
        external_name=external_name,
        headless=headless,
        creation_timestamp=config.meta.creation_timestamp,
        source=config.key,
    )
    return service, tuple(endpoints)


def _slice_endpoints(
    sl: Config[Any],
    ports: tuple[ServicePort, ...],
    publish_not_ready: bool,
    out: list[IstioEndpoint],
) -> None:
    spec = sl.spec
    by_name = {p.name: p for p in ports}
    for ep in spec.endpoints:
        ready = ep.conditions is None or ep.conditions.ready is not False
        if not ready and not publish_not_ready:
            health = HealthStatus.UNHEALTHY
        else:
            health = HealthStatus.HEALTHY
        workload = ep.target_ref.name if ep.target_ref is not None else ""
        for slice_port in spec.ports:
            service_port = by_name.get(slice_port.name or "")
            if service_port is None or slice_port.port is None:
                continue
            for address in ep.addresses:
                out.append(
                    IstioEndpoint(
                        address=address,
                        port=int(slice_port.port),
                        service_port_name=service_port.name,
                        namespace=sl.namespace,
                        workload_name=workload,
                        locality=(ep.zone and f"/{ep.zone}") or "",
                        tls_mode=TlsMode.DISABLED,
                        health=health,
                        service_port=service_port.port,
                    )
                )


def slices_by_service(slices: Sequence[Config[Any]]) -> dict[tuple[str, str], list[Config[Any]]]:
    out: dict[tuple[str, str], list[Config[Any]]] = {}
    for sl in slices:
        name = sl.meta.labels.get(SERVICE_NAME_LABEL)
        if name:
            out.setdefault((sl.namespace, name), []).append(sl)
    return out
