"""Istio's validation corpus through the analyzers: documents Istio accepts give no
IST0106/IST0001; each document Istio rejects gives IST0106 pointing at a line of that document."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pkg.analysis.inputs import AnalysisInput
from pkg.analysis.loader import load_text
from pkg.analysis.runner import analyze

CORPUS = Path(__file__).resolve().parents[3] / "../shared/conformance/validation"


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*-valid.yaml")), ids=lambda p: p.name)
def test_valid_documents_have_no_schema_errors(path: Path) -> None:
    loaded = load_text(path.read_bytes(), str(path), "default")
    assert loaded.problems == ()
    result = analyze(AnalysisInput(loaded), namespace=None)
    assert [str(m) for m in result.messages if m.type.code in ("IST0106", "IST0001")] == []


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*-invalid.yaml")), ids=lambda p: p.name)
def test_invalid_documents_are_schema_errors_at_their_lines(path: Path) -> None:
    for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
        if not doc:
            continue
        doc.pop("_err", None)
        text = "# leading line\n" + yaml.safe_dump(doc)
        loaded = load_text(text, f"{path.name}[{index}]", "default")
        result = analyze(AnalysisInput(loaded), namespace=None)
        errors = [m for m in result.messages if m.type.code == "IST0106"]
        assert errors, f"{path.name}[{index}] was not reported: {doc}"
        last = len(text.splitlines())
        # The field's line, or (a missing field, e.g. `spec`) the document's first line.
        shown = [m.line or (m.resource.origin.line if m.resource else 0) for m in errors]
        assert all(1 <= line <= last for line in shown), [str(m) for m in errors]
