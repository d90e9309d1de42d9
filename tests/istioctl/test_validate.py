"""`istioctl validate`: exit codes, output format, files, directories, stdin."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from istioctl.cli import main

PROJECT = Path(__file__).resolve().parents[2]
BOOKINFO = PROJECT / "../shared/conformance/bookinfo"

VALID = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1}
spec: {replicas: 1}
"""

INVALID = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{sourcelabels: {app: a}}]
    route:
    - destination: {host: reviews}
      weight: -1
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: pa, namespace: prod}
spec:
  mtls: {mode: BLAH}
"""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["validate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(VALID)
    code, out, err = run(["-f", str(path)], capsys)
    assert (code, out, err) == (0, f'"{path}" is valid\n', "")


def test_invalid_file_lists_every_error_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(INVALID)
    code, out, err = run(["-f", str(path)], capsys)
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        "VirtualService/default/reviews: spec.http[0].match[0].sourcelabels: unknown field "
        '"sourcelabels"',
        'PeerAuthentication/prod/pa: spec.mtls.mode: Unsupported value: "BLAH": supported values: '
        '"UNSET", "DISABLE", "PERMISSIVE", "STRICT"',
    ]


def test_semantic_errors_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "weights.yaml"
    path.write_text(
        INVALID.split("---")[0].replace(
            "  - match: [{sourcelabels: {app: a}}]\n    route", "  - route"
        )
    )
    code, _, err = run(["-f", str(path)], capsys)
    assert code == 1
    assert err == "VirtualService/default/reviews: spec.http[0].route[0].weight: weight -1 < 0\n"


def test_several_files_and_the_namespace_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(VALID)
    bad.write_text(INVALID)
    code, _, err = run(["-f", str(good), "-f", str(bad), "-n", "team"], capsys)
    assert code == 1
    assert err.splitlines()[0].startswith("VirtualService/team/reviews: ")


def test_yaml_syntax_error_names_file_and_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(VALID.split("---")[0] + "---\nkind: [unclosed\n")
    code, _, err = run(["-f", str(path)], capsys)
    assert code == 1
    assert err.startswith(f"{path}: document 1: failed to decode: YAML syntax error at line 9")


def test_directory_means_every_yaml_and_json_file_below(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "sub" / "b.yml").write_text(VALID)
    (tmp_path / "c.json").write_text(
        '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}'
    )
    (tmp_path / "notes.txt").write_text("not yaml: [")
    code, out, err = run(["-f", str(tmp_path)], capsys)
    assert code == 0
    assert err == ""
    assert out.splitlines() == [
        f'"{tmp_path / "a.yaml"}" is valid',
        f'"{tmp_path / "c.json"}" is valid',
        f'"{tmp_path / "sub" / "b.yml"}" is valid',
    ]


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(INVALID.encode())))
    code, _, err = run(["-f", "-"], capsys)
    assert code == 1
    assert len(err.splitlines()) == 2
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(VALID.encode())))
    assert run(["-f", "-"], capsys) == (0, "validation succeed\n", "")


def test_lists_are_expanded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: Namespace, metadata: {name: ok}}\n"
        "- {apiVersion: v1, kind: Namespace, metadata: {name: Not_OK}}\n"
    )
    code, _, err = run(["-f", str(path)], capsys)
    assert code == 1
    assert err.startswith("Namespace//Not_OK: metadata.name: ")


def test_warnings_keep_exit_status_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "warn.yaml"
    route = "  - route: [{destination: {host: r}}]\n"
    path.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
        "spec:\n  hosts: [r]\n  http:\n" + route + route
    )
    code, out, err = run(["-f", str(path)], capsys)
    assert code == 0
    assert err == ""
    assert out.splitlines()[0] == f'"{path}" has warnings:'
    assert "VirtualService/default/r: spec.http[1]: virtualService rule #1 not used" in out


def test_missing_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["-f", str(tmp_path / "nope.yaml")], capsys)
    assert code == 1
    assert "cannot stat file" in err
    code, _, err = run([], capsys)
    assert code == 1
    assert "no file specified" in err


def test_bookinfo_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["-f", str(BOOKINFO)], capsys)
    assert code == 0
    assert err == ""
    assert out.count(" is valid") + out.count(" has warnings:") == len(
        list(BOOKINFO.rglob("*.yaml"))
    )


def test_console_entry_point(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(INVALID)
    done = subprocess.run(
        [sys.executable, "-m", "istioctl", "validate", "-f", str(path)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 2
    assert done.stderr.startswith(
        "VirtualService/default/reviews: spec.http[0].match[0].sourcelabels:"
    )
