"""The injected pod (pkg/inject/sidecar.py) and its JSON patch (pkg/inject/patch.py)."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from pkg.inject.sidecar import InjectionSettings, inject, json_patch
from pkg.inject.workloads import inject_object

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"generateName": "ratings-v1-7d-", "labels": {"app": "ratings", "version": "v1"}},
    "spec": {
        "serviceAccountName": "bookinfo-ratings",
        "containers": [
            {"name": "ratings", "image": "ratings:1", "ports": [{"containerPort": 9080}]}
        ],
    },
}


def _proxy(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "istio-proxy")


def test_injection_adds_istios_containers_volumes_labels_and_annotations() -> None:
    out = inject(POD, InjectionSettings())
    assert POD["spec"]["containers"][0]["name"] == "ratings" and "initContainers" not in POD["spec"]
    init = out["spec"]["initContainers"][0]
    assert init["name"] == "istio-init"
    args = init["args"]
    assert args[args.index("-p") + 1] == "15001" and args[args.index("-z") + 1] == "15006"
    assert args[args.index("-u") + 1] == "1337" and args[args.index("-m") + 1] == "REDIRECT"
    assert set(init["securityContext"]["capabilities"]["add"]) == {"NET_ADMIN", "NET_RAW"}
    volumes = {v["name"]: v for v in out["spec"]["volumes"]}
    token = volumes["istio-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token == {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}
    assert volumes["istiod-ca-cert"]["configMap"]["name"] == "istio-ca-root-cert"
    labels = out["metadata"]["labels"]
    assert labels["security.istio.io/tlsMode"] == "istio"
    assert labels["service.istio.io/canonical-name"] == "ratings"
    assert labels["service.istio.io/canonical-revision"] == "v1"
    status = json.loads(out["metadata"]["annotations"]["sidecar.istio.io/status"])
    assert status["initContainers"] == ["istio-init"] and status["revision"] == "default"


def test_sidecar_bootstrap_identity_comes_from_the_kubelet_and_sts() -> None:
    proxy = _proxy(inject(POD, InjectionSettings()))
    bootstrap = json.loads(proxy["args"][proxy["args"].index("--config-yaml") + 1])
    node = bootstrap["node"]
    assert (
        node["id"] == "sidecar~$(INSTANCE_IP)~$(POD_NAME).$(POD_NAMESPACE)~"
        "$(POD_NAMESPACE).svc.cluster.local"
    )
    assert node["metadata"]["SERVICE_ACCOUNT"] == "bookinfo-ratings"
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in proxy["env"]}
    assert env["INSTANCE_IP"] == "status.podIP" and env["POD_NAME"] == "metadata.name"
    google = bootstrap["dynamic_resources"]["ads_config"]["grpc_services"][0]["google_grpc"]
    sts = google["call_credentials"][0]["sts_service"]
    assert sts["subject_token_path"] == "/var/run/secrets/tokens/istio-token"
    assert sts["token_exchange_service_uri"] == "http://istiod.istio-system.svc:15014/token"
    assert "authorization" not in json.dumps(bootstrap)  # no token baked in


def test_json_patch_applied_to_the_pod_gives_the_injected_pod() -> None:
    injected = inject(POD, InjectionSettings())
    patch = json_patch(POD, injected)
    assert jsonpatch.apply_patch(copy.deepcopy(POD), patch) == injected
    bare = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a"}]}}
    assert jsonpatch.apply_patch(
        bare, json_patch(bare, inject(bare, InjectionSettings()))
    ) == inject(bare, InjectionSettings())


def test_kube_inject_uses_the_pod_template_of_each_workload_kind() -> None:
    template = {k: v for k, v in POD.items() if k in ("metadata", "spec")}
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}},
    }
    out = inject_object(cron, InjectionSettings())
    assert out.injected
    spec = out.obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["ratings", "istio-proxy"]
    assert "initContainers" not in template["spec"]  # the input is not modified
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ratings"}}
    assert inject_object(service, InjectionSettings()).obj is service
