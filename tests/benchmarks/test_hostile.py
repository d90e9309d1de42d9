"""The hostile-clients scenario (benchmarks/hostile.py) at a reduced size: it runs against a
real istiod, the stuck clients are dropped, and the figures print. The e2e file
tests/e2e/test_hostile_clients.py asserts the behaviour; this keeps the full-size command
working."""

from __future__ import annotations

import pytest

from benchmarks import hostile


def test_hostile_scenario_reduced(capsys: pytest.CaptureFixture[str]) -> None:
    hostile.main(["--connections", "50", "--rounds", "2", "--stuck", "2", "--send-timeout", "1s"])
    out = capsys.readouterr().out
    assert "(50 answered), " in out and "2 clients that never read: all dropped" in out
    assert "clients left at the end: 1" in out
