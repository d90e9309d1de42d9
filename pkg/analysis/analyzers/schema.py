"""`schema.ValidationAnalyzer`: what istiod's validation says about each document.

Errors are IST0106 SchemaValidationError (`<field path>: <reason>`, pointing at the field's
line), warnings IST0133 SchemaWarning, except the two warnings Istio turns into their own codes:
a VirtualService rule that can never match (IST0130) and a duplicate match (IST0131).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pkg.analysis import messages as m
from pkg.analysis.analyzers.base import Analyzer, message
from pkg.analysis.inputs import AnalysisInput
from pkg.analysis.messages import Message
from pkg.analysis.resource import Resource, ValidationIssue

_UNREACHABLE = re.compile(r"^virtualService rule (.+) not used \((.+)\)$")
_INEFFECTIVE = re.compile(
    r"^virtualService rule (.+) match (.+) is not used"
    r" \(duplicate/overlapping match in rule (.+)\)$"
)


def _warning(r: Resource, issue: ValidationIssue) -> Message:
    path = issue.path
    ineffective = _INEFFECTIVE.match(issue.reason)
    if ineffective:
        return message(m.VIRTUAL_SERVICE_INEFFECTIVE_MATCH, r, *ineffective.groups(), path=path)
    unreachable = _UNREACHABLE.match(issue.reason)
    if unreachable:
        return message(m.VIRTUAL_SERVICE_UNREACHABLE_RULE, r, *unreachable.groups(), path=path)
    return message(m.SCHEMA_WARNING, r, str(issue), path=path)


def analyze_schema(inp: AnalysisInput) -> Iterator[Message]:
    for r in inp.resources:
        for issue in r.errors:
            yield message(m.SCHEMA_VALIDATION_ERROR, r, str(issue), path=issue.path)
        for issue in r.warnings:
            yield _warning(r, issue)


ANALYZERS = (
    Analyzer(
        "schema.ValidationAnalyzer",
        "Runs istiod's schema and semantic validation on every resource",
        analyze_schema,
    ),
)
