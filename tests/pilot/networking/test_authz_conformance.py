"""Istio's own AuthorizationPolicy → RBAC / ext_authz golden files, run in place.

Every case of ../shared/conformance/authz/cases.yaml is run as its header says: the case's
input documents (plus the ext_authz service `my-custom-ext-authz.foo.svc.cluster.local`) are
loaded, the filters are built for a sidecar in namespace `foo` labelled
{app: httpbin, version: v1}, with the case's mesh config and trust domain; the `want` files are
parsed into protobuf messages and compared with the generated filters as messages (names equal,
typed configs equal once unpacked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

# The '@type's of the want files must be importable before they are parsed.
from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2  # noqa: F401
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2  # noqa: F401
from envoy.extensions.filters.network.ext_authz.v3 import ext_authz_pb2 as _tcp_ext  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as _tcp_rbac  # noqa: F401
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2  # noqa: F401
from google.protobuf import json_format

from pilot.networking.authz import (
    custom_http_filters,
    custom_network_filters,
    rbac_http_filters,
    rbac_network_filters,
)
from tests.helpers.golden import CONFORMANCE_DIR, to_proto_dict
from tests.helpers.xds import ConfigSource, FakeDiscovery, ProxySpec, decode_any

AUTHZ = CONFORMANCE_DIR / "authz"
CASES_FILE = AUTHZ / "cases.yaml"

# The service the ext_authz providers of the mesh configs name.
EXT_AUTHZ_SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: my-custom-ext-authz
  namespace: foo
spec:
  clusterIP: 10.96.0.99
  ports:
  - name: grpc
    port: 9000
"""

PROXY = ProxySpec(name="httpbin-v1.foo", ip="10.0.0.9", labels={"app": "httpbin", "version": "v1"})


def _load() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not CASES_FILE.exists():
        return {}, []
    doc = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
    return doc.get("mesh_configs") or {}, list(doc["cases"])


MESH_CONFIGS, CASES = _load()


def test_corpus_present() -> None:
    assert CASES, f"conformance corpus not found at {CASES_FILE}"


def _mesh(case: dict[str, Any]) -> dict[str, Any]:
    mesh: dict[str, Any] = {}
    if "mesh_config" in case:
        mesh.update(MESH_CONFIGS[case["mesh_config"]])
    if "trust_domain" in case:
        mesh["trustDomain"] = case["trust_domain"]
    if "trust_domain_aliases" in case:
        mesh["trustDomainAliases"] = list(case["trust_domain_aliases"])
    return mesh


def _want(path: Path, kind: str) -> Any:
    message = hcm_pb2.HttpFilter() if kind == "http" else listener_components_pb2.Filter()
    json_format.ParseDict(yaml.safe_load(path.read_text(encoding="utf-8")), message)
    return message


def _generated(case: dict[str, Any]) -> list[Any]:
    path = AUTHZ / case["input"]
    discovery = FakeDiscovery(
        [
            ConfigSource(path.read_text(encoding="utf-8"), str(path), "foo"),
            ConfigSource(EXT_AUTHZ_SERVICE, "<ext-authz service>", "foo"),
        ],
        mesh=_mesh(case),
    )
    view = discovery.view(PROXY)
    if case["kind"] == "http":
        return [*custom_http_filters(view), *rbac_http_filters(view)]
    assert case["kind"] == "tcp", case
    return [*custom_network_filters(view), *rbac_network_filters(view)]


def _yaml(message: Any) -> str:
    return yaml.safe_dump(to_proto_dict(message), sort_keys=True, width=100)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_conformance_case(case: dict[str, Any]) -> None:
    got = _generated(case)
    wants = [_want(AUTHZ / w, case["kind"]) for w in case["want"]]
    assert [f.name for f in got] == [w.name for w in wants], "\n---\n".join(map(_yaml, got))
    for generated, want in zip(got, wants, strict=True):
        assert generated.typed_config.type_url == want.typed_config.type_url
        assert decode_any(generated.typed_config) == decode_any(want.typed_config), (
            f"generated:\n{_yaml(generated)}\nwant:\n{_yaml(want)}"
        )
