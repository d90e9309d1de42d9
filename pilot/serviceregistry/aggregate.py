"""The aggregate registry: every source's services and endpoints, and what a change touched.

`build_registry` is a pure function of the registry inputs (ServiceEntries, WorkloadEntries,
Services, EndpointSlices, Pods, Nodes); pods and nodes are indexed once per build (`PodIndex`),
so a build is linear in the number of objects. `diff` compares two results the way Istio
classifies registry events: a service that appeared, disappeared or changed (ports, addresses,
service accounts, ...) needs a full push (ConfigKey kind ServiceEntry/Service); a service whose
endpoints alone changed needs only an endpoint push (ConfigKey kind Endpoints).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pilot.model.endpoint import EndpointIndex, EndpointKey, IstioEndpoint
from pilot.model.service import Registry, Service
from pilot.serviceregistry.kube import SliceContext, convert_service, slices_by_service
from pilot.serviceregistry.pods import PodIndex
from pilot.serviceregistry.serviceentry import convert_service_entry
from pilot.serviceregistry.workload import from_workload_entry
from pkg.config.model import Config, ConfigKey, Kind

REGISTRY_KINDS = frozenset(
    {
        Kind.SERVICE_ENTRY,
        Kind.WORKLOAD_ENTRY,
        Kind.SERVICE,
        Kind.ENDPOINT_SLICE,
        Kind.POD,
        Kind.NODE,
    }
)


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    services: tuple[Service, ...] = ()
    endpoints: Mapping[EndpointKey, tuple[IstioEndpoint, ...]] = field(default_factory=dict)
    pods: PodIndex = field(default_factory=PodIndex)

    def endpoint_index(self) -> EndpointIndex:
        return EndpointIndex.of(self.endpoints)

    def by_key(self) -> dict[EndpointKey, Service]:
        return {(s.hostname, s.namespace): s for s in self.services}


def build_registry(
    configs: Mapping[Kind, tuple[Config[Any], ...]],
    domain_suffix: str,
    trust_domain: str,
    *,
    require_pods: bool = False,
    send_unhealthy: bool = False,
) -> RegistrySnapshot:
    """`require_pods`: pods are watched (Kubernetes mode), so a slice endpoint whose pod is
    not known yet is left out until it is; `send_unhealthy`: PILOT_SEND_UNHEALTHY_ENDPOINTS."""
    pods = PodIndex.build(configs.get(Kind.POD, ()), configs.get(Kind.NODE, ()), trust_domain)
    context = SliceContext(pods, require_pods, send_unhealthy)
    workloads = [from_workload_entry(c) for c in configs.get(Kind.WORKLOAD_ENTRY, ())]
    services: list[Service] = []
    endpoints: dict[EndpointKey, tuple[IstioEndpoint, ...]] = {}
    slices = slices_by_service(configs.get(Kind.ENDPOINT_SLICE, ()))
    for config in configs.get(Kind.SERVICE, ()):
        svc, eps = convert_service(
            config,
            slices.get((config.namespace, config.name), []),
            workloads,
            domain_suffix,
            trust_domain,
            context,
        )
        services.append(svc)
        endpoints[(svc.hostname, svc.namespace)] = eps
    for config in configs.get(Kind.SERVICE_ENTRY, ()):
        for svc, eps in convert_service_entry(config, workloads, trust_domain):
            key = (svc.hostname, svc.namespace)
            if key in endpoints:
                existing = next(s for s in services if (s.hostname, s.namespace) == key)
                if existing.registry is Registry.KUBERNETES:
                    continue  # a Kubernetes Service owns its hostname
                if existing.creation_timestamp <= svc.creation_timestamp:
                    continue  # the older ServiceEntry keeps the hostname
                services.remove(existing)
            services.append(svc)
            endpoints[key] = eps
    return RegistrySnapshot(tuple(services), endpoints, pods)


def diff(old: RegistrySnapshot, new: RegistrySnapshot) -> tuple[set[ConfigKey], set[ConfigKey]]:
    """(service keys needing a full push, endpoint keys needing an EDS push)."""
    old_services = old.by_key()
    new_services = new.by_key()
    full: set[ConfigKey] = set()
    eds: set[ConfigKey] = set()
    for key in old_services.keys() | new_services.keys():
        before = old_services.get(key)
        after = new_services.get(key)
        if before != after:
            svc = after or before
            assert svc is not None
            kind = Kind.SERVICE if svc.registry is Registry.KUBERNETES else Kind.SERVICE_ENTRY
            name = svc.source.name if svc.source is not None else svc.hostname
            full.add(ConfigKey(kind, name, svc.namespace))
            full.add(ConfigKey(Kind.ENDPOINTS, key[0], key[1]))
            continue
        if old.endpoints.get(key, ()) != new.endpoints.get(key, ()):
            eds.add(ConfigKey(Kind.ENDPOINTS, key[0], key[1]))
    return full, eds
