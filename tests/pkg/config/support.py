"""Helpers for config tests: parse YAML text and check results with readable failures."""

from __future__ import annotations

import textwrap
from typing import Any

import yaml

from pkg.config.model import Config
from pkg.config.schema import ParseResult, parse_object


def parse(text: str, namespace: str = "default") -> ParseResult:
    return parse_object(yaml.safe_load(textwrap.dedent(text)), default_namespace=namespace)


def issues(result: ParseResult) -> list[tuple[str, str]]:
    return [(e.path, e.reason) for e in result.errors]


def assert_valid(text: str, namespace: str = "default") -> Config[Any]:
    result = parse(text, namespace)
    assert result.config is not None, f"expected valid, got: {[str(e) for e in result.errors]}"
    assert result.errors == ()
    return result.config


def assert_rejected(text: str, path: str, fragment: str = "") -> ParseResult:
    """The document is rejected with an error at exactly `path` containing `fragment`."""
    result = parse(text)
    assert result.config is None, "expected the document to be rejected"
    found = issues(result)
    assert any(p == path and fragment in r for p, r in found), (
        f"no error at {path!r} containing {fragment!r}; got {found}"
    )
    return result


def warnings_of(text: str) -> list[tuple[str, str]]:
    return [(w.path, w.reason) for w in parse(text).warnings]
