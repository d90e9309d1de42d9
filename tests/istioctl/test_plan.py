"""`istioctl x plan` and `istioctl apply` without an istiod: validation first, exit statuses,
the text form of a plan, and apply's question."""

from __future__ import annotations

import io
import socket
from pathlib import Path

from istioctl import cli, cmd_apply
from istioctl.experimental import plan
from istioctl.experimental.plan_render import render_text

GOOD = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
"""
BAD = GOOD.replace("{host: reviews}}", "{host: reviews}, weight: -1}")

REPORT = {
    "valid": True,
    "changed": True,
    "objects": ["VirtualService/default/reviews"],
    "deleted": ["DestinationRule/default/old"],
    "proxies": 8,
    "generatorRuns": 20,
    "classes": [
        {
            "proxies": [f"p-{i}.default" for i in range(7)],
            "count": 7,
            "changed": True,
            "endpointOnly": False,
            "sizeChange": 4,
            "types": [
                {"type": "CDS", "added": [], "removed": [], "changed": [], "resources": []},
                {
                    "type": "RDS",
                    "added": [],
                    "removed": [],
                    "changed": ["9080"],
                    "sizeChange": 4,
                    "resources": [
                        {"name": "9080", "change": "changed", "diff": "--- a\n+++ b\n-1\n+2\n"}
                    ],
                },
            ],
        },
        {"proxies": ["r.default"], "count": 1, "changed": False, "types": []},
    ],
    "analysis": [
        {"code": "IST0173", "level": "Error", "origin": "DestinationRule default/r", "message": "m"}
    ],
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_text_names_classes_types_and_findings() -> None:
    text = render_text(REPORT)
    assert "Plan: VirtualService/default/reviews, DestinationRule/default/old (deleted)" in text
    assert "8 proxies in 2 classes (20 generator runs)" in text
    assert "Class 1: 7 proxies: p-0.default, p-1.default, p-2.default, p-3.default, " in text
    assert "(+2 more)" in text
    assert "  CDS  no change" in text and "  RDS  1 changed (+4 bytes)" in text
    assert "    ~ 9080" in text and "  +2" in text and "push: full" in text
    assert "Class 2: 1 proxy: r.default: no change" in text
    assert "Error [IST0173] (DestinationRule default/r) m" in text
    assert "  +2" not in render_text(REPORT, brief=True)


def test_invalid_change_exits_1_before_asking_istiod(tmp_path: Path, capsys: object) -> None:
    change = tmp_path / "bad.yaml"
    change.write_text(BAD)
    url = f"http://127.0.0.1:{closed_port()}"
    code = cli.main(["x", "plan", "-f", str(change), "--istiod", url])
    out, err = capsys.readouterr()  # type: ignore[attr-defined]
    assert code == 1 and not out
    assert "VirtualService/default/reviews" in err and "cannot reach" not in err


def test_unreachable_istiod_exits_1(tmp_path: Path, capsys: object) -> None:
    change = tmp_path / "vs.yaml"
    change.write_text(GOOD)
    url = f"http://127.0.0.1:{closed_port()}"
    assert cli.main(["x", "plan", "-f", str(change), "--istiod", url]) == plan.EXIT_ERROR
    assert "cannot reach" in capsys.readouterr().err  # type: ignore[attr-defined]


def test_change_bytes_make_the_namespace_explicit(tmp_path: Path) -> None:
    change = tmp_path / "vs.yaml"
    change.write_text(GOOD)
    assert b"namespace: shop" in plan.change_bytes([str(change)], "shop")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_apply_asks_and_only_yes_applies() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert not cmd_apply.confirm(io.StringIO("yes\n"), out, err)  # not a terminal
    assert "--yes" in err.getvalue()
    assert cmd_apply.confirm(Terminal("yes\n"), out, err)
    assert "Only 'yes' will be accepted" in out.getvalue()
    assert not cmd_apply.confirm(Terminal("y\n"), out, err)


def test_apply_validates_then_writes(tmp_path: Path, capsys: object) -> None:
    config = tmp_path / "config"
    config.mkdir()
    bad, good = tmp_path / "bad.yaml", tmp_path / "vs.yaml"
    bad.write_text(BAD)
    good.write_text(GOOD)
    assert cli.main(["apply", "-f", str(bad), "--config-dir", str(config)]) == 1
    assert list(config.iterdir()) == []
    assert cli.main(["apply", "-f", str(good), "--config-dir", str(config)]) == 0
    assert [p.name for p in config.iterdir()] == ["vs.yaml"]
    assert (config / "vs.yaml").read_text() == GOOD
    assert "applied" in capsys.readouterr().out  # type: ignore[attr-defined]
