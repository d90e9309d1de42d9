"""The snapshot analyzers read: resources by kind, workloads, namespaces and the service table.

`ServiceIndex` reproduces Istio's analyzer lookup (util.InitServiceEntryHostMap and
GetDestinationHost): every ServiceEntry host and Kubernetes Service is keyed by the namespace
scope it is exported to (`*` for all) and its FQDN (short names completed with
`.<ns>.svc.cluster.local`), and a reference from namespace N with exportTo E is resolved by
the `*` scope, then N's (or E's) scopes, then wildcard ServiceEntry hosts visible to N.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pkg.analysis.loader import Loaded
from pkg.analysis.resource import Resource, ResourceRef, Workload
from pkg.config import host as hosts
from pkg.config.mesh import MeshConfig
from pkg.config.model import Config, Kind
from pkg.config.specs.kube import ServiceSpec
from pkg.config.specs.networking import ServiceEntry

DOMAIN = "svc.cluster.local"
ALL = "*"
LOCAL = "."
EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"


def fqdn(namespace: str, host: str) -> str:
    """Istio's ConvertHostToFQDN: a name without a dot (and not a wildcard) is a short
    Kubernetes name in `namespace`."""
    if host.startswith("*") or "." in host:
        return host
    return f"{host}.{namespace}.{DOMAIN}"


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A service as the analyzers see it: a ServiceEntry host or a Kubernetes Service."""

    ref: ResourceRef
    host: str  # the FQDN
    ports: tuple[int, ...]
    selector: Mapping[str, str] | None  # the workloads it selects, in its namespace
    endpoint_labels: tuple[Mapping[str, str], ...] = ()  # a ServiceEntry's inline endpoints

    @property
    def namespace(self) -> str:
        return self.ref.namespace


class ServiceIndex:
    def __init__(self, resources: Sequence[Resource]) -> None:
        self._by_scope: dict[tuple[str, str], ServiceInfo] = {}
        for r in resources:
            if r.config is None:
                continue
            if r.config.meta.kind is Kind.SERVICE_ENTRY:
                self._add_service_entry(r.ref, r.config)
            elif r.config.meta.kind is Kind.SERVICE:
                self._add_service(r.ref, r.config)

    def _add_service_entry(self, ref: ResourceRef, config: Config[Any]) -> None:
        spec: ServiceEntry = config.spec
        selector = dict(spec.workload_selector.labels) if spec.workload_selector else None
        endpoints = tuple(dict(e.labels) for e in spec.endpoints)
        ports = tuple(p.number for p in spec.ports)
        scopes = _scopes(spec.export_to, ref.namespace)
        for h in spec.hosts:
            info = ServiceInfo(ref, fqdn(ref.namespace, h), ports, selector, endpoints)
            for scope in scopes:
                self._by_scope[(scope, info.host)] = info

    def _add_service(self, ref: ResourceRef, config: Config[Any]) -> None:
        spec: ServiceSpec = config.spec
        annotation = config.meta.annotations.get(EXPORT_TO_ANNOTATION, "")
        export_to = [s.strip() for s in annotation.split(",")] if annotation else []
        info = ServiceInfo(
            ref,
            fqdn(ref.namespace, ref.name),
            tuple(p.port for p in spec.ports),
            dict(spec.selector) if spec.selector else None,
        )
        for scope in _scopes(export_to, ref.namespace):
            self._by_scope[(scope, info.host)] = info

    def lookup(self, namespace: str, export_to: Sequence[str], host: str) -> ServiceInfo | None:
        """The service `host` names, seen from `namespace` by an object exported to
        `export_to` (Istio's GetDestinationHost)."""
        name = fqdn(namespace, host)
        found = self._by_scope.get((ALL, name))
        if found is not None:
            return found
        for scope in export_to or [namespace]:
            found = self._by_scope.get((namespace if scope == LOCAL else scope, name))
            if found is not None:
                return found
        bare = host.removeprefix("*")
        for (scope, service_host), info in self._by_scope.items():
            if not service_host.startswith("*") or scope not in (ALL, namespace):
                continue
            if bare.endswith(service_host[1:]):
                return info
        return None

    def any_matching(self, pattern: str, namespace: str) -> bool:
        """Whether a wildcard `pattern` covers any service visible from `namespace`."""
        return any(
            scope in (ALL, namespace) and hosts.intersects(pattern, service_host)
            for scope, service_host in self._by_scope
        )


def _scopes(export_to: Sequence[str], namespace: str) -> list[str]:
    if not export_to or ALL in export_to:
        return [ALL]
    return sorted({namespace if e == LOCAL else e for e in export_to})


class AnalysisInput:
    """Everything one analysis run reads. Built once; analyzers only read it."""

    def __init__(self, loaded: Loaded, mesh: MeshConfig | None = None) -> None:
        self.resources = loaded.resources
        self.workloads = loaded.workloads
        self.namespace_labels = loaded.namespace_labels
        self.mesh = mesh or MeshConfig()
        self.services = ServiceIndex(self.resources)
        self._present = {(r.kind, r.namespace, r.name) for r in self.resources}

    def of_kind(self, kind: Kind) -> Iterator[tuple[Resource, Config[Any]]]:
        """Valid resources of `kind` (in input order) with their parsed config."""
        for r in self.resources:
            if r.config is not None and r.config.meta.kind is kind:
                yield r, r.config

    def exists(self, kind: Kind, namespace: str, name: str) -> bool:
        """Whether the input defines this object (valid or not)."""
        return (kind.value, namespace, name) in self._present

    @property
    def root_namespace(self) -> str:
        return self.mesh.root_namespace

    def known_namespaces(self) -> set[str]:
        """Namespace documents, plus every namespace an object or workload lives in (in
        standalone mode namespaces exist by being used), plus the root namespace."""
        out = set(self.namespace_labels)
        out.update(r.namespace for r in self.resources if r.namespace)
        out.update(w.namespace for w in self.workloads)
        out.add(self.root_namespace)
        return out

    def mesh_workloads(self, namespace: str | None = None) -> Iterator[Workload]:
        for w in self.workloads:
            if w.in_mesh and (namespace is None or w.namespace == namespace):
                yield w
