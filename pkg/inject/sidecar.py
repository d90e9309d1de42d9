"""The pod mutation of Istio's sidecar injection (facts from Istio's injection-template.yaml):
the `istio-init` init container doing the REDIRECT iptables step, the `istio-proxy` container
(here plain Envoy with the bootstrap of pkg/inject/bootstrap.py), their volumes, and the
labels and annotations Istio sets.

`inject(pod, settings)` is pure: a pod (or pod template) in, the injected copy out.
`json_patch(pod, injected)` is the RFC 6902 patch the /inject webhook answers: whole fields of
`metadata` and `spec` (labels, annotations, containers, initContainers, volumes, ...), each
added when the original lacks it and replaced otherwise. Coarse, but exact: applied to the
original it gives the injected pod.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pkg.inject.bootstrap import (
    ADMIN_PORT,
    HEALTH_PORT,
    PROMETHEUS_PORT,
    ROOT_CERT_PATH,
    TOKEN_PATH,
    StsCredentials,
    sidecar_bootstrap,
)
from pkg.inject.policy import STATUS_ANNOTATION
from pkg.proxy_bootstrap import BootstrapOptions

PROXY_NAME = "istio-proxy"
INIT_NAME = "istio-init"
PROXY_UID = 1337
OUTBOUND_PORT = 15001
INBOUND_PORT = 15006
TLS_MODE_LABEL = "security.istio.io/tlsMode"
CANONICAL_NAME = "service.istio.io/canonical-name"
CANONICAL_REVISION = "service.istio.io/canonical-revision"
VOLUMES = ("istio-envoy", "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert")
_RESOURCES = {
    "limits": {"cpu": "2", "memory": "1Gi"},
    "requests": {"cpu": "100m", "memory": "128Mi"},
}


@dataclass(frozen=True, slots=True)
class InjectionSettings:
    """Cluster-wide injection parameters (Istio's values.global.* / meshConfig)."""

    proxy_image: str = "docker.io/envoyproxy/envoy:distroless-v1.40.0"
    # The init step runs Istio's own `istio-iptables` (the proxyv2 image).
    init_image: str = "docker.io/istio/proxyv2:1.28.0"
    xds_address: str = "istiod.istio-system.svc:15012"
    sts_uri: str = "http://istiod.istio-system.svc:15014/token"
    revision: str = "default"
    xds_api: str = "delta"


def inject(
    pod: Mapping[str, Any], settings: InjectionSettings, workload_name: str = ""
) -> dict[str, Any]:
    """A copy of `pod` (a Pod or a pod template) with the sidecar. `workload_name` names the
    owning workload (for the canonical-name label when the pod has no app label)."""
    out = copy.deepcopy(dict(pod))
    meta = out.setdefault("metadata", {})
    spec = out.setdefault("spec", {})
    labels = meta.setdefault("labels", {})
    annotations = meta.setdefault("annotations", {})
    containers = spec.setdefault("containers", [])
    app_containers = [c.get("name", "") for c in containers if isinstance(c, dict)]
    name = workload_name or meta.get("name") or str(meta.get("generateName", "")).rstrip("-")
    labels.setdefault(TLS_MODE_LABEL, "istio")
    labels.setdefault(
        CANONICAL_NAME,
        labels.get("app.kubernetes.io/name") or labels.get("app") or name or "unknown",
    )
    labels.setdefault(
        CANONICAL_REVISION,
        labels.get("app.kubernetes.io/version") or labels.get("version") or "latest",
    )
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec.setdefault("initContainers", []).insert(0, init_container(settings))
    containers.append(proxy_container(settings, dict(labels), str(account)))
    spec.setdefault("volumes", []).extend(volumes())
    if app_containers:
        annotations.setdefault("kubectl.kubernetes.io/default-container", app_containers[0])
        annotations.setdefault("kubectl.kubernetes.io/default-logs-container", app_containers[0])
    annotations.setdefault("prometheus.io/scrape", "true")
    annotations.setdefault("prometheus.io/port", str(PROMETHEUS_PORT))
    annotations.setdefault("prometheus.io/path", "/stats/prometheus")
    annotations["istio.io/rev"] = settings.revision
    annotations[STATUS_ANNOTATION] = status_annotation(settings.revision)
    return out


def status_annotation(revision: str) -> str:
    return json.dumps(
        {
            "initContainers": [INIT_NAME],
            "containers": [PROXY_NAME],
            "volumes": list(VOLUMES),
            "imagePullSecrets": None,
            "revision": revision,
        },
        separators=(",", ":"),
    )


def init_container(settings: InjectionSettings) -> dict[str, Any]:
    """Istio's REDIRECT step: outbound to 15001, inbound to 15006, Envoy's own UID exempt."""
    return {
        "name": INIT_NAME,
        "image": settings.init_image,
        "args": [
            "istio-iptables",
            "-p",
            str(OUTBOUND_PORT),
            "-z",
            str(INBOUND_PORT),
            "-u",
            str(PROXY_UID),
            "-m",
            "REDIRECT",
            "-i",
            "*",
            "-x",
            "",
            "-b",
            "*",
            "-d",
            f"{PROMETHEUS_PORT},{HEALTH_PORT},15020",
            "--log_output_level=default:info",
        ],
        "resources": copy.deepcopy(_RESOURCES),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": False,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "runAsUser": 0,
        },
    }


