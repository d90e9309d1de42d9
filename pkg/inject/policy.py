"""Whether a pod gets a sidecar: Istio's injection policy as one pure function.

In a cluster, the MutatingWebhookConfiguration's namespaceSelector/objectSelector already do
the namespace part; `decide` applies the whole policy (as `istioctl kube-inject` and the
webhook do) from the pod and its namespace's labels:

- pods with `hostNetwork: true`, pods already injected (`sidecar.istio.io/status`) and pods in
  kube-system, kube-public or kube-node-lease are left alone;
- the pod's `sidecar.istio.io/inject` label (or, without it, annotation) wins when it says
  true or false;
- otherwise the namespace decides: `istio-injection=enabled` or an `istio.io/rev` label
  inject, anything else does not (`istio-injection=disabled` even overrides a pod's true,
  as its webhook's namespaceSelector excludes such namespaces).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INJECT_KEY = "sidecar.istio.io/inject"
STATUS_ANNOTATION = "sidecar.istio.io/status"
NAMESPACE_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
_TRUE = frozenset({"y", "yes", "true", "on"})
_FALSE = frozenset({"n", "no", "false", "off"})


class Reason(enum.Enum):
    NAMESPACE_ENABLED = "namespace label enables injection"
    POD_ENABLED = "pod asks for injection"
    POD_DISABLED = "pod opts out of injection"
    NAMESPACE_DISABLED = "namespace disables injection"
    NOT_ENABLED = "neither the namespace nor the pod enables injection"
    HOST_NETWORK = "pod uses the host network"
    ALREADY_INJECTED = "pod is already injected"
    IGNORED_NAMESPACE = "namespace is never injected"


@dataclass(frozen=True, slots=True)
class Decision:
    inject: bool
    reason: Reason


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _flag(value: object) -> bool | None:
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def decide(
    pod: Mapping[str, object],
    namespace: str,
    namespace_labels: Mapping[str, str],
) -> Decision:
    """Istio's policy for `pod` (a Pod or a pod template) in `namespace`."""
    meta = _mapping(pod.get("metadata"))
    spec = _mapping(pod.get("spec"))
    labels = _mapping(meta.get("labels"))
    annotations = _mapping(meta.get("annotations"))
    if spec.get("hostNetwork") is True:
        return Decision(False, Reason.HOST_NETWORK)
    if STATUS_ANNOTATION in annotations:
        return Decision(False, Reason.ALREADY_INJECTED)
    if namespace in IGNORED_NAMESPACES:
        return Decision(False, Reason.IGNORED_NAMESPACE)
    if namespace_labels.get(NAMESPACE_LABEL) == "disabled":
        return Decision(False, Reason.NAMESPACE_DISABLED)
    pod_says = _flag(labels.get(INJECT_KEY))
    if pod_says is None:
        pod_says = _flag(annotations.get(INJECT_KEY))
    if pod_says is True:
        return Decision(True, Reason.POD_ENABLED)
    if pod_says is False:
        return Decision(False, Reason.POD_DISABLED)
    if namespace_labels.get(NAMESPACE_LABEL) == "enabled" or namespace_labels.get(REVISION_LABEL):
        return Decision(True, Reason.NAMESPACE_ENABLED)
    return Decision(False, Reason.NOT_ENABLED)
