"""MeshConfig loading: defaults, typed fields, ConfigMap form, and errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from pkg.config.mesh import MeshConfig, OutboundTrafficPolicyMode, load_mesh_config
from pkg.errors import ConfigError


def test_defaults_are_istios() -> None:
    mesh = MeshConfig()
    assert mesh.trust_domain == "cluster.local"
    assert mesh.root_namespace == "istio-system"
    assert mesh.connect_timeout.total_seconds() == 10
    assert mesh.outbound_traffic_policy is OutboundTrafficPolicyMode.ALLOW_ANY
    assert mesh.enable_auto_mtls


def test_load_bare_and_configmap_forms(tmp_path: Path) -> None:
    bare = tmp_path / "mesh.yaml"
    bare.write_text(
        "trustDomain: example.org\n"
        "rootNamespace: mesh-root\n"
        "connectTimeout: 2s\n"
        "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
        "defaultConfig: {discoveryAddress: istiod:15012}\n"
    )
    mesh = load_mesh_config(bare)
    assert mesh.trust_domain == "example.org"
    assert mesh.root_namespace == "mesh-root"
    assert mesh.connect_timeout.total_seconds() == 2
    assert mesh.outbound_traffic_policy is OutboundTrafficPolicyMode.REGISTRY_ONLY
    assert mesh.raw["defaultConfig"] == {"discoveryAddress": "istiod:15012"}
    configmap = tmp_path / "cm.yaml"
    configmap.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\n"
        "data:\n  mesh: |\n    trustDomain: cm.example\n"
    )
    assert load_mesh_config(configmap).trust_domain == "cm.example"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("trustDomian: typo\n", "meshConfig.trustDomian"),
        ("connectTimeout: forever\n", "meshConfig.connectTimeout"),
        ("outboundTrafficPolicy: {mode: SOMETIMES}\n", "meshConfig.outboundTrafficPolicy.mode"),
        ("proxyListenPort: many\n", "meshConfig.proxyListenPort"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_mesh_config(path)
