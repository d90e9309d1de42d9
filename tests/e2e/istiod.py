"""Run a real `istiod` (standalone mode) as a subprocess for end-to-end tests.

istiod binds every server on an ephemeral port (`ADDR:0`) and prints one
`listening <name> <host:port>` line per server on stderr (DESIGN.md §2.1); this harness parses
those lines generically into `addresses`, keeps draining istiod's output into a log file (so
the pipe never fills up), and waits for `GET /ready` = 200. `restart()` brings istiod back on
the very same ports, so Envoys reconnect to the address they already know.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from pilot.xds.generators.verify import MISMATCH_MARKER

from .net import WaitTimeout, split_host_port, wait_until
from .traffic import Response, request

REPO_ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"\blistening\s+([A-Za-z][\w.-]*)\s+(\[[0-9a-fA-F:.]+\]:\d+|[\w.-]+:\d+)")

# name → bind address; each becomes `--<name>-addr ADDR` (grpc → --grpc-addr, ...).
DEFAULT_BIND: Mapping[str, str] = {
    "grpc": "127.0.0.1:0",
    "secure-grpc": "127.0.0.1:0",
    "http": "127.0.0.1:0",
    "monitoring": "127.0.0.1:0",
    "webhook": "127.0.0.1:0",
}


class IstiodError(AssertionError):
    """istiod did not start, answer or stop as needed; the message ends with its log tail."""


def istiod_command() -> list[str]:
    """`.venv/bin/istiod` next to this interpreter, else `python -m pilot.bootstrap.main`."""
    script = Path(sys.executable).parent / "istiod"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "pilot.bootstrap.main"]


class IstiodProcess:
    def __init__(
        self,
        workdir: Path,
        *,
        config_dirs: Sequence[Path] = (),
        state_dir: Path | None = None,
        mesh_config: Path | None = None,
        bind: Mapping[str, str] = DEFAULT_BIND,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        required: Sequence[str] = ("grpc", "http"),
    ) -> None:
        self.workdir = workdir
        self.config_dirs = list(config_dirs) or [workdir / "config"]
        self.state_dir = state_dir or workdir / "state"
        self.mesh_config = mesh_config
        self.bind = dict(bind)
        self.extra_args = list(extra_args)
        # Every e2e istiod rebuilds each answer from scratch and compares it with the shared,
        # cached one; a mismatch is logged and fails the test when istiod stops.
        self.env = {"UNSAFE_PILOT_XDS_CACHE_VERIFY": "true", **dict(env or {})}
        self.command = list(command) if command is not None else istiod_command()
        self.required = tuple(required)
        self.log_path = workdir / "istiod.log"
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._drainer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._addresses: dict[str, str] = {}

    @property
    def config_dir(self) -> Path:
        """The (first) directory istiod watches: write YAML here."""
        return self.config_dirs[0]

    # -- lifecycle -------------------------------------------------------------------------

    def argv(self) -> list[str]:
        args = [*self.command]
        # Kubernetes mode (--kubeconfig) takes no --config-dir: istiod refuses the pair.
        kube_mode = "--kubeconfig" in self.extra_args
        for config_dir in () if kube_mode else self.config_dirs:
            args += ["--config-dir", str(config_dir)]
        args += ["--state-dir", str(self.state_dir)]
        if self.mesh_config is not None:
            args += ["--mesh-config", str(self.mesh_config)]
        for name, addr in self.bind.items():
            args += [f"--{name}-addr", addr]
        return args + self.extra_args

    def start(self, timeout: float = 30.0) -> IstiodProcess:
        """Spawn istiod and wait until it listens and `/ready` answers 200."""
        if self.running:
            raise RuntimeError("istiod already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for config_dir in self.config_dirs:
            config_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._addresses = {}
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"=== start {self.starts}: {' '.join(self.argv())}\n".encode())
        log.flush()
        try:
            self._proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env=env,
                start_new_session=True,
            )
        except OSError:
            log.close()
            raise
        assert self._proc.stdout is not None
        self._drainer = threading.Thread(
            target=self._drain, args=(self._proc.stdout, log), name="istiod-drain", daemon=True
        )
        self._drainer.start()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _drain(self, pipe: IO[bytes], log: IO[bytes]) -> None:
        with log, pipe:
            for raw in pipe:
                log.write(raw)
                log.flush()
                match = _LISTENING.search(raw.decode("utf-8", "replace"))
                if match:
                    with self._lock:
                        self._addresses[match.group(1)] = match.group(2)

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if not self.running:
                return True  # reported below
            addrs = self.addresses
            if any(name not in addrs for name in self.required):
                return False
            return self.get("/ready", timeout=1.0).status == 200

        try:
            wait_until(ready, timeout, 0.05, f"istiod listening on {self.required} and ready")
        except WaitTimeout as err:
            raise self.error(str(err)) from None
        if not self.running:
            self._join_drainer()
            raise self.error(f"istiod exited with {self.returncode} during start")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; returns the exit code (SIGKILLed → -9 after `timeout`)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)
        self._join_drainer()
        self._check_cache_verification()
        return proc.returncode

    def _check_cache_verification(self) -> None:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        bad = [line for line in text.splitlines() if MISMATCH_MARKER in line]
        if bad:
            raise IstiodError("istiod's xDS cache verification failed:\n" + "\n".join(bad[:5]))

    def kill(self) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
            proc.wait(5.0)
        self._join_drainer()
        return proc.returncode

    def restart(self, *, graceful: bool = True, timeout: float = 30.0) -> int | None:
        """Stop (SIGTERM, or SIGKILL if not graceful) and start again with the same config
        dir, state dir and ports; returns the old process's exit code."""
        pinned = self.addresses
        code = self.stop() if graceful else self.kill()
        for name in self.bind:
            if name in pinned:
                self.bind[name] = pinned[name]
        self.start(timeout)
        return code

    def _join_drainer(self) -> None:
        if self._drainer is not None:
            self._drainer.join(5.0)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("istiod not started")
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def __enter__(self) -> IstiodProcess:
        return self if self.running else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses and HTTP ----------------------------------------------------------------

    @property
    def addresses(self) -> dict[str, str]:
        """Every `listening <name> <host:port>` seen since the last start."""
        with self._lock:
            return dict(self._addresses)

    def address(self, name: str) -> str:
        addrs = self.addresses
        if name not in addrs:
            raise self.error(f"istiod printed no `listening {name} ...` line; saw {addrs}")
        return addrs[name]

    @property
    def grpc_addr(self) -> str:
        """Plaintext xDS HOST:PORT (for `istioctl bootstrap --insecure --istiod`)."""
        return self.address("grpc")

    @property
    def secure_grpc_addr(self) -> str:
        return self.address("secure-grpc")

    @property
    def http_url(self) -> str:
        return f"http://{self.address('http')}"

    @property
    def monitoring_url(self) -> str:
        return f"http://{self.address('monitoring')}"

    def get(self, path: str, timeout: float = 5.0) -> Response:
        host, port = split_host_port(self.address("http"))
        return request(host, port, "GET", path, timeout=timeout)

    def get_json(self, path: str, timeout: float = 5.0) -> Any:
        resp = self.get(path, timeout)
        if resp.status != 200:
            raise self.error(f"GET {path} → {resp.status}: {resp.body[:500]!r}")
        return resp.json()

    # -- diagnostics -----------------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no istiod output)"
        tail = text.splitlines()[-lines:]
        return f"--- {self.log_path.name} (last {len(tail)} lines) ---\n" + "\n".join(tail)

    def error(self, message: str) -> IstiodError:
        return IstiodError(f"{message}\n{self.log_tail()}")

    def __repr__(self) -> str:
        return f"IstiodProcess(pid={self._proc.pid if self._proc else None}, {self.addresses})"
