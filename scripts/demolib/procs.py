"""Child processes: which command runs a tool, polling until ready, their logs, stopping them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import DemoError


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file under a header ("" when missing or empty)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    last = text.splitlines()[-lines:]
    if not last:
        return ""
    return f"--- {path} (last {len(last)} lines) ---\n" + "\n".join(last)


def wait_for(
    what: str,
    predicate: Callable[[], Any],
    timeout: float,
    logs: Callable[[], str],
    interval: float = 0.1,
) -> Any:
    """Poll `predicate` until truthy; exceptions count as "not yet". DemoError on timeout."""
    deadline = time.monotonic() + timeout
    last: str = "never evaluated"
    while True:
        try:
            value = predicate()
        except DemoError:
            raise
        except Exception as err:
            last = f"{type(err).__name__}: {err}"
        else:
            if value:
                return value
            last = repr(value)
        if time.monotonic() >= deadline:
            raise DemoError(
                f"timed out after {timeout:.1f}s waiting for {what} (last: {last})\n{logs()}"
            )
        time.sleep(interval)


def tool(name: str) -> list[str]:
    """The venv's console script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).parent / name
    if script.is_file():
        return [str(script)]
    module = {"istiod": "pilot.bootstrap.main", "istioctl": "istioctl.cli"}[name]
    return [sys.executable, "-m", module]


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the process group, wait, then SIGKILL it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    # The group may still hold children even when the leader is gone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5.0)
