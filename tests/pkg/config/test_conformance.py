"""The shared conformance corpus: Istio's own valid/invalid documents and the Bookinfo sample.

Files are read in place from ../shared/conformance (relative to the project root).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pkg.config.schema import parse_object
from pkg.config.yamldocs import load_documents

CONFORMANCE = Path(__file__).resolve().parents[3] / "../shared/conformance"
VALIDATION = CONFORMANCE / "validation"
BOOKINFO = CONFORMANCE / "bookinfo"


# Where `_err` is only a message, the field it is about (checked against Istio's CRD/webhook).
FIELDS = {
    "authz-invalid[0]": "spec.rules[0].from[0].source",
    "authz-invalid[1]": "spec.rules[0].from[0].source",
    "peerauth-invalid[0]": "spec.mtls.mode",
    "peerauth-invalid[1]": "spec.portLevelMtls[acd]",
    "peerauth-invalid[2]": "spec.portLevelMtls",
    "peerauth-invalid[4]": "spec.portLevelMtls[0]",
    "peerauth-invalid[5]": "spec.portLevelMtls[42949672]",
    "proxyconfig-invalid[1]": "spec.selector.matchLabels",
    "telemetry-invalid[0]": "spec.metrics[0].providers[0].name",
    "telemetry-invalid[1]": "spec.metrics[0].overrides[0].match.customMetric",
    "telemetry-invalid[2]": "spec.metrics[0].overrides[0].tagOverrides[foo]",
    "telemetry-invalid[3]": "spec.metrics[0].overrides[0].tagOverrides[foo]",
    "wasm-invalid[2]": "spec.url",
    "wasm-invalid[3]": "spec.url",
    "wasm-invalid[7]": "spec.vmConfig.env[1]",
    "wasm-invalid[9]": "spec.vmConfig.env[0]",
    "wasm-invalid[10]": "spec.vmConfig.env[0]",
    "wasm-invalid[13]": "spec.selector.matchLabels[istio]",
    "wasm-invalid[14]": "spec.selector.matchLabels",
    "workloadentry-invalid[1]": "spec.address",
    "workloadentry-invalid[2]": "spec.address",
    "workloadentry-invalid[3]": "spec.address",
    "workloadentry-invalid[4]": "spec.ports",
    "workloadentry-invalid[5]": "spec.ports[http]",
    "workloadgroup-invalid[1]": "spec.probe.tcpSocket.port",
}


def _documents(pattern: str) -> list[Any]:
    cases = []
    for path in sorted(VALIDATION.glob(pattern)):
        for index, doc in enumerate(d for d in yaml.safe_load_all(path.read_text()) if d):
            case_id = f"{path.stem}[{index}]"
            cases.append(pytest.param(case_id, doc, id=case_id))
    return cases


def _field_of(err: str) -> str | None:
    """The field an `_err` names, when it names one (`spec.url in body ...` → `spec.url`)."""
    match = re.match(r"'?(spec[\w.\[\]]*)(?::| in body)", err)
    return match.group(1) if match else None


def test_corpus_is_present() -> None:
    assert len(_documents("*-valid.yaml")) >= 20
    assert len(_documents("*-invalid.yaml")) >= 40


@pytest.mark.parametrize(("case", "doc"), _documents("*-valid.yaml"))
def test_valid_documents_are_accepted(case: str, doc: dict[str, Any]) -> None:
    result = parse_object(doc)
    assert result.errors == (), [str(e) for e in result.errors]
    assert result.config is not None


@pytest.mark.parametrize(("case", "doc"), _documents("*-invalid.yaml"))
def test_invalid_documents_are_rejected_with_a_field_path(case: str, doc: dict[str, Any]) -> None:
    doc = dict(doc)
    expected = str(doc.pop("_err"))
    result = parse_object(doc)
    assert result.config is None, f"accepted, but Istio says: {expected}"
    paths = [e.path for e in result.errors]
    field = _field_of(expected) or FIELDS.get(case)
    assert field is not None, f"no expected field for {case}: {expected}"
    # Ours must name the same field as Istio (or one inside it).
    assert any(p == field or p.startswith((field + ".", field + "[")) for p in paths), (
        expected,
        paths,
    )


def _bookinfo_files() -> list[Any]:
    return [pytest.param(p, id=p.name) for p in sorted(BOOKINFO.rglob("*.yaml"))]


@pytest.mark.parametrize("path", _bookinfo_files())
def test_bookinfo_loads(path: Path) -> None:
    documents = load_documents(path.read_bytes(), str(path))
    assert documents
    for document in documents:
        assert document.error is None
        result = parse_object(document.obj)
        assert result.errors == (), [str(e) for e in result.errors]
        kind = document.obj["kind"] if document.obj else None
        if kind in ("ServiceAccount", "Deployment"):
            assert result.ignored
            assert result.config is None
        else:
            assert result.config is not None
            assert result.config.meta.kind == kind


def test_bookinfo_has_the_expected_topology() -> None:
    services = set()
    for path in BOOKINFO.glob("platform/*.yaml"):
        for document in load_documents(path.read_bytes(), str(path)):
            result = parse_object(document.obj)
            if result.config is not None and result.config.meta.kind == "Service":
                services.add(result.config.name)
                assert [p.port for p in result.config.spec.ports] == [9080]
    assert {"productpage", "details", "reviews", "ratings"} <= services
