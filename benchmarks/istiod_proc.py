"""Run `istiod --config-dir DIR` as a subprocess for benchmarks, and read its CPU, RSS and log.

istiod binds every server on `127.0.0.1:0` and prints `listening <name> <host:port>` on stderr;
its whole stderr goes to a log file (so no pipe can fill up), which is polled for those lines.
CPU is user+sys from /proc/<pid>/stat (all threads, gRPC C-core included); peak RSS is VmHWM.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.procs import http_ok, pid_cpu_seconds, pid_memory_mb, terminate

REPO_ROOT = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(r"^listening\s+(\S+)\s+(\S+:\d+)\s*$", re.MULTILINE)
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})Z\t(\w+)\t(\S+)\t(.*)$")


class IstiodError(RuntimeError):
    pass


def istiod_command() -> list[str]:
    script = Path(sys.executable).parent / "istiod"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "pilot.bootstrap.main"]


@dataclass(frozen=True, slots=True)
class LogLine:
    wall: float  # seconds since the epoch, as istiod stamped it
    level: str
    logger: str
    message: str


class IstiodProcess:
    def __init__(
        self,
        config_dir: Path,
        workdir: Path,
        *,
        log_level: str = "info",
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.config_dir = config_dir
        self.workdir = workdir
        self.log_level = log_level
        self.env = dict(env or {})
        self.extra_args = list(extra_args)
        self.log_path = workdir / "istiod.log"
        self.addresses: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise IstiodError("istiod is not running")
        return self._proc.pid

    @property
    def http(self) -> str:
        return f"http://{self.addresses['http']}"

    @property
    def grpc(self) -> str:
        return self.addresses["grpc"]

    def start(self, timeout: float = 30.0) -> IstiodProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        state = self.workdir / "state"
        state.mkdir(exist_ok=True)
        argv = [
            *istiod_command(),
            "--config-dir",
            str(self.config_dir),
            "--state-dir",
            str(state),
            "--grpc-addr",
            "127.0.0.1:0",
            "--secure-grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--monitoring-addr",
            "127.0.0.1:0",
            "--webhook-addr",
            "127.0.0.1:0",
            "--log-level",
            self.log_level,
            *self.extra_args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self._proc.poll() is not None:
                    raise IstiodError(f"istiod exited with {self._proc.returncode}\n{self.tail()}")
                text = self.log_path.read_text(errors="replace")
                self.addresses = dict(_LISTENING.findall(text))
                if "grpc" in self.addresses and "http" in self.addresses and self._ready():
                    return self
                if time.monotonic() > deadline:
                    raise IstiodError(f"istiod not ready after {timeout}s\n{self.tail()}")
                time.sleep(0.02)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        return http_ok(f"{self.http}/ready")

    def get_json(self, path: str, timeout: float = 30.0) -> Any:
        with urllib.request.urlopen(f"{self.http}{path}", timeout=timeout) as resp:
            return json.loads(resp.read())

    def stop(self, timeout: float = 6.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        return terminate(proc, timeout)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # ---- measurements --------------------------------------------------------------------

    def cpu_seconds(self) -> float:
        """user+sys CPU seconds of the whole process so far."""
        return pid_cpu_seconds(self.pid)

    def rss_mb(self) -> tuple[float, float]:
        """(current RSS, peak RSS) in MiB."""
        return pid_memory_mb(self.pid)

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_lines(self) -> list[LogLine]:
        out = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            m = _LOG_LINE.match(raw)
            if m is None:
                continue
            stamp = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
            out.append(LogLine(stamp.timestamp(), m.group(2), m.group(3), m.group(4)))
        return out


def wall_to_monotonic_offset() -> float:
    """time.time() - time.monotonic(), sampled tightly (to map istiod's wall-clock log stamps
    onto CLOCK_MONOTONIC, which all benchmark processes share)."""
    best = None
    for _ in range(5):
        a = time.monotonic()
        w = time.time()
        b = time.monotonic()
        if best is None or (b - a) < best[0]:
            best = (b - a, w - (a + b) / 2)
    assert best is not None
    return best[1]
