"""The test infrastructure itself: fake discovery, consistency checks, golden files, cases."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers.consistency import consistency_problems
from tests.helpers.golden import (
    CONFORMANCE_DIR,
    golden_mismatch,
    load_case,
    render_resources,
    stale_files,
)
from tests.helpers.xds import ConfigLoadError, FakeDiscovery, ProxySpec

CONFIGS = """
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: apps}
spec:
  clusterIP: 10.96.9.9
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: tcp, port: 9000}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-1, namespace: apps}
spec: {address: 10.1.0.1, labels: {app: echo}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: apps}
spec:
  hosts: [ext.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
"""
PROXY = ProxySpec(ip="10.1.0.1", name="echo-1.apps", labels={"app": "echo"})


def test_proxy_spec_node() -> None:
    spec = ProxySpec.from_mapping(
        {"type": "router", "ip": "10.0.0.9", "name": "gw.istio-system", "interceptionMode": "NONE"}
    )
    assert spec.node_id() == "router~10.0.0.9~gw.istio-system~istio-system.svc.cluster.local"
    assert spec.metadata()["NAMESPACE"] == "istio-system"
    with pytest.raises(ConfigLoadError, match="unknown keys"):
        ProxySpec.from_mapping({"interception": "NONE"})


def test_fake_discovery_subscribes_like_envoy() -> None:
    res = FakeDiscovery(CONFIGS).resources(PROXY)
    assert res.eds_requested == (
        "outbound|80||echo.apps.svc.cluster.local",
        "outbound|9000||echo.apps.svc.cluster.local",
    )  # the DNS ServiceEntry's cluster carries its own endpoints
    assert set(res.endpoints) == set(res.eds_requested)
    assert res.rds_requested == ("80",)
    assert set(res.routes) == {"80"}
    assert "virtualInbound" in res.listeners
    assert consistency_problems(res) == []


def test_invalid_configs_are_errors() -> None:
    bad = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n"
    bad += "spec:\n  http: 3\n"
    with pytest.raises(ConfigLoadError, match="VirtualService/default/x"):
        FakeDiscovery(bad)
    with pytest.raises(ConfigLoadError, match="duplicate"):
        FakeDiscovery([CONFIGS, CONFIGS])


def test_consistency_catches_broken_references() -> None:
    res = FakeDiscovery(CONFIGS).resources(PROXY)
    eds_name = res.eds_requested[0]
    del res.endpoints[eds_name]
    del res.routes["80"]
    problems = "\n".join(consistency_problems(res))
    assert f"EDS cluster '{eds_name}' got no ClusterLoadAssignment" in problems
    assert "route configuration '80' referenced by a listener is not produced" in problems


def test_consistency_catches_unknown_clusters_and_duplicates() -> None:
    res = FakeDiscovery(CONFIGS).resources(PROXY)
    res.routes["80"].virtual_hosts[0].routes[0].route.cluster = "outbound|80||nowhere"
    res.built[next(iter(res.built))].append(res.built[next(iter(res.built))][0])
    problems = "\n".join(consistency_problems(res))
    assert "names unknown cluster 'outbound|80||nowhere'" in problems
    assert "appears 2 times" in problems


def test_render_resources_sorts_names_and_keys() -> None:
    res = FakeDiscovery(CONFIGS).resources(PROXY)
    text = render_resources(res.clusters)
    names = [c["name"] for c in yaml.safe_load(text)]
    assert names == sorted(names)
    assert "connectTimeout" in text  # camelCase proto JSON, as config_dump
    assert "version" not in yaml.safe_load(text)[0]


def test_golden_mismatch_update_and_diff(tmp_path: Path) -> None:
    path = tmp_path / "golden" / "x.clusters.yaml"
    assert "missing golden file" in (golden_mismatch(path, "a: 1\n", update=False) or "")
    assert golden_mismatch(path, "a: 1\n", update=True) is None
    assert path.read_text() == "a: 1\n"
    assert golden_mismatch(path, "a: 1\n", update=False) is None
    diff = golden_mismatch(path, "a: 2\n", update=False) or ""
    assert "-a: 1" in diff
    assert "+a: 2" in diff
    (tmp_path / "golden" / "old.routes.yaml").write_text("[]\n")
    assert [p.name for p in stale_files(tmp_path / "golden", [path])] == ["old.routes.yaml"]


def test_load_case_header_includes_and_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "setup.yaml").write_text(CONFIGS)
    case = tmp_path / "c.yaml"
    case.write_text(
        "proxy: {ip: 10.1.0.1, name: echo-1.apps}\n"
        "include:\n"
        "- setup.yaml\n"
        "- {path: conformance:bookinfo/networking/bookinfo-gateway.yaml, namespace: web}\n"
        "namespace: apps\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\n"
        "kind: Sidecar\n"
        "metadata: {name: default}\n"
        "spec: {egress: [{hosts: ['./*']}]}\n"
    )
    loaded = load_case(case)
    assert loaded.name == "c"
    assert loaded.proxy.name == "echo-1.apps"
    conformance = CONFORMANCE_DIR / "bookinfo/networking/bookinfo-gateway.yaml"
    expected_sources = 3 if conformance.exists() else 2
    assert len(loaded.sources) == expected_sources
    own = loaded.sources[-1]
    assert own.default_namespace == "apps"
    assert own.text.splitlines()[6] == "apiVersion: networking.istio.io/v1"  # line 7 as in the file
    bad = tmp_path / "bad.yaml"
    bad.write_text("proxy: {}\nextra: 1\n")
    with pytest.raises(ConfigLoadError, match="unknown header keys"):
        load_case(bad)
