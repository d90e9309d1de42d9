"""Object metadata: names, namespaces, labels, annotations and timestamps as Kubernetes checks
them, plus istiod's metadata rules (reserved internal annotations, `istio.io/dry-run`)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pkg.config.specs.kube import ObjectMeta
from pkg.config.validation.names import (
    check_k8s_dns1035,
    check_k8s_label,
    check_k8s_subdomain,
    check_label_value,
    check_qualified_name,
)

Issues = list[tuple[str, str]]
_MAX_ANNOTATIONS_BYTES = 256 * 1024
_RESERVED_ANNOTATIONS = (
    "internal.istio.io/webhook-always-reject",
    "internal.istio.io/parent-namespace",
    "internal.istio.io/parents",
)
DRY_RUN_ANNOTATION = "istio.io/dry-run"


class NameRule(StrEnum):
    """How a kind's `metadata.name` is validated."""

    SUBDOMAIN = "subdomain"  # most kinds: a DNS-1123 subdomain
    LABEL = "label"  # Namespace: a DNS-1123 label
    DNS1035 = "dns1035"  # Service: a DNS-1035 label


_NAME_CHECKS = {
    NameRule.SUBDOMAIN: check_k8s_subdomain,
    NameRule.LABEL: check_k8s_label,
    NameRule.DNS1035: check_k8s_dns1035,
}


def check_metadata(meta: ObjectMeta, rule: NameRule, namespaced: bool, issues: Issues) -> None:
    if not meta.name:
        issues.append(("metadata.name", "Required value: name is required"))
    else:
        problem = _NAME_CHECKS[rule](meta.name)
        if problem is not None:
            issues.append(("metadata.name", f"Invalid value: {meta.name!r}: {problem}"))
    if namespaced and meta.namespace:
        problem = check_k8s_label(meta.namespace)
        if problem is not None:
            issues.append(("metadata.namespace", f"Invalid value: {meta.namespace!r}: {problem}"))
    for key, value in meta.labels.items():
        problem = check_qualified_name(key) or check_label_value(value)
        if problem is not None:
            issues.append(("metadata.labels", problem))
    size = 0
    for key, value in meta.annotations.items():
        size += len(key) + len(value)
        problem = check_qualified_name(key)
        if problem is not None:
            issues.append(("metadata.annotations", problem))
    if size > _MAX_ANNOTATIONS_BYTES:
        issues.append(
            ("metadata.annotations", f"Too long: must have at most {_MAX_ANNOTATIONS_BYTES} bytes")
        )
    if meta.creation_timestamp:
        try:
            parse_timestamp(meta.creation_timestamp)
        except ValueError as err:
            issues.append(("metadata.creationTimestamp", str(err)))


def check_istio_metadata(meta: ObjectMeta, allow_dry_run: bool, issues: Issues) -> None:
    """istiod's rules for the metadata of Istio kinds."""
    for key in _RESERVED_ANNOTATIONS:
        if key in meta.annotations:
            issues.append(
                (f"metadata.annotations[{key}]", f'"{key}" annotation found, this may not be set')
            )
    if DRY_RUN_ANNOTATION in meta.annotations and not allow_dry_run:
        issues.append(
            (
                f"metadata.annotations[{DRY_RUN_ANNOTATION}]",
                f"unsupported annotation {DRY_RUN_ANNOTATION}, please remove the annotation",
            )
        )


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp (`2024-05-01T10:00:00Z`)."""
    try:
        if "T" not in text.upper():
            raise ValueError
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid RFC 3339 timestamp {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
