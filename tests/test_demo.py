"""The demo mesh (`scripts/demo --check`): istiod on a copy of examples/, real Envoys, the
Bookinfo apps; it proves routing end to end and exits 0. Also: examples/ validate."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 90.0  # --check takes a few seconds; this bound only catches a hang


@pytest.mark.e2e
def test_demo_check_passes() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "demo_mesh.py"), "--check"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the demo then stops its own istiod and Envoys.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(f"demo --check did not finish in {TIMEOUT:g}s:\n{out.decode(errors='replace')}")
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"demo --check exited {proc.returncode}:\n{text}"
    assert "PASS" in text, text


def test_examples_validate() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "istioctl", "validate", "-f", str(REPO / "examples")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
