"""Kubernetes registry: Service + EndpointSlice (+ Pod, Node) documents, and selected
WorkloadEntries.

A Service becomes `<name>.<namespace>.svc.<domain-suffix>` with Istio's protocol selection
(appProtocol, then the port name prefix). Its endpoints are the addresses of the EndpointSlices
labelled `kubernetes.io/service-name: <name>` (matched to service ports by port name), plus the
WorkloadEntries of its namespace that its selector matches — Istio lets a Kubernetes Service
select WorkloadEntries, which is how VMs (or standalone workloads) join a Kubernetes service.

Each slice endpoint takes labels, identity, TLS mode and locality from its pod (`pods.py`). As
Istio, an endpoint whose `targetRef` names a Pod not known yet is left out when pods are watched
(`require_pods`, Kubernetes mode): sent without its pod it would lack the identity and TLS mode
the pod gives it. The pod's arrival rebuilds the registry and the endpoint appears (Istio queues
the slice until then). Without pods (standalone config dirs) the endpoint is kept bare.

Conditions map as Istio's endpointHealthStatus: ready (or unknown) → HEALTHY; not ready and
terminating (or terminating unknown) → TERMINATING (never sent); otherwise UNHEALTHY (sent only
with PILOT_SEND_UNHEALTHY_ENDPOINTS). `publishNotReadyAddresses` makes every endpoint HEALTHY.
FQDN slices are skipped, as Istio does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pilot.model.endpoint import HealthStatus, IstioEndpoint, TlsMode
from pilot.model.service import (
    Registry,
    Resolution,
    Service,
    ServicePort,
    protocol_from_kube_port,
)
from pilot.serviceregistry.pods import PodIndex
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


@dataclass(frozen=True, slots=True)
class SliceContext:
    """What turning slice endpoints into IstioEndpoints needs besides the slice."""

    pods: PodIndex = field(default_factory=PodIndex)
    require_pods: bool = False  # pods are watched: leave out endpoints whose pod is unknown
    send_unhealthy: bool = False  # PILOT_SEND_UNHEALTHY_ENDPOINTS


def convert_service(
    config: Config[Any],
    slices: Sequence[Config[Any]],
    workloads: Sequence[WorkloadInstance],
    domain_suffix: str,
    trust_domain: str,
    context: SliceContext | None = None,
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
    ctx = context or SliceContext()
    for sl in slices:
        _slice_endpoints(sl, ports, spec.publish_not_ready_addresses, ctx, endpoints)
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


def health_status(conditions: Any, publish_not_ready: bool) -> HealthStatus:
    """Istio's endpointHealthStatus (without persistent sessions, so never DRAINING)."""
    if publish_not_ready or conditions is None or conditions.ready is not False:
        return HealthStatus.HEALTHY
    if conditions.terminating is not False:
        return HealthStatus.TERMINATING
    return HealthStatus.UNHEALTHY


def _slice_endpoints(
    sl: Config[Any],
    ports: tuple[ServicePort, ...],
    publish_not_ready: bool,
    ctx: SliceContext,
    out: list[IstioEndpoint],
) -> None:
    spec = sl.spec
    if str(spec.address_type) == "FQDN":
        return
    by_name = {p.name: p for p in ports}
    slice_ports = [
        (by_name[p.name or ""], int(p.port))
        for p in spec.ports
        if (p.name or "") in by_name and p.port is not None
    ]
    for ep in spec.endpoints:
        health = health_status(ep.conditions, publish_not_ready)
        for address in ep.addresses:
            pod, expected = ctx.pods.find(sl.namespace, address, ep.target_ref)
            if pod is None and expected and ctx.require_pods:
                continue  # completed when the pod arrives
            for service_port, port in slice_ports:
                if pod is not None:
                    out.append(
                        IstioEndpoint(
                            address=address,
                            port=port,
                            service_port_name=service_port.name,
                            labels=pod.labels,
                            service_account=pod.service_account,
                            namespace=pod.namespace,
                            workload_name=pod.workload_name,
                            locality=pod.locality,
                            tls_mode=pod.tls_mode,
                            health=health,
                            service_port=service_port.port,
                            send_unhealthy=ctx.send_unhealthy,
                        )
                    )
                    continue
                out.append(
                    IstioEndpoint(
                        address=address,
                        port=port,
                        service_port_name=service_port.name,
                        namespace=sl.namespace,
                        workload_name=ep.target_ref.name if ep.target_ref is not None else "",
                        locality=_slice_locality(ep, ctx.pods),
                        tls_mode=TlsMode.DISABLED,
                        health=health,
                        service_port=service_port.port,
                        send_unhealthy=ctx.send_unhealthy,
                    )
                )


def _slice_locality(ep: Any, pods: PodIndex) -> str:
    """The locality of the slice endpoint's node, else its zone (`/zone`)."""
    if ep.node_name:
        locality = pods.node_localities.get(ep.node_name, "")
        if locality:
            return locality
    return f"/{ep.zone}" if ep.zone else ""


def slices_by_service(slices: Sequence[Config[Any]]) -> dict[tuple[str, str], list[Config[Any]]]:
    out: dict[tuple[str, str], list[Config[Any]]] = {}
    for sl in slices:
        name = sl.meta.labels.get(SERVICE_NAME_LABEL)
        if name:
            out.setdefault((sl.namespace, name), []).append(sl)
    return out
