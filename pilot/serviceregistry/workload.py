"""Workload instances (WorkloadEntries and ServiceEntry inline endpoints) → IstioEndpoints.

Shared by the ServiceEntry and Kubernetes registries: both select WorkloadEntries by labels.
Auto mTLS follows Istio: an endpoint is mTLS-capable when labelled
`security.istio.io/tlsMode: istio`, or when it has a service account and no such label.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pilot.model.endpoint import TLS_MODE_LABEL, IstioEndpoint, TlsMode

UNIX_PREFIX = "unix://"


@dataclass(frozen=True, slots=True)
class WorkloadInstance:
    name: str
    namespace: str
    address: str
    ports: Mapping[str, int]
    labels: Mapping[str, str]
    service_account: str
    locality: str
    weight: int
    network: str


def from_workload_entry(config: Any) -> WorkloadInstance:
    spec = config.spec
    labels = {**dict(config.meta.labels), **dict(spec.labels)}
    return WorkloadInstance(
        name=config.name,
        namespace=config.namespace,
        address=spec.address,
        ports=dict(spec.ports),
        labels=labels,
        service_account=spec.service_account,
        locality=spec.locality,
        weight=spec.weight,
        network=spec.network,
    )


def from_inline_endpoint(spec: Any, se_name: str, namespace: str, index: int) -> WorkloadInstance:
    return WorkloadInstance(
        name=f"{se_name}-{index}",
        namespace=namespace,
        address=spec.address,
        ports=dict(spec.ports),
        labels=dict(spec.labels),
        service_account=spec.service_account,
        locality=spec.locality,
        weight=spec.weight,
        network=spec.network,
    )


def tls_mode(labels: Mapping[str, str], service_account: str) -> TlsMode:
    value = labels.get(TLS_MODE_LABEL)
    if value is not None:
        return TlsMode.ISTIO if value == TlsMode.ISTIO.value else TlsMode.DISABLED
    return TlsMode.ISTIO if service_account else TlsMode.DISABLED


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def endpoint_for(
    workload: WorkloadInstance,
    port_name: str,
    service_port: int,
    target_port: int,
    trust_domain: str,
) -> IstioEndpoint:
    """The endpoint of one workload for one service port: the workload's own port mapping for
    that port name wins, then the service's target port, then the service port."""
    address = workload.address
    port = workload.ports.get(port_name) or target_port or service_port
    if address.startswith(UNIX_PREFIX):
        address = address[len(UNIX_PREFIX) :]
        port = 0
    sa = (
        spiffe_id(trust_domain, workload.namespace, workload.service_account)
        if workload.service_account
        else ""
    )
    return IstioEndpoint(
        address=address,
        port=port,
        service_port_name=port_name,
        labels=workload.labels,
        service_account=sa,
        namespace=workload.namespace,
        workload_name=workload.name,
        locality=workload.locality,
        tls_mode=tls_mode(workload.labels, workload.service_account),
        weight=workload.weight,
        network=workload.network,
        service_port=service_port,
    )
