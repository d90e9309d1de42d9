"""manifests/: every object is valid Kubernetes (checked offline against the API's OpenAPI
schemas with kubernetes-validate, strict: unknown fields are errors), and the pieces agree with
each other and with istiod (flags it parses, ports it serves, kinds it reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pilot.bootstrap.options import parse_options
from pkg.config.crd import CRD_INFO, file_name
from pkg.config.mesh import mesh_config_from_dict
from pkg.config.schema import SCHEMAS

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
# The oldest Kubernetes release still in upstream support, and the newest the package knows.
K8S_VERSIONS = ("1.32.0", "1.37.0")


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


KUSTOMIZATION = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
OBJECTS = [
    (f"{res}:{d['kind']}/{d['metadata']['name']}", d)
    for res in KUSTOMIZATION["resources"]
    for d in _load(MANIFESTS / res)
]


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for _, d in OBJECTS if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def test_kustomization_lists_every_manifest_and_crd() -> None:
    listed = set(KUSTOMIZATION["resources"])
    on_disk = {
        str(p.relative_to(MANIFESTS))
        for p in MANIFESTS.rglob("*.yaml")
        if p.name != "kustomization.yaml"
    }
    assert listed == on_disk
    assert {f"crds/{file_name(i)}" for i in CRD_INFO} <= listed
    kinds = {d["kind"] for _, d in OBJECTS}
    assert {
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    } <= kinds


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_kubernetes(version: str) -> None:
    failures = []
    for where, doc in OBJECTS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            failures.append(f"{where}: {err.message} at {list(err.path)}")
    assert failures == []


def test_strict_validation_catches_a_misspelt_field() -> None:
    deployment = yaml.safe_load(yaml.safe_dump(_one("Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_namespaced_objects_live_in_istio_system() -> None:
    cluster_scoped = {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
    for where, doc in OBJECTS:
        namespace = doc["metadata"].get("namespace")
        assert namespace == (None if doc["kind"] in cluster_scoped else "istio-system"), where


def test_deployment_runs_istiod_with_flags_it_parses() -> None:
    deployment = _one("Deployment", "istiod")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]
    (container,) = pod["spec"]["containers"]
    options = parse_options(container["args"])
    assert options.config_dirs == ()  # Kubernetes mode: config comes from the API server
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert options.http_addr.port == ports["http-debug"] == 8080
    assert options.grpc_addr.port == ports["grpc-xds"] == 15010
    assert options.secure_grpc_addr is not None and options.secure_grpc_addr.port == 15012
    assert options.webhook_addr is not None and options.webhook_addr.port == 15017
    assert options.monitoring_addr is not None and options.monitoring_addr.port == 15014
    assert options.http_addr.host == "0.0.0.0"  # kubelet probes and peers reach the pod IP
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/ready", "port": 8080}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 1337
    assert security["allowPrivilegeEscalation"] is False
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}) for e in container["env"]}
    assert env["POD_NAME"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["fieldPath"] == "metadata.namespace"
    assert {"requests", "limits"} <= container["resources"].keys()
    # Every writable path istiod uses is a volume (the root file system is read-only).
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(options.state_dir) in mounts and "/tmp" in mounts
    assert options.mesh_config is not None and str(options.mesh_config.parent) in mounts


def test_mesh_configmap_parses_and_is_mounted() -> None:
    configmap = _one("ConfigMap", "istio")
    mesh = mesh_config_from_dict(yaml.safe_load(configmap["data"]["mesh"]))
    assert mesh.root_namespace == "istio-system"
    volumes = _one("Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config-volume", "configMap": {"name": "istio"}} in volumes


def test_service_exposes_istiods_ports_by_istios_names() -> None:
    service = _one("Service", "istiod")
    ports = {
        p["name"]: (p["port"], p.get("targetPort", p["port"])) for p in service["spec"]["ports"]
    }
    assert ports == {
        "grpc-xds": (15010, 15010),
        "https-dns": (15012, 15012),
        "https-webhook": (443, 15017),
        "http-monitoring": (15014, 15014),
    }
    pod_labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    pdb = _one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] < _one("Deployment")["spec"]["replicas"]


def _rules(kind: str) -> list[dict[str, Any]]:
    return [r for _, d in OBJECTS if d["kind"] == kind for r in d["rules"]]


def _allowed(
    rules: list[dict[str, Any]], group: str, resource: str, verb: str, name: str = ""
) -> bool:
    return any(
        group in r["apiGroups"]
        and resource in r["resources"]
        and verb in r["verbs"]
        and (not r.get("resourceNames") or name in r["resourceNames"])
        for r in rules
    )


def test_rbac_grants_what_istiod_needs_and_no_wildcards() -> None:
    cluster, namespaced = _rules("ClusterRole"), _rules("Role")
    for rule in cluster + namespaced:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
    for schema in SCHEMAS:
        for verb in ("get", "list", "watch"):
            assert _allowed(cluster, schema.group, schema.plural, verb), (schema.kind, verb)
    for resource in ("pods", "nodes"):
        assert _allowed(cluster, "", resource, "watch")
    assert _allowed(cluster, "authentication.k8s.io", "tokenreviews", "create")
    assert _allowed(cluster, "", "configmaps", "create")  # istio-ca-root-cert, every namespace
    assert _allowed(namespaced, "", "secrets", "create")
    assert _allowed(namespaced, "", "secrets", "update", "istio-ca-secret")
    assert not _allowed(namespaced, "", "secrets", "update", "another-secret")
    assert not _allowed(cluster, "", "secrets", "update", "istio-ca-secret")
    assert _allowed(namespaced, "coordination.k8s.io", "leases", "create")
    for kind, resource in (
        ("MutatingWebhookConfiguration", "mutatingwebhookconfigurations"),
        ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations"),
    ):
        name = _one(kind)["metadata"]["name"]
        assert _allowed(cluster, "admissionregistration.k8s.io", resource, "update", name)
        assert not _allowed(cluster, "admissionregistration.k8s.io", resource, "update", "other")
    bindings = [d for _, d in OBJECTS if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    istiod = {"kind": "ServiceAccount", "name": "istiod", "namespace": "istio-system"}
    assert [b["subjects"] for b in bindings] == [[istiod]] * 2


def test_webhooks_call_istiod_service_on_istios_paths() -> None:
    validating = _one("ValidatingWebhookConfiguration")["webhooks"]
    mutating = _one("MutatingWebhookConfiguration")["webhooks"]
    for hook, path in [(h, "/validate") for h in validating] + [(h, "/inject") for h in mutating]:
        service = hook["clientConfig"]["service"]
        assert (service["name"], service["namespace"], service["path"]) == (
            "istiod",
            "istio-system",
            path,
        )
        assert service.get("port", 443) == 443
        assert hook["admissionReviewVersions"] == ["v1"] and hook["sideEffects"] == "None"
    (validate,) = validating
    assert set(validate["rules"][0]["apiGroups"]) == {s.group for s in SCHEMAS if s.istio}
    assert validate["failurePolicy"] == "Ignore"  # Istio's fresh-install value
    by_name = {h["name"]: h for h in mutating}
    namespace_hook = by_name["namespace.sidecar-injector.istio.io"]
    assert namespace_hook["namespaceSelector"]["matchExpressions"] == [
        {"key": "istio-injection", "operator": "In", "values": ["enabled"]}
    ]
    assert all(h["failurePolicy"] == "Fail" for h in mutating)
    assert all(h["rules"][0]["resources"] == ["pods"] for h in mutating)


def test_dockerfile_installs_the_package_and_runs_istiod_as_1337() -> None:
    lines = [
        line.strip()
        for line in (MANIFESTS / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    assert "USER 1337:1337" in lines
    assert lines[-1] == 'ENTRYPOINT ["istiod"]'
    assert any(line.startswith("RUN pip install .") for line in lines)
    pyproject = (ROOT / "pyproject.toml").read_text()
    for package in ("pkg", "pilot", "security", "istioctl"):
        assert f'"{package}*"' in pyproject
        assert f"COPY {package} ./{package}" in lines
    assert not any(word in line for line in lines for word in ("curl", "wget", "ADD http"))