def proxy_options(labels: Mapping[str, str], service_account: str, xds_address: str,
                  xds_api: str = "delta") -> BootstrapOptions:  # fmt: skip
    """The sidecar's bootstrap options; the kubelet fills in the pod's IP, name, namespace."""
    return BootstrapOptions(
        name="$(POD_NAME)",
        namespace="$(POD_NAMESPACE)",
        ip="$(INSTANCE_IP)",
        labels=labels,
        service_account=service_account,
        istiod=xds_address,
        admin_port=ADMIN_PORT,
        xds_api="sotw" if xds_api == "sotw" else "delta",
    )


def proxy_container(
    settings: InjectionSettings, labels: Mapping[str, str], service_account: str
) -> dict[str, Any]:
    opts = proxy_options(labels, service_account, settings.xds_address, settings.xds_api)
    bootstrap = sidecar_bootstrap(opts, StsCredentials(settings.sts_uri))
    return {
        "name": PROXY_NAME,
        "image": settings.proxy_image,
        "command": ["envoy"],
        "args": [
            "--config-yaml",
            json.dumps(bootstrap, separators=(",", ":"), sort_keys=True),
            "--disable-hot-restart",
            "--concurrency",
            "2",
            "-l",
            "warning",
        ],
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            _field_env("INSTANCE_IP", "status.podIP"),
            _field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ],
        "ports": [{"containerPort": PROMETHEUS_PORT, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": HEALTH_PORT},
            "initialDelaySeconds": 1,
            "periodSeconds": 2,
            "timeoutSeconds": 3,
            "failureThreshold": 4,
        },
        "resources": copy.deepcopy(_RESOURCES),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsGroup": PROXY_UID,
            "runAsNonRoot": True,
            "runAsUser": PROXY_UID,
        },
        "volumeMounts": [
            {
                "name": "istiod-ca-cert",
                "mountPath": ROOT_CERT_PATH.rpartition("/")[0],
                "readOnly": True,
            },
            {"name": "istio-data", "mountPath": "/var/lib/istio/data"},
            {"name": "istio-envoy", "mountPath": "/etc/istio/proxy"},
            {"name": "istio-token", "mountPath": TOKEN_PATH.rpartition("/")[0]},
            {"name": "istio-podinfo", "mountPath": "/etc/istio/pod"},
        ],
    }


def volumes() -> list[dict[str, Any]]:
    return [
        {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
        {"name": "istio-data", "emptyDir": {}},
        {
            "name": "istio-podinfo",
            "downwardAPI": {
                "items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                ]
            },
        },
        {
            "name": "istio-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "istio-ca",
                            "expirationSeconds": 43200,
                            "path": TOKEN_PATH.rpartition("/")[2],
                        }
                    }
                ]
            },
        },
        {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
    ]


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


_SECTIONS = ("metadata", "spec")


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def json_patch(original: Mapping[str, Any], injected: Mapping[str, Any]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for section in _SECTIONS:
        before = original.get(section)
        after = injected.get(section)
        if before == after or after is None:
            continue
        if not isinstance(before, dict) or not isinstance(after, dict):
            ops.append({"op": "add", "path": _pointer(section), "value": after})
            continue
        for key, value in after.items():
            if key not in before:
                ops.append({"op": "add", "path": _pointer(section, key), "value": value})
            elif before[key] != value:
                ops.append({"op": "replace", "path": _pointer(section, key), "value": value})
        ops.extend(
            {"op": "remove", "path": _pointer(section, key)} for key in before if key not in after
        )
    return ops
