"""Golden files of generated xDS: proto JSON as YAML, one file per resource type.

Output format (Envoy Gateway's testdata style): a YAML list of the resources of one type,
sorted by resource name, each resource as `json_format` renders it (camelCase field names as in
Envoy's config_dump, `'@type'` on Any), keys sorted, no versions or nonces.

A case file `<case>.yaml` is a multi-document YAML stream: the first document is the case
header, every following document is a config object. The header holds

- `proxy:` the proxy (`tests.helpers.xds.ProxySpec.from_mapping`),
- `include:` optional config files loaded before the case's own documents: a path relative to
  the case file, or `conformance:<path>` for a file of the shared conformance corpus
  (`../shared/conformance/` from the project root, read in place); either may be a mapping
  `{path: ..., namespace: ...}` to give the default namespace of that file's objects,
- `namespace:` optional default namespace of the case's own documents (default `default`),
- `mesh:` optional MeshConfig fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from google.protobuf.message import Message

from tests.helpers.xds import ConfigLoadError, ConfigSource, FakeDiscovery, ProxySpec, XdsResources

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE_DIR = PROJECT_ROOT.parent / "shared" / "conformance"
CONFORMANCE_PREFIX = "conformance:"


# ---- rendering ------------------------------------------------------------------------------


def to_proto_dict(message: Message) -> dict[str, Any]:
    """Proto JSON (camelCase, Any expanded with '@type') as plain Python values."""
    text = json_format.MessageToJson(message, preserving_proto_field_name=False, indent=None)
    value: dict[str, Any] = json.loads(text)
    return value


def render_resources(resources: Mapping[str, Message]) -> str:
    """One golden file's text: the resources sorted by name, as YAML with sorted keys."""
    items = [to_proto_dict(resources[name]) for name in sorted(resources)]
    return yaml.safe_dump(items, sort_keys=True, default_flow_style=False, width=100)


# ---- comparison -----------------------------------------------------------------------------


def unified_diff(expected: str, actual: str, path: Path) -> str:
    lines = difflib.unified_diff(
        expected.splitlines(keepends=True),
        actual.splitlines(keepends=True),
        fromfile=f"{path} (golden)",
        tofile=f"{path} (generated)",
    )
    return "".join(lines)


def golden_mismatch(path: Path, actual: str, update: bool) -> str | None:
    """None when `actual` equals the golden file (or `update` rewrote it); else a message with
    a unified diff."""
    if update:
        if not path.exists() or path.read_text(encoding="utf-8") != actual:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
        return None
    if not path.exists():
        return f"missing golden file {path} (run pytest --update-golden to create it)"
    expected = path.read_text(encoding="utf-8")
    if expected == actual:
        return None
    return (
        f"generated output differs from {path.name} (run pytest --update-golden to accept):\n"
        + unified_diff(expected, actual, path)
    )


def check_golden(files: Mapping[Path, str], update: bool) -> None:
    """Check (or rewrite) several golden files; one failure lists every mismatch."""
    problems = [m for path, text in files.items() if (m := golden_mismatch(path, text, update))]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def stale_files(directory: Path, expected: Iterable[Path]) -> list[Path]:
    """Files in `directory` that no current case produces."""
    keep = {p.resolve() for p in expected}
    if not directory.exists():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.resolve() not in keep)


# ---- case files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldenCase:
    name: str
    path: Path
    proxy: ProxySpec
    sources: tuple[ConfigSource, ...]
    mesh: Mapping[str, Any] = field(default_factory=dict)
    missing: tuple[str, ...] = ()  # includes that are not on this machine


def _resolve_include(case_path: Path, entry: Any) -> tuple[Path, str]:
    if isinstance(entry, Mapping):
        raw_path, namespace = str(entry["path"]), str(entry.get("namespace", "default"))
    else:
        raw_path, namespace = str(entry), "default"
    if raw_path.startswith(CONFORMANCE_PREFIX):
        return CONFORMANCE_DIR / raw_path[len(CONFORMANCE_PREFIX) :], namespace
    return (case_path.parent / raw_path).resolve(), namespace


def load_case(path: Path) -> GoldenCase:
    text = path.read_text(encoding="utf-8")
    header_text, sep, body = text.partition("\n---")
    header = yaml.safe_load(header_text) or {}
    if not isinstance(header, Mapping) or "proxy" not in header:
        raise ConfigLoadError(f"{path}: the first document must be a case header with proxy:")
    unknown = set(header) - {"proxy", "include", "namespace", "mesh"}
    if unknown:
        raise ConfigLoadError(f"{path}: unknown header keys {sorted(unknown)}")
    sources: list[ConfigSource] = []
    missing: list[str] = []
    for entry in header.get("include") or []:
        include, namespace = _resolve_include(path, entry)
        if not include.exists():
            missing.append(str(include))
            continue
        sources.append(ConfigSource(include.read_text(encoding="utf-8"), str(include), namespace))
    if sep:
        namespace = str(header.get("namespace", "default"))
        # Blank lines in place of the header keep line numbers in error messages right.
        padding = "\n" * (header_text.count("\n") + 1)
        sources.append(ConfigSource(padding + "---" + body, str(path), namespace))
    return GoldenCase(
        name=path.stem,
        path=path,
        proxy=ProxySpec.from_mapping(header["proxy"]),
        sources=tuple(sources),
        mesh=dict(header.get("mesh") or {}),
        missing=tuple(missing),
    )


def case_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


@functools.cache
def case_discovery(path: Path) -> tuple[FakeDiscovery, ProxySpec]:
    """The case's configs built once per test session, and its proxy. An include that is
    missing (e.g. ../shared/conformance not next to the checkout) fails the test."""
    case = load_case(path)
    if case.missing:
        pytest.fail(f"case inputs not found: {', '.join(case.missing)}")
    return FakeDiscovery(case.sources, mesh=case.mesh), case.proxy


def case_resources(path: Path, proxy: ProxySpec | None = None, **overrides: Any) -> XdsResources:
    """What the case's proxy (or `proxy`, with `overrides` applied) fetches."""
    discovery, default_proxy = case_discovery(path)
    spec = dataclasses.replace(proxy or default_proxy, **overrides)
    return discovery.resources(spec)
