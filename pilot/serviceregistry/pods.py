"""Pods and Nodes as the Kubernetes registry reads them: indexes built once per registry build.

As Istio's pod cache and EndpointBuilder (pilot/pkg/serviceregistry/kube/controller/pod.go,
endpoint_builder.go):
- a pod is found by (namespace, name) — an EndpointSlice endpoint's `targetRef` — or, for an
  endpoint without a Pod targetRef (a hand-made slice), by IP among the pods of its namespace;
- only pods that belong in endpoints (not Succeeded/Failed, an IP, no deletionTimestamp) and
  are Ready are indexed by IP: that index also tells which pod a connecting proxy is;
- an endpoint's labels are the pod's labels plus Istio's topology labels (region, zone,
  subzone, cluster, node hostname), its identity the SPIFFE id of the pod's service account,
  its TLS mode the pod's `security.istio.io/tlsMode` label (else disabled), its locality the
  pod's `istio-locality` label or else the topology labels of the pod's Node;
- the workload name is the pod's controller (a Deployment's ReplicaSet without its
  pod-template-hash suffix), else the pod's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pilot.model.endpoint import TLS_MODE_LABEL, TlsMode
from pilot.model.push_context import WorkloadInfo
from pilot.serviceregistry.workload import spiffe_id
from pkg.config.model import Config

REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
SUBZONE_LABEL = "topology.istio.io/subzone"
CLUSTER_LABEL = "topology.istio.io/cluster"
HOSTNAME_LABEL = "kubernetes.io/hostname"
LOCALITY_LABEL = "istio-locality"  # a pod's own locality, dots for slashes (region.zone.sub)
POD_TEMPLATE_HASH = "pod-template-hash"
DEFAULT_SERVICE_ACCOUNT = "default"  # what the API server fills in when a pod names none
CLUSTER_ID = "Kubernetes"
_TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
POD_KIND = "Pod"

# Pods as proxy workloads: (by (namespace, IP), by (namespace, name)).
PodWorkloads = tuple[Mapping[tuple[str, str], WorkloadInfo], Mapping[tuple[str, str], WorkloadInfo]]


def belongs_in_endpoints(pod: Config[Any]) -> bool:
    """Kubernetes' shouldPodBeInEndpoints: not terminal, has an IP, not being deleted."""
    status = pod.spec.status
    return (
        status.phase not in _TERMINAL_PHASES
        and bool(status.ips)
        and not pod.meta.deletion_timestamp
    )


def is_indexed(pod: Config[Any]) -> bool:
    """In the by-IP index (Istio's podsByIP): belongs in endpoints and is Ready."""
    return belongs_in_endpoints(pod) and bool(pod.spec.status.ready)


def node_locality(node: Config[Any] | None) -> str:
    if node is None:
        return ""
    labels = node.meta.labels
    region, zone, sub = (labels.get(k, "") for k in (REGION_LABEL, ZONE_LABEL, SUBZONE_LABEL))
    if not (region or zone or sub):
        return ""
    return f"{region}/{zone}/{sub}"


