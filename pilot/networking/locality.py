"""Locality load balancing: per-proxy priorities and weights of a ClusterLoadAssignment
(Istio's loadbalancer.ApplyLocalityLoadBalancer, applied in EDS and to DNS clusters' inline
assignments).

The effective setting is the DestinationRule's `localityLbSetting`, else the mesh's (enabled by
default); `enabled: false` turns it off. Then:
- `distribute`: the first entry whose `from` matches the proxy's locality reweights localities
  (a `to` weight split over the matching localities in proportion to their own weight, rounded
  up); localities it does not name get no endpoints.
- otherwise, only with outlier detection (without it Envoy would never leave priority 0):
  `failoverPriority` labels split endpoints into priorities by how many leading labels match
  the proxy's (a `label=value` entry compares with that value instead); and/or locality
  failover: priority 0 same region/zone/subzone, 1 same zone, 2 same region, 3 other regions,
  4 regions other than the `failover.to` of the proxy's region. Priorities are then made
  contiguous from 0.

A proxy's locality comes from its workload's topology labels (topology.kubernetes.io/region,
topology.kubernetes.io/zone, topology.istio.io/subzone), else its WorkloadEntry's `locality`,
else the Envoy node's locality.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pilot.model.endpoint import IstioEndpoint
from pilot.model.proxy_view import ProxyView
from pilot.networking.traffic_policy import EffectivePolicy, mesh_defaults

REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
SUBZONE_LABEL = "topology.istio.io/subzone"
NETWORK_LABEL = "topology.istio.io/network"

Locality = tuple[str, str, str]  # region, zone, subzone


def parse_locality(value: str) -> Locality:
    region, _, rest = value.partition("/")
    zone, _, subzone = rest.partition("/")
    return region, zone, subzone


def proxy_locality(view: ProxyView) -> Locality:
    return view.push.memo(("proxy-locality", id(view)), lambda: _proxy_locality(view))


def _proxy_locality(view: ProxyView) -> Locality:
    labels = view.labels
    names = (REGION_LABEL, ZONE_LABEL, SUBZONE_LABEL)
    if any(k in labels for k in names):
        region, zone, subzone = (labels.get(k, "") for k in names)
        return region, zone, subzone
    if view.workload is not None and view.workload.locality:
        return parse_locality(view.workload.locality)
    return parse_locality(view.proxy.locality)


def effective_setting(view: ProxyView, policy: EffectivePolicy) -> Any | None:
    """The LocalityLoadBalancerSetting in force (None: locality load balancing is off)."""
    lb = policy.load_balancer
    setting = lb.locality_lb_setting if lb is not None else None
    if setting is not None:
        return None if setting.enabled is False else setting
    return mesh_defaults(view.push.mesh).locality_lb


def applies(setting: Any | None, has_outlier: bool) -> bool:
    """Whether the setting changes anything in an assignment."""
    return setting is not None and (bool(setting.distribute) or has_outlier)


def dependency(view: ProxyView, policy: EffectivePolicy) -> tuple[str, ...] | None:
    """None when locality leaves an assignment alone; else the failoverPriority label names
    whose values (with the proxy's locality) the assignment depends on."""
    setting = effective_setting(view, policy)
    if setting is None or not applies(setting, policy.outlier_detection is not None):
        return None
    return tuple(_priority_labels(setting)[0])


def proxy_key(view: ProxyView, label_names: tuple[str, ...]) -> tuple[object, ...]:
    """The proxy's part of an assignment's cache key: its locality and priority labels."""
    where = proxy_locality(view)
    if not label_names:
        return where
    labels = _proxy_labels(view, where)
    return (where, tuple(labels.get(name) for name in label_names))


@dataclass
class Group:
    """One LocalityLbEndpoints being built, with the endpoints behind its lb_endpoints."""

    proto: Any
    members: list[IstioEndpoint]


def apply(view: ProxyView, policy: EffectivePolicy, cla: Any, groups: Sequence[Group]) -> None:
    setting = effective_setting(view, policy)
    has_outlier = policy.outlier_detection is not None
    if setting is None or not applies(setting, has_outlier):
        return
    locality = proxy_locality(view)
    if setting.distribute:
        _apply_weights(locality, cla, setting.distribute)
        return
    if setting.failover_priority:
        _apply_failover_priorities(cla, groups, _proxy_labels(view, locality), setting)
        if setting.failover:
            _apply_locality_failover(locality, cla, setting.failover)
    else:
        _apply_locality_failover(locality, cla, setting.failover)


def _proxy_labels(view: ProxyView, locality: Locality) -> dict[str, str]:
    """The proxy's labels with its topology added, as Istio augments them."""
    out = dict(view.labels)
    for name, value in zip((REGION_LABEL, ZONE_LABEL, SUBZONE_LABEL), locality, strict=True):
        if value:
            out.setdefault(name, value)
    return out


def endpoint_labels(ep: IstioEndpoint) -> Mapping[str, str]:
    out = dict(ep.labels)
    for name, value in zip(
        (REGION_LABEL, ZONE_LABEL, SUBZONE_LABEL), parse_locality(ep.locality), strict=True
    ):
        if value:
            out.setdefault(name, value)
    if ep.network:
        out.setdefault(NETWORK_LABEL, ep.network)
    return out


def _locality_of(group: Any) -> Locality:
    loc = group.locality
    return loc.region, loc.zone, loc.sub_zone


def _matches(locality: Locality, rule: str) -> bool:
    """Istio's LocalityMatch: `*` (or a missing zone/subzone) matches anything."""
    region, zone, subzone = parse_locality(rule)
    return (
        (region == "*" or locality[0] == region)
        and (zone in ("*", "") or locality[1] == zone)
        and (subzone in ("*", "") or locality[2] == subzone)
    )


def _apply_weights(locality: Locality, cla: Any, distribute: Sequence[Any]) -> None:
    for rule in distribute:
        if not _matches(locality, rule.from_):
            continue
        unmatched = set(range(len(cla.endpoints)))
        for target, weight in rule.to.items():
            chosen: dict[int, int] = {}
            for i in sorted(unmatched):
                group = cla.endpoints[i]
                if _matches(_locality_of(group), target):
                    chosen[i] = group.load_balancing_weight.value or 1
            unmatched -= set(chosen)
            total = sum(chosen.values())
            for i, original in chosen.items():
                share = original * weight / total
                if share > 0:
                    cla.endpoints[i].load_balancing_weight.value = math.ceil(share)
        for i in unmatched:
            del cla.endpoints[i].lb_endpoints[:]
        return


def _lb_priority(proxy: Locality, endpoint: Locality) -> int:
    if proxy[0] != endpoint[0]:
        return 3
    if proxy[1] != endpoint[1]:
        return 2
    return 0 if proxy[2] == endpoint[2] else 1


def _compact(cla: Any) -> None:
    """Renumber priorities 0..N without gaps, keeping their order."""
    ranks = {p: i for i, p in enumerate(sorted({g.priority for g in cla.endpoints}))}
    for group in cla.endpoints:
        group.priority = ranks[group.priority]


def _apply_locality_failover(locality: Locality, cla: Any, failover: Sequence[Any]) -> None:
    for group in cla.endpoints:
        target = _locality_of(group)
        priority = _lb_priority(locality, target)
        if priority == 3:
            for rule in failover:
                if rule.from_ == locality[0]:
                    if target[0] != rule.to:
                        priority = 4
                    break
        group.priority = group.priority * 5 + priority
    _compact(cla)


def _priority_labels(setting: Any) -> tuple[list[str], dict[str, str]]:
    names: list[str] = []
    overrides: dict[str, str] = {}
    for entry in setting.failover_priority:
        name, sep, value = entry.partition("=")
        names.append(name)
        if sep:
            overrides[name] = value
    return names, overrides


def _apply_failover_priorities(
    cla: Any, groups: Sequence[Group], proxy_labels: Mapping[str, str], setting: Any
) -> None:
    """Split every locality's endpoints by how well their labels match the proxy's."""
    if not proxy_labels or not groups:
        return
    names, overrides = _priority_labels(setting)
    lowest = len(names)
    includes_network = bool(names) and names[0] == NETWORK_LABEL
    split: list[Any] = []
    for group in groups:
        by_priority: dict[int, list[int]] = {}
        for index, ep in enumerate(group.members):
            labels = endpoint_labels(ep)
            priority = adjust = 0
            for j, name in enumerate(names):
                wanted = overrides.get(name, proxy_labels.get(name))
                if wanted != labels.get(name):
                    if j == 0 and includes_network:
                        adjust = lowest
                        continue
                    priority = lowest - j
                    break
            by_priority.setdefault(priority + adjust, []).append(index)
        for priority in sorted(by_priority):
            out = type(group.proto)()
            out.CopyFrom(group.proto)
            del out.lb_endpoints[:]
            out.priority = priority
            weight = 0
            for index in by_priority[priority]:
                lb = group.proto.lb_endpoints[index]
                out.lb_endpoints.append(lb)
                weight += lb.load_balancing_weight.value
            out.load_balancing_weight.value = weight
            split.append(out)
    del cla.endpoints[:]
    cla.endpoints.extend(split)
    _compact(cla)
