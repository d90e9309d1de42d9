"""`istioctl kube-inject` over manifests: the pod (template) of each workload kind Istio's
kube-inject handles gets the sidecar; every other document passes through unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pkg.inject.policy import NAMESPACE_LABEL, decide
from pkg.inject.sidecar import InjectionSettings, inject

# kind → the path of its pod template (() = the object is the pod).
TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


class InjectError(ValueError):
    """A workload that cannot be injected; the message names it."""


@dataclass(frozen=True, slots=True)
class Injected:
    obj: Any
    injected: bool  # False: passed through (not a workload, opted out, host network, ...)


def inject_object(obj: Any, settings: InjectionSettings) -> Injected:
    """The document with its pod template injected, unless the policy (pkg/inject/policy.py)
    says no: the pod opts out, uses the host network, is injected, or is in kube-system."""
    if not isinstance(obj, dict) or obj.get("kind") not in TEMPLATE_PATHS:
        return Injected(obj, False)
    path = TEMPLATE_PATHS[obj["kind"]]
    metadata = obj.get("metadata")
    meta: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
    where = f"{obj['kind']}/{meta.get('name', '')}"
    template: Any = obj
    for key in path:
        template = template.get(key) if isinstance(template, dict) else None
    if not isinstance(template, dict):
        raise InjectError(f"{where}: {'.'.join(path)}: Required value (the pod template)")
    # Offline, the namespace is taken as enabled: the pod's own opt-out and the rest of the
    # policy still apply.
    namespace = str(meta.get("namespace") or "default")
    if not decide(template, namespace, {NAMESPACE_LABEL: "enabled"}).inject:
        return Injected(obj, False)
    result = inject(template, settings, workload_name=str(meta.get("name", "")))
    if not path:
        return Injected(result, True)
    out = dict(obj)
    node = out
    for key in path[:-1]:
        node[key] = dict(node[key])
        node = node[key]
    node[path[-1]] = result
    return Injected(out, True)
