"""Checks shared by many kinds: workload selectors, policy target references, `exportTo`."""

from __future__ import annotations

from collections.abc import Sequence

from pkg.config.specs.sidecar import WorkloadSelector as NetworkingSelector
from pkg.config.types import PolicyTargetReference, WorkloadSelector
from pkg.config.validation.names import is_dns1123_label
from pkg.config.validation.report import Report

# Target kinds a policy may attach to (group, kind); the version does not matter.
_TARGET_KINDS = (
    ("", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
)


def check_selector(report: Report, selector: WorkloadSelector | None, path: str) -> None:
    """istio.type.v1beta1.WorkloadSelector: the CRD forbids wildcards and empty keys."""
    if selector is None:
        return
    if not selector.match_labels:
        report.warn(path, "workload selector specified without labels")


def check_networking_selector(
    report: Report, selector: NetworkingSelector | None, path: str, what: str
) -> None:
    """The networking selector of Sidecar, ServiceEntry and EnvoyFilter (`labels`)."""
    if selector is None:
        return
    for key, value in selector.labels.items():
        if key == "":
            report.error(f"{path}.labels", f'empty key is not supported in selector: "={value}"')
        if "*" in key:
            report.error(
                f"{path}.labels", f'wildcard is not supported in selector: "{key}={value}"'
            )
    if not selector.labels:
        report.warn(
            path,
            f"{what}: workload selector specified without labels, will be applied to all "
            "services in namespace",
        )


def check_target_refs(
    report: Report,
    selector: object | None,
    target_ref: PolicyTargetReference | None,
    target_refs: Sequence[PolicyTargetReference],
    *,
    selector_name: str = "selector",
) -> None:
    """At most one of the selector, `targetRef` and `targetRefs`, and each ref to a known kind."""
    chosen = sum((selector is not None, target_ref is not None, len(target_refs) > 0))
    if chosen > 1:
        report.error("spec", f"only one of targetRefs or {selector_name} can be set")
    if target_ref is not None:
        _check_target_ref(report, target_ref, "spec.targetRef")
    for index, ref in enumerate(target_refs):
        _check_target_ref(report, ref, f"spec.targetRefs[{index}]")


def _check_target_ref(report: Report, ref: PolicyTargetReference, path: str) -> None:
    group = ref.group or ""
    if (group, ref.kind) not in _TARGET_KINDS:
        allowed = ", ".join(f"{g or 'core'}/{k}" for g, k in _TARGET_KINDS)
        report.error(
            f"{path}.kind",
            f"targetRef must be to one of [{allowed}] but was {ref.group}/{ref.kind}",
        )


def check_export_to(
    report: Report,
    export_to: Sequence[str],
    *,
    service_entry: bool = False,
    has_workload_selector: bool = False,
) -> None:
    """`exportTo`: `.`, `*`, `~` (ServiceEntry only) or namespace names, without duplicates."""
    if not export_to:
        return
    path = "spec.exportTo"
    namespace = report.namespace
    seen: set[str] = set()
    for index, entry in enumerate(export_to):
        key = namespace if entry == "." else entry
        if key in seen:
            if key != entry:
                reason = f"duplicate entries in exportTo: . and current namespace {namespace}"
            else:
                reason = f"duplicate entries in exportTo for entry {entry}"
            report.error(f"{path}[{index}]", reason)
            continue
        if entry == "~" and not service_entry:
            report.error(
                f"{path}[{index}]",
                "exportTo ~ (none) is not allowed for Istio configuration objects",
            )
            continue
        if entry not in (".", "*", "~") and not is_dns1123_label(entry):
            report.error(
                f"{path}[{index}]",
                "only .,*, or a valid DNS 1123 label is allowed as exportTo entry",
            )
            continue
        seen.add(key)
    if has_workload_selector and seen:
        if namespace not in seen:
            report.error(
                path,
                "destination rule with workload selector cannot have exportTo beyond current "
                "namespace",
            )
        elif len(seen) > 1:
            report.error(
                path,
                "destination rule with workload selector cannot have multiple entries in exportTo",
            )
    if "*" in seen and len(export_to) > 1:
        report.error(
            path, "cannot have both public (*) and non-public exportTo values for a resource"
        )
    if "~" in seen and len(export_to) > 1:
        report.error(path, "cannot export service entry to no one (~) and someone")
