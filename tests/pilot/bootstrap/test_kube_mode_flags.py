"""Choosing Kubernetes mode: --config-dir excludes --kubeconfig, --watched-namespaces scopes
the watches, and in a pod (KUBERNETES_SERVICE_HOST) istiod uses the in-cluster config."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilot.bootstrap.main import run
from pilot.bootstrap.options import parse_options
from pilot.config.kube import KubeConfigSource
from pilot.config.store import ConfigStore
from pkg.config.model import Kind
from pkg.errors import ConfigError
from pkg.kube.client import KubeClient

POD_ENV = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}


async def test_config_dir_with_kubeconfig_is_a_startup_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--config-dir", str(tmp_path), "--kubeconfig", str(tmp_path / "kc")]
    assert await run([*argv, "--state-dir", str(tmp_path / "state")]) == 2
    err = capsys.readouterr().err
    assert "--config-dir and --kubeconfig cannot be used together" in err


def test_mode_selection() -> None:
    assert not parse_options([], environ={}).kubernetes  # standalone, no config
    in_pod = parse_options([], environ=POD_ENV)
    assert in_pod.in_cluster and in_pod.kubernetes
    # A config dir keeps standalone mode even in a pod.
    assert not parse_options(["--config-dir", "x"], environ=POD_ENV).kubernetes
    kc = parse_options(["--kubeconfig", "kc"], environ=POD_ENV)
    assert kc.kubernetes and not kc.in_cluster


def test_watched_namespaces() -> None:
    opts = parse_options(["--kubeconfig", "kc", "--watched-namespaces", "a, b,a"], environ={})
    assert opts.watched_namespaces == ("a", "b")
    with pytest.raises(ConfigError, match="--watched-namespaces: 'Bad_NS'"):
        parse_options(["--kubeconfig", "kc", "--watched-namespaces", "Bad_NS"], environ={})
    with pytest.raises(ConfigError, match="needs Kubernetes mode"):
        parse_options(["--watched-namespaces", "a"], environ={})
    # Namespaced kinds per namespace, cluster-scoped kinds (Node, Namespace) cluster-wide.
    client = KubeClient.for_url("http://127.0.0.1:1")
    source = KubeConfigSource(client, ConfigStore(), namespaces=opts.watched_namespaces)
    scopes = {(t.schema.kind, t.namespace) for t in source.targets}
    assert {(Kind.POD, "a"), (Kind.POD, "b"), (Kind.NODE, ""), (Kind.NAMESPACE, "")} <= scopes
    assert (Kind.POD, "") not in scopes
    client.close()


def test_in_cluster_client(tmp_path: Path) -> None:
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("sa-token")
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    client = KubeClient.in_cluster(token_path=str(token), ca_path=str(ca), environ=POD_ENV)
    conf = client.api_client.configuration
    assert client.host == "https://127.0.0.1:6443"
    assert conf.ssl_ca_cert == str(ca)
    assert conf.get_api_key_with_prefix("BearerToken") == "bearer sa-token"
    client.close()


async def test_in_a_pod_without_a_token_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in POD_ENV.items():
        monkeypatch.setenv(name, value)
    # No token where the pod's would be (even when the tests themselves run in a pod).
    loader = KubeClient.in_cluster
    missing = str(tmp_path / "no-token")
    monkeypatch.setattr(
        KubeClient, "in_cluster", classmethod(lambda cls: loader(token_path=missing))
    )
    assert await run(["--state-dir", str(tmp_path / "state")]) == 2
    assert "istiod: in-cluster config: " in capsys.readouterr().err
