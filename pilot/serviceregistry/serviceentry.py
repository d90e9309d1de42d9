"""ServiceEntry registry: ServiceEntries (+ selected WorkloadEntries) → Services and endpoints.

One Service per host of a ServiceEntry. Endpoints come from the inline `endpoints`, or from the
WorkloadEntries of the same namespace that match `workloadSelector`; a DNS ServiceEntry with
neither resolves its own host name. The service's accounts are its `subjectAltNames` plus the
identities of its endpoints (they feed the SANs mutual TLS checks).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from pilot.model.endpoint import IstioEndpoint, TlsMode
from pilot.model.service import Protocol, Registry, Resolution, Service, ServicePort
from pilot.serviceregistry.workload import (
    WorkloadInstance,
    endpoint_for,
    from_inline_endpoint,
)
from pkg.config.labels import selector_matches
from pkg.config.model import Config

_RESOLUTION = {
    "NONE": Resolution.PASSTHROUGH,
    "STATIC": Resolution.CLIENT_SIDE_LB,
    "DNS": Resolution.DNS_LB,
    "DNS_ROUND_ROBIN": Resolution.DNS_ROUND_ROBIN_LB,
    "DYNAMIC_DNS": Resolution.DNS_LB,
}


def _addresses(values: Iterable[str]) -> list[str]:
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_address(value)))
            continue
        except ValueError:
            pass
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            continue
        out.append(str(net.network_address) if net.prefixlen == net.max_prefixlen else value)
    return out


def _ports(spec: Any) -> tuple[ServicePort, ...]:
    return tuple(
        ServicePort(p.name, int(p.number), Protocol.parse(p.protocol), int(p.target_port))
        for p in spec.ports
    )


def convert_service_entry(
    config: Config[Any],
    workloads: Sequence[WorkloadInstance],
    trust_domain: str,
) -> list[tuple[Service, tuple[IstioEndpoint, ...]]]:
    spec = config.spec
    ns = config.namespace
    resolution = _RESOLUTION.get(str(spec.resolution), Resolution.PASSTHROUGH)
    ports = _ports(spec)
    addresses = _addresses(spec.addresses)
    selector = dict(spec.workload_selector.labels) if spec.workload_selector is not None else None
    if selector is not None:
        instances = [
            w for w in workloads if w.namespace == ns and selector_matches(selector, w.labels)
        ]
    else:
        instances = [
            from_inline_endpoint(e, config.name, ns, i) for i, e in enumerate(spec.endpoints)
        ]
    out: list[tuple[Service, tuple[IstioEndpoint, ...]]] = []
    for host in spec.hosts:
        endpoints: list[IstioEndpoint] = []
        if (
            not instances
            and selector is None
            and resolution
            in (
                Resolution.DNS_LB,
                Resolution.DNS_ROUND_ROBIN_LB,
            )
        ):
            for port in ports:
                endpoints.append(
                    IstioEndpoint(
                        address=host,
                        port=port.target_port or port.port,
                        service_port_name=port.name,
                        namespace=ns,
                        workload_name=config.name,
                        tls_mode=TlsMode.DISABLED,
                        service_port=port.port,
                    )
                )
        else:
            for workload in instances:
                for port in ports:
                    endpoints.append(
                        endpoint_for(workload, port.name, port.port, port.target_port, trust_domain)
                    )
        accounts = set(spec.subject_alt_names)
        accounts.update(e.service_account for e in endpoints if e.service_account)
        service = Service(
            hostname=host,
            namespace=ns,
            name=host,
            ports=ports,
            registry=Registry.EXTERNAL,
            resolution=resolution,
            address=addresses[0] if addresses else "0.0.0.0",
            extra_addresses=tuple(addresses[1:]),
            mesh_external=str(spec.location) != "MESH_INTERNAL",
            export_to=frozenset(spec.export_to),
            labels=dict(config.meta.labels),
            selector=selector,
            service_accounts=tuple(sorted(accounts)),
            creation_timestamp=config.meta.creation_timestamp,
            source=config.key,
        )
        out.append((service, tuple(endpoints)))
    return out
