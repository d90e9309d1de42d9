"""Locality load-balancing settings of DestinationRules (Istio's ValidateLocalityLbSetting and
ValidateZoneAwareLbSetting): distribute weights summing to 100 over localities that do not
overlap, failover between distinct regions, failoverPriority without topology labels when
failover is set, and a warning when failover has no outlier detection to trigger it."""

from __future__ import annotations

from collections.abc import Sequence

from pkg.config.specs.destination_rule import (
    LocalityLoadBalancerSetting,
    OutlierDetection,
    ZoneAwareLoadBalancerSetting,
)
from pkg.config.validation.report import Report

_TOPOLOGY_LABELS = (
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
)


def check_locality_lb(
    report: Report,
    lb: LocalityLoadBalancerSetting | None,
    outlier: OutlierDetection | None,
    path: str,
) -> None:
    if lb is None:
        return
    if lb.distribute and lb.failover:
        report.error(path, "can not simultaneously specify 'distribute' and 'failover'")
        return
    if lb.failover:
        for label in lb.failover_priority:
            if label in _TOPOLOGY_LABELS:
                report.error(
                    f"{path}.failoverPriority",
                    f"can not simultaneously set 'failover' and topology label '{label}' in "
                    "'failover_priority'",
                )
                return
    for index, distribute in enumerate(lb.distribute):
        at = f"{path}.distribute[{index}]"
        for weight in distribute.to.values():
            if not 0 < weight <= 100:
                report.error(f"{at}.to", "locality weight must be in range [1, 100]")
                return
        total = sum(distribute.to.values())
        if total != 100:
            report.error(f"{at}.to", f"total locality weight {total} != 100")
            return
        report.error(f"{at}.to", _check_localities(list(distribute.to)))
    report.error(f"{path}.distribute", _check_localities([d.from_ for d in lb.distribute]))
    if (lb.failover or lb.failover_priority) and outlier is None:
        report.warn(path, "outlier detection policy must be provided for failover")
    for index, failover in enumerate(lb.failover):
        _check_failover(
            report, failover.from_, failover.to, f"{path}.failover[{index}]", "locality lb"
        )


def check_zone_aware_lb(
    report: Report,
    lb: ZoneAwareLoadBalancerSetting | None,
    outlier: OutlierDetection | None,
    path: str,
) -> None:
    if lb is None:
        return
    for index, label in enumerate(lb.failover_priority):
        if label in _TOPOLOGY_LABELS:
            report.error(
                f"{path}.failoverPriority[{index}]",
                f"'failover_priority' for zone aware lb must not use topology label '{label}'; "
                "region- and zone-level routing are handled automatically",
            )
    if (lb.failover or lb.failover_priority) and outlier is None:
        report.warn(path, "outlier detection policy must be provided for failover")
    for index, failover in enumerate(lb.failover):
        _check_failover(
            report, failover.from_, failover.to, f"{path}.failover[{index}]", "zone aware lb"
        )


def _check_failover(report: Report, source: str, target: str, path: str, what: str) -> None:
    if source == target:
        report.error(path, f"{what} failover settings must specify different regions")
    if "/" in source or "/" in target:
        report.error(path, f"{what} failover only specify region")
    if "*" in source or "*" in target:
        report.error(path, f"{what} failover region should not contain '*' wildcard")


def _check_localities(localities: Sequence[str]) -> str | None:
    """Istio's validateLocalities: `region[/zone[/subzone]]`, a `*` only at the end, and no
    locality covered by one given before it."""
    seen: dict[str, dict[str, set[str]]] = {}
    for locality in localities:
        stars = locality.count("*")
        if stars and (stars > 1 or not locality.endswith("*")):
            return (
                f"locality {locality} wildcard '*' number can not exceed 1 and must be in the end"
            )
        overlap = f"locality {locality} overlap with previous specified ones"
        if "*" in seen:
            return overlap
        parts = locality.split("/", 2)
        if any(part == "" for part in parts):
            return f"locality {locality} must not contain empty region/zone/subzone info"
        region = parts[0]
        zones = seen.get(region)
        if len(parts) == 1:
            if zones is not None:
                return overlap
            seen[region] = {"*": {"*"}}
            continue
        zone = parts[1]
        if zones is None:
            seen[region] = {zone: {parts[2] if len(parts) == 3 else "*"}}
            continue
        if "*" in zones:
            return overlap
        subzones = zones.get(zone)
        if len(parts) == 2:
            if subzones is not None:
                return overlap
            zones[zone] = {"*"}
        elif subzones is None:
            zones[zone] = {parts[2]}
        elif "*" in subzones or parts[2] in subzones:
            return overlap
        else:
            subzones.add(parts[2])
    return None
