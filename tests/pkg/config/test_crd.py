"""The generated CRDs: up to date with the models, structural, and agreeing with real Istio YAML.

Real objects (Bookinfo's networking samples) must pass the generated `openAPIV3Schema` read as
the API server reads it: unknown fields rejected (pruning with strict field validation),
`nullable` allowing null, int-or-string allowing both.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pkg.config import crd
from pkg.config.model import Kind
from pkg.config.schema import SCHEMAS, parse_object

ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = ROOT / "manifests" / "crds"
BOOKINFO = ROOT.parent / "shared" / "conformance" / "bookinfo" / "networking"
_VALUE_ONLY = ("oneOf", "anyOf", "allOf", "not")
_NOT_IN_VALUE_VALIDATION = {"type", "nullable", "additionalProperties", "description", "default"}


def _crds() -> dict[str, dict[str, Any]]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted(CRD_DIR.glob("*.yaml"))]
    return {d["spec"]["names"]["kind"]: d for d in docs}


CRDS = _crds()


def test_checked_in_crds_are_what_the_generator_writes() -> None:
    assert crd.stale(CRD_DIR) == [], "run `python -m pkg.config.crd` and commit manifests/crds"
    assert crd.main([str(CRD_DIR), "--check"]) == 0


def test_check_mode_reports_an_edited_file(tmp_path: Path) -> None:
    crd.write(tmp_path)
    assert crd.stale(tmp_path) == []
    edited = tmp_path / "networking.istio.io_gateways.yaml"
    edited.write_text(edited.read_text().replace("maxItems", "maxItemz"))
    (tmp_path / "networking.istio.io_leftovers.yaml").write_text("{}\n")
    assert crd.stale(tmp_path) == [
        "networking.istio.io_gateways.yaml",
        "networking.istio.io_leftovers.yaml",
    ]
    assert crd.main([str(tmp_path), "--check"]) == 1


def test_every_istio_kind_has_a_crd_with_istios_names_and_versions() -> None:
    istio_kinds = {s.kind.value for s in SCHEMAS if s.istio}
    assert set(CRDS) == istio_kinds
    vs = CRDS["VirtualService"]
    assert vs["metadata"]["name"] == "virtualservices.networking.istio.io"
    assert vs["spec"]["names"]["shortNames"] == ["vs"]
    assert vs["spec"]["names"]["categories"] == ["istio-io", "networking-istio-io"]
    assert [(v["name"], v["storage"]) for v in vs["spec"]["versions"]] == [
        ("v1", True),
        ("v1beta1", False),
        ("v1alpha3", False),
    ]
    assert [c["name"] for c in vs["spec"]["versions"][0]["additionalPrinterColumns"]] == [
        "Gateways",
        "Hosts",
        "Age",
    ]
    assert [v["name"] for v in CRDS["EnvoyFilter"]["spec"]["versions"]] == ["v1alpha3"]
    assert CRDS["PeerAuthentication"]["spec"]["names"]["shortNames"] == ["pa"]
    for doc in CRDS.values():
        spec = doc["spec"]
        assert spec["scope"] == "Namespaced"
        assert sum(v["storage"] for v in spec["versions"]) == 1
        for version in spec["versions"]:
            assert version["served"] is True
            assert version["subresources"] == {"status": {}}
            assert version["schema"]["openAPIV3Schema"]["properties"]["spec"]["type"] == "object"
            # Every served version is one the parser (and so the webhook) accepts.
            schema = next(s for s in SCHEMAS if s.kind.value == spec["names"]["kind"])
            assert version["name"] in schema.versions


def _walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Every schema node: (path, node, inside a value-validation-only branch)."""
    yield path, node, False
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _walk(node[key], f"{path}[{key}]")
    for key in _VALUE_ONLY:
        branches = node.get(key)
        for branch in branches if isinstance(branches, list) else [branches] if branches else []:
            for sub_path, sub, _ in _walk(branch, f"{path}<{key}>"):
                yield sub_path, sub, True


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_crd_schemas_are_structural(kind: str) -> None:
    for version in CRDS[kind]["spec"]["versions"]:
        assert "openAPIV3Schema" in version.get("schema", {}), f"{kind} {version['name']}"
        for path, node, value_only in _walk(version["schema"]["openAPIV3Schema"], kind):
            if value_only:
                assert not _NOT_IN_VALUE_VALIDATION & node.keys(), path
                continue
            open_ = node.get("x-kubernetes-preserve-unknown-fields") is True
            assert "type" in node or open_ or node.get("x-kubernetes-int-or-string"), path
            assert not ("properties" in node and "additionalProperties" in node), path
            if "properties" in node:
                assert node["type"] == "object", path
            if node.get("x-kubernetes-list-type") == "map":
                required = node["items"].get("required", [])
                assert set(node["x-kubernetes-list-map-keys"]) <= set(required), path


