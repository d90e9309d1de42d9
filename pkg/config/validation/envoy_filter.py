"""EnvoyFilter: selectors, patch/match consistency and the CRD's waypoint rule.

Istio also converts each patch value into the Envoy proto it targets; pyistio checks the
value's shape (an object) but not its Envoy schema.
"""

from __future__ import annotations

from pkg.config.specs.envoy_filter import (
    ApplyTo,
    EnvoyConfigObjectPatch,
    EnvoyFilter,
    Operation,
    PatchContext,
)
from pkg.config.validation.http import check_regex
from pkg.config.validation.policy import check_networking_selector, check_target_refs
from pkg.config.validation.report import Report

_HCM = ("envoy.filters.network.http_connection_manager", "envoy.http_connection_manager")
_LISTENER_CLASS = (
    ApplyTo.LISTENER,
    ApplyTo.FILTER_CHAIN,
    ApplyTo.NETWORK_FILTER,
    ApplyTo.HTTP_FILTER,
)
_ROUTE_CLASS = (ApplyTo.ROUTE_CONFIGURATION, ApplyTo.VIRTUAL_HOST, ApplyTo.HTTP_ROUTE)
_MAX_PROXY_VERSION = 1024


def validate_envoy_filter(ef: EnvoyFilter, report: Report) -> None:
    report.warn(
        "spec",
        "EnvoyFilter exposes internal implementation details that may change at any time. Prefer "
        "other APIs if possible, and exercise extreme caution, especially around upgrades.",
    )
    check_target_refs(
        report, ef.workload_selector, None, ef.target_refs, selector_name="workloadSelector"
    )
    check_networking_selector(report, ef.workload_selector, "spec.workloadSelector", "Envoy filter")
    for index, patch in enumerate(ef.config_patches):
        _check_patch(report, patch, f"spec.configPatches[{index}]")


def _check_patch(report: Report, cp: EnvoyConfigObjectPatch, path: str) -> None:
    match = cp.match
    waypoint_context = match is not None and match.context == PatchContext.WAYPOINT
    if match is not None and (match.waypoint is not None) != waypoint_context:
        report.error(f"{path}.match", "only support waypointMatch when context is WAYPOINT")
        return
    if waypoint_context:
        return  # Istio does not validate waypoint patches further yet
    if cp.apply_to == ApplyTo.INVALID:
        report.error(f"{path}.applyTo", "Envoy filter: missing applyTo")
        return
    if cp.patch is None:
        report.error(f"{path}.patch", "Envoy filter: missing patch")
        return
    if cp.patch.operation == Operation.INVALID:
        report.error(f"{path}.patch.operation", "Envoy filter: missing patch operation")
        return
    if cp.patch.operation != Operation.REMOVE and cp.patch.value is None:
        report.error(
            f"{path}.patch.value", "Envoy filter: missing patch value for non-remove operation"
        )
        return
    if match is not None and match.proxy is not None and match.proxy.proxy_version:
        version = match.proxy.proxy_version
        at = f"{path}.match.proxy.proxyVersion"
        if len(version) > _MAX_PROXY_VERSION:
            report.warn(
                at,
                f"Envoy filter: proxyVersion match exceeds {_MAX_PROXY_VERSION} characters and "
                "will be ignored",
            )
        elif (problem := check_regex(version)) is not None:
            report.error(at, f"Envoy filter: invalid regex for proxy version, [{problem}]")
            return
    if match is None:
        return
    has_object = any(
        x is not None for x in (match.listener, match.route_configuration, match.cluster)
    )
    if cp.apply_to in _LISTENER_CLASS and has_object:
        _check_listener_match(report, cp, path)
    elif cp.apply_to in _ROUTE_CLASS and has_object and match.route_configuration is None:
        report.error(
            f"{path}.match",
            "Envoy filter: applyTo for http route class objects cannot have non route "
            "configuration match",
        )
    elif cp.apply_to == ApplyTo.CLUSTER and has_object and match.cluster is None:
        report.error(
            f"{path}.match",
            "Envoy filter: applyTo for cluster class objects cannot have non cluster match",
        )


def _check_listener_match(report: Report, cp: EnvoyConfigObjectPatch, path: str) -> None:
    assert cp.match is not None
    listener = cp.match.listener
    if listener is None:
        report.error(
            f"{path}.match",
            "Envoy filter: applyTo for listener class objects cannot have non listener match",
        )
        return
    chain = listener.filter_chain
    if chain is None or chain.filter is None:
        return
    at = f"{path}.match.listener.filterChain.filter"
    if cp.apply_to in (ApplyTo.LISTENER, ApplyTo.FILTER_CHAIN):
        report.warn(at, f"Envoy filter: filter match has no effect when used with {cp.apply_to}")
    if not chain.filter.name:
        report.error(f"{at}.name", "Envoy filter: filter match has no name to match on")
        return
    if chain.filter.sub_filter is None:
        return
    if cp.apply_to != ApplyTo.HTTP_FILTER:
        report.error(
            f"{at}.subFilter",
            "Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only",
        )
    elif chain.filter.name not in _HCM:
        report.error(
            f"{at}.subFilter",
            f"Envoy filter: subfilter match requires filter match with {_HCM[0]}",
        )
    elif not chain.filter.sub_filter.name:
        report.error(
            f"{at}.subFilter.name", "Envoy filter: subfilter match has no name to match on"
        )
