"""The runner: namespace filtering, suppressions, sorting and de-duplication, and an analyzer
that fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pkg.analysis import messages as m
from pkg.analysis.analyzers import ALL, Analyzer
from pkg.analysis.inputs import AnalysisInput
from pkg.analysis.loader import Loaded, load_text
from pkg.analysis.messages import Message
from pkg.analysis.runner import Suppression, analyze, select

from .helpers import codes

TWO_NAMESPACES = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: default}
spec: {selector: {matchLabels: {app: x}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: b
  namespace: prod
  annotations: {galley.istio.io/analyze-suppress: "IST0001,IST0127"}
spec: {selector: {matchLabels: {app: x}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: c, namespace: prod}
spec: {selector: {matchLabels: {app: x}}}
"""


def test_only_the_analyzed_namespace_is_reported() -> None:
    assert codes(TWO_NAMESPACES, namespace="default") == [
        ("IST0127", "AuthorizationPolicy default/a")
    ]
    assert codes(TWO_NAMESPACES, namespace=None) == [
        ("IST0127", "AuthorizationPolicy default/a"),
        ("IST0127", "AuthorizationPolicy prod/c"),
    ]


def test_suppressions() -> None:
    loaded = load_text(TWO_NAMESPACES, "p.yaml", "default")
    for rule in ("IST0127=AuthorizationPolicy prod/*", "IST0127=AuthorizationPolicy c.prod"):
        result = analyze(
            AnalysisInput(loaded), namespace=None, suppressions=[Suppression.parse(rule)]
        )
        assert [str(r.resource.name) for r in result.messages if r.resource] == ["a"]
    with pytest.raises(ValueError, match="not a valid suppression"):
        Suppression.parse("IST0127")


def test_a_failing_analyzer_is_an_internal_error_and_others_still_run() -> None:
    def broken(_: AnalysisInput) -> Iterator[Message]:
        raise KeyError("boom")
        yield  # pragma: no cover

    loaded = load_text(TWO_NAMESPACES, "p.yaml", "default")
    analyzers = (Analyzer("test.Broken", "", broken), *ALL)
    result = analyze(AnalysisInput(loaded), namespace="default", analyzers=analyzers)
    assert str(result.messages[0]) == (
        "Error [IST0001] Internal error: analyzer test.Broken failed: KeyError: 'boom'"
    )
    assert len(result.messages) == 2


def test_duplicates_are_dropped_and_order_is_istios() -> None:
    ref_loaded = load_text(TWO_NAMESPACES, "p.yaml", "default")
    resource = ref_loaded.resources[0]

    def twice(_: AnalysisInput) -> Iterator[Message]:
        for kind in (
            m.SCHEMA_WARNING,
            m.INTERNAL_ERROR,
            m.SCHEMA_WARNING,
            m.VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
        ):
            yield Message(kind, ("x",), resource.ref)

    result = analyze(AnalysisInput(Loaded()), namespace=None, analyzers=(Analyzer("t", "", twice),))
    assert [msg.type.code for msg in result.messages] == ["IST0001", "IST0133", "IST0131"]


def test_select_by_name() -> None:
    assert [a.name for a in select(["virtualservice.GatewayAnalyzer"])] == [
        "virtualservice.GatewayAnalyzer"
    ]
    with pytest.raises(ValueError, match="unknown analyzer"):
        select(["nope"])