def test_open_fields_are_only_structs_and_status() -> None:
    open_paths = sorted(
        path
        for doc in CRDS.values()
        for path, node, _ in _walk(
            doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"], doc["spec"]["names"]["kind"]
        )
        if node.get("x-kubernetes-preserve-unknown-fields")
    )
    non_status = [p for p in open_paths if not p.endswith(".status")]
    assert non_status == [
        "EnvoyFilter.spec.configPatches[items].patch.value",
        "WasmPlugin.spec.pluginConfig",
    ]


def test_schema_follows_field_constraints() -> None:
    spec = crd.openapi_schema(next(s.spec_class for s in SCHEMAS if s.kind == Kind.SERVICE_ENTRY))
    port = spec["properties"]["ports"]["items"]
    # uint32 with the port-range rule; Kubernetes knows no uint32 format, bounds say it.
    assert port["properties"]["number"] == {"type": "integer", "minimum": 1, "maximum": 65535}
    assert "number" in port["required"]
    assert spec["properties"]["resolution"]["enum"][:2] == ["NONE", "STATIC"]
    assert spec["properties"]["ports"]["x-kubernetes-list-map-keys"] == ["name"]


# ---- real objects against the generated schemas -------------------------------------------


def _as_json_schema(node: Any) -> Any:
    """An openAPIV3Schema read as the API server applies it, in JSON Schema terms."""
    if isinstance(node, list):
        return [_as_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _as_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    out.pop("nullable", None)
    out.pop("format", None)
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _validator(kind: str, version: str) -> jsonschema.Draft4Validator:
    served = {v["name"]: v for v in CRDS[kind]["spec"]["versions"]}
    schema = _as_json_schema(served[version]["schema"]["openAPIV3Schema"])
    schema["properties"].update(
        apiVersion={"type": "string"}, kind={"type": "string"}, metadata={"type": "object"}
    )
    return jsonschema.Draft4Validator(schema)


def _bookinfo_docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(BOOKINFO.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


BOOKINFO_DOCS = _bookinfo_docs()


def test_bookinfo_samples_cover_several_kinds() -> None:
    kinds = {doc["kind"] for _, doc in BOOKINFO_DOCS}
    assert {"VirtualService", "DestinationRule", "Gateway", "ServiceEntry"} <= kinds


@pytest.mark.parametrize(("where", "doc"), BOOKINFO_DOCS, ids=[w for w, _ in BOOKINFO_DOCS])
def test_bookinfo_sample_validates_against_generated_crd(where: str, doc: dict[str, Any]) -> None:
    version = doc["apiVersion"].rpartition("/")[2]
    errors = [e.message for e in _validator(doc["kind"], version).iter_errors(doc)]
    assert errors == [], where
    assert parse_object(doc).ok, where  # and the model agrees


def _reviews_vs() -> dict[str, Any]:
    return copy.deepcopy(
        next(d for w, d in BOOKINFO_DOCS if w.startswith("virtual-service-reviews-80-20"))
    )


def test_generated_schema_rejects_what_the_model_rejects() -> None:
    validator = _validator("VirtualService", "v1")
    typo = _reviews_vs()
    typo["spec"]["http"][0]["route"][0]["weigth"] = 80
    assert any("weigth" in e.message for e in validator.iter_errors(typo))
    both = _reviews_vs()
    both["spec"]["http"][0]["match"] = [{"uri": {"exact": "/a", "prefix": "/b"}}]
    assert list(validator.iter_errors(both))
    wrong_type = _reviews_vs()
    wrong_type["spec"]["hosts"] = "reviews"
    assert list(validator.iter_errors(wrong_type))
    for bad in (typo, both, wrong_type):
        assert not parse_object(bad).ok
    dr = next(d for w, d in BOOKINFO_DOCS if w.startswith("destination-rule-all-mtls"))
    bad_mode = copy.deepcopy(dr)
    bad_mode["spec"]["trafficPolicy"] = {"tls": {"mode": "STRICT"}}
    assert list(_validator("DestinationRule", "v1").iter_errors(bad_mode))
