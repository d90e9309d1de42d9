"""istiod (standalone) as a child process: start it on the config directory, learn its
addresses from its log, wait for /ready, stop it."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path
from typing import IO

from .base import REPO, DemoError
from .procs import stop_process, tail, tool, wait_for
from .web import Reply, http_get, split_host_port

LISTENING = re.compile(r"\blistening\s+([A-Za-z][\w.-]*)\s+(\S+:\d+)")


class Istiod:
    def __init__(self, config_dir: Path, workdir: Path) -> None:
        self.config_dir = config_dir
        self.workdir = workdir
        self.log_path = workdir / "istiod.log"
        self.addresses: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._drainer: threading.Thread | None = None

    def start(self) -> None:
        cmd = [
            *tool("istiod"),
            "--config-dir",
            str(self.config_dir),
            "--state-dir",
            str(self.workdir / "istiod-state"),
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
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self._drainer = threading.Thread(
            target=self._drain, args=(self.proc.stdout,), name="istiod-log", daemon=True
        )
        self._drainer.start()

    def _drain(self, pipe: IO[bytes]) -> None:
        with self.log_path.open("ab") as log, pipe:
            for raw in pipe:
                log.write(raw)
                log.flush()
                if match := LISTENING.search(raw.decode("utf-8", "replace")):
                    self.addresses[match.group(1)] = match.group(2)

    def wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.poll() if self.proc else None
                raise DemoError(f"istiod exited with {code} while starting\n{self.logs()}")
            if not {"grpc", "secure-grpc", "http"} <= set(self.addresses):
                return False
            return self.get("/ready", timeout=1.0).status == 200

        wait_for("istiod to listen and answer /ready 200", ready, timeout, self.logs)

    @property
    def http(self) -> str:
        return self.addresses["http"]

    @property
    def grpc(self) -> str:
        return self.addresses["grpc"]

    @property
    def secure_grpc(self) -> str:
        return self.addresses["secure-grpc"]

    def get(self, path: str, timeout: float = 5.0) -> Reply:
        host, port = split_host_port(self.http)
        return http_get(host, port, path, timeout=timeout)

    def logs(self) -> str:
        return tail(self.log_path, 40) or "(istiod printed nothing)"

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 8.0)
        if self._drainer is not None:
            self._drainer.join(3.0)