def workload_name(pod: Config[Any]) -> str:
    raw = pod.raw.get("metadata") if isinstance(pod.raw, Mapping) else None
    owners = raw.get("ownerReferences") if isinstance(raw, Mapping) else None
    for owner in owners or ():
        if not isinstance(owner, Mapping) or not owner.get("controller"):
            continue
        name = str(owner.get("name", ""))
        template_hash = pod.meta.labels.get(POD_TEMPLATE_HASH, "")
        if (
            owner.get("kind") == "ReplicaSet"
            and template_hash
            and name.endswith(f"-{template_hash}")
        ):
            return name[: -len(template_hash) - 1]
        return name or pod.name
    return pod.name


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What an endpoint takes from its pod."""

    name: str
    namespace: str
    labels: Mapping[str, str]  # the pod's labels plus the topology labels
    service_account: str  # SPIFFE id
    tls_mode: TlsMode
    locality: str
    workload_name: str
    node_name: str
    ips: tuple[str, ...]
    ports: Mapping[str, int] = field(default_factory=dict)  # named TCP container ports


def pod_info(pod: Config[Any], nodes: Mapping[str, Config[Any]], trust_domain: str) -> PodInfo:
    spec = pod.spec.spec
    own = pod.meta.labels.get(LOCALITY_LABEL, "")
    locality = own.replace(".", "/") if own else node_locality(nodes.get(spec.node_name))
    labels = dict(pod.meta.labels)
    region, _, rest = locality.partition("/")
    zone, _, sub = rest.partition("/")
    for key, value in (
        (REGION_LABEL, region),
        (ZONE_LABEL, zone),
        (SUBZONE_LABEL, sub),
        (CLUSTER_LABEL, CLUSTER_ID),
        (HOSTNAME_LABEL, spec.node_name),
    ):
        if value:
            labels[key] = value
    mode = pod.meta.labels.get(TLS_MODE_LABEL, "")
    ports: dict[str, int] = {}
    for container in spec.containers:
        for port in container.ports:
            if port.name and str(port.protocol) == "TCP":
                ports.setdefault(port.name, port.container_port)  # first one wins
    return PodInfo(
        name=pod.name,
        namespace=pod.namespace,
        labels=labels,
        service_account=spiffe_id(
            trust_domain, pod.namespace, spec.service_account_name or DEFAULT_SERVICE_ACCOUNT
        ),
        tls_mode=TlsMode.ISTIO if mode == TlsMode.ISTIO.value else TlsMode.DISABLED,
        locality=locality,
        workload_name=workload_name(pod),
        node_name=spec.node_name,
        ips=pod.spec.status.ips,
        ports=ports,
    )


@dataclass(frozen=True, slots=True)
class PodIndex:
    """Pods by (namespace, name) and by IP, with Node localities; built once per build."""

    by_name: Mapping[tuple[str, str], PodInfo] = field(default_factory=dict)
    by_ip: Mapping[str, tuple[PodInfo, ...]] = field(default_factory=dict)
    node_localities: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls, pods: Sequence[Config[Any]], nodes: Sequence[Config[Any]], trust_domain: str
    ) -> PodIndex:
        node_map = {n.name: n for n in nodes}
        by_name: dict[tuple[str, str], PodInfo] = {}
        by_ip: dict[str, list[PodInfo]] = {}
        for pod in pods:
            info = pod_info(pod, node_map, trust_domain)
            by_name[(pod.namespace, pod.name)] = info
            if is_indexed(pod):
                for ip in info.ips:
                    by_ip.setdefault(ip, []).append(info)
        return cls(
            by_name,
            {ip: tuple(infos) for ip, infos in by_ip.items()},
            {name: node_locality(node) for name, node in node_map.items()},
        )

    def find(self, namespace: str, ip: str, target_ref: Any) -> tuple[PodInfo | None, bool]:
        """(the pod of an endpoint, whether a pod is expected): Istio's getPod."""
        if target_ref is not None and target_ref.kind == POD_KIND:
            ns = target_ref.namespace or namespace
            return self.by_name.get((ns, target_ref.name)), True
        for info in self.by_ip.get(ip, ()):
            if info.namespace == namespace:
                return info, False  # might not be right (hostNetwork), but the best guess
        return None, False

    def workloads(self) -> PodWorkloads:
        """Pods as proxy workloads: by (namespace, IP) — ready pods only — and by (namespace,
        name)."""
        by_ip: dict[tuple[str, str], WorkloadInfo] = {}
        by_name: dict[tuple[str, str], WorkloadInfo] = {}
        for key, info in self.by_name.items():
            by_name[key] = _workload(info)
        for ip, infos in self.by_ip.items():
            for info in infos:
                by_ip.setdefault((info.namespace, ip), by_name[(info.namespace, info.name)])
        return by_ip, by_name


def _workload(info: PodInfo) -> WorkloadInfo:
    sa = info.service_account.rsplit("/sa/", 1)[-1]
    return WorkloadInfo(
        info.name,
        info.namespace,
        info.ips[0] if info.ips else "",
        info.labels,
        sa,
        info.locality,
        kind=POD_KIND,
    )
