"""`istioctl x plan --config-dir DIR`: the plan without an istiod, made by the real child
process (`python -m pilot.plan`) for proxies simulated from the directory's WorkloadEntries
and Gateways; exit statuses as the online plan's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from istioctl import cli
from tests.pilot.plan.offline_mesh import (
    GATEWAY,
    INVALID,
    PRODUCTPAGE,
    UNCHANGED,
    WEIGHTS,
    write_mesh,
)


def run_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, *flags: str
) -> tuple[int, str, str]:
    config = tmp_path / "config"
    if not config.exists():
        write_mesh(tmp_path)
    path = tmp_path / "change.yaml"
    path.write_text(change)
    code = cli.main(["x", "plan", "-f", str(path), "--config-dir", str(config), *flags])
    out, err = capsys.readouterr()
    return code, out, err


def classes_by_proxy(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p: c for c in report["classes"] for p in c["proxies"]}


def test_weight_change_names_the_route_of_the_client_sidecars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_plan(tmp_path, capsys, WEIGHTS, "-o", "json")
    assert code == 2, err
    report = json.loads(out)
    assert report["simulated"] and report["valid"] and report["changed"]
    ids = report["simulatedProxies"]
    assert f"sidecar~127.0.22.1~{PRODUCTPAGE}~default.svc.cluster.local" in ids
    assert f"router~127.0.0.3~{GATEWAY}~default.svc.cluster.local" in ids
    assert len(ids) == 4 and report["proxies"] == 4
    by_proxy = classes_by_proxy(report)
    sidecar = {t["type"]: t for t in by_proxy[PRODUCTPAGE]["types"]}
    assert sidecar["RDS"]["changed"] == ["9080"]
    assert '+                  "weight": 50' in sidecar["RDS"]["resources"][0]["diff"]
    assert not any(sidecar[t]["resources"] for t in ("CDS", "EDS", "LDS", "SDS"))
    # The gateway's routes do not carry the mesh VirtualService: nothing changes for it.
    assert not by_proxy[GATEWAY]["changed"]


def test_text_says_the_proxies_are_simulated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_plan(tmp_path, capsys, WEIGHTS, "--brief")
    assert code == 2
    assert "Proxies: simulated from the config directory" in out
    assert "RDS  1 changed" in out and "~ 9080" in out


def test_no_change_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_plan(tmp_path, capsys, UNCHANGED)
    assert code == 0
    assert "No proxy's configuration would change." in out


def test_invalid_change_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_plan(tmp_path, capsys, INVALID)
    assert code == 1 and not out
    assert "VirtualService/default/reviews" in err and "weight" in err


def test_invalid_config_dir_exits_1_naming_file_object_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_mesh(tmp_path)
    (config / "broken.yaml").write_text(INVALID.replace("name: reviews,", "name: broken,"))
    code, out, err = run_plan(tmp_path, capsys, WEIGHTS)
    assert code == 1 and not out
    assert "broken.yaml" in err and "VirtualService/default/broken" in err and "weight" in err


def test_proxy_flag_restricts_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_plan(tmp_path, capsys, WEIGHTS, "-o", "json", "--proxy", GATEWAY)
    assert code == 0  # the only planned proxy does not change
    report = json.loads(out)
    assert report["proxies"] == 1 and list(classes_by_proxy(report)) == [GATEWAY]
    code, out, err = run_plan(tmp_path, capsys, WEIGHTS, "--proxy", "nope.default")
    assert code == 1 and not out
    assert "nope.default" in err and PRODUCTPAGE in err


def test_config_dir_and_istiod_are_exclusive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_plan(tmp_path, capsys, WEIGHTS, "--istiod", "http://127.0.0.1:1")
    assert code == 1 and "mutually exclusive" in err
