"""sovereign (the Python xDS control plane on PyPI) as a subprocess, for the side-by-side run.

- `ensure_sovereign()` installs `sovereign==0.32.*` into a venv of its own,
  `benchmarks/.venv-sovereign` (gitignored), on first use; never into the project's venv.
- `write_config()` writes a sovereign config whose templates are Python templates (sovereign's
  `protocol: python`): each module loads a JSON file of resources once, at import, and its
  `call()` returns that list. So sovereign serves exactly the resources it is given, and its
  per-request work is its own request path (pydantic parse of the DiscoveryRequest, template
  context, template call, version hash, `@type` fill, name filter, JSON rendering), with no
  template logic of ours on top of it.
- `SovereignProcess` runs it under gunicorn with uvicorn workers (sovereign's own `sovereign`
  entry point), bound to 127.0.0.1, and reads the CPU of the whole process tree (master +
  workers) from /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from benchmarks.procs import free_port, http_ok, pid_cpu_seconds, pid_memory_mb, tree_pids

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv-sovereign"
SOVEREIGN_SPEC = "sovereign==0.32.*"
# sovereign's own optional speed-ups: orjson (its JSON response class prefers it) and
# httptools (uvicorn's C HTTP parser instead of h11). Installed by default so sovereign runs
# at its best; `--sovereign-extras ''` gives the plain install.
DEFAULT_EXTRAS = ("orjson", "httptools")

# The type names sovereign serves at POST /v3/discovery:{type}.
REST_TYPES = {"CDS": "clusters", "RDS": "routes"}

_TEMPLATE_MODULE = '''"""A sovereign Python template (written by benchmarks/sovereign_proc.py): the
resources pyistio served for this config, loaded once; every request returns them as they are.
"""

import json

with open({path!r}, encoding="utf-8") as f:
    RESOURCES = json.load(f)


def call(*args, **kwargs):
    return RESOURCES
'''


class SovereignError(RuntimeError):
    pass


def venv_for(extras: Sequence[str]) -> Path:
    """`benchmarks/.venv-sovereign` for the default extras; a sibling venv for any other set,
    so that an install without the speed-ups really runs without them."""
    if tuple(extras) == DEFAULT_EXTRAS:
        return VENV
    return BENCH_DIR / f".venv-sovereign-{'-'.join(sorted(extras)) or 'plain'}"


def venv_python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def installed_version(venv: Path = VENV) -> str | None:
    python = venv_python(venv)
    if not python.is_file():
        return None
    proc = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('sovereign'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def installed_packages(venv: Path = VENV, names: Sequence[str] = ()) -> dict[str, str]:
    """Versions of `names` installed in the venv (missing ones are left out)."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [str(venv_python(venv)), "-c", code, *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, str] = json.loads(proc.stdout)
    return result


def ensure_sovereign(
    extras: Sequence[str] = DEFAULT_EXTRAS,
    venv: Path | None = None,
    say: Callable[[str], None] = print,
) -> Path:
    """The `sovereign` executable of the benchmark's own venv, installing it (and `extras`)
    there first if it is missing. Never touches the project's venv."""
    venv = venv_for(extras) if venv is None else venv
    version = installed_version(venv)
    missing_extras = []
    if version is not None and extras:
        have = installed_packages(venv, extras)
        missing_extras = [e for e in extras if e not in have]
    if version is not None and version.startswith("0.32.") and not missing_extras:
        return venv / "bin" / "sovereign"
    say(f"installing {SOVEREIGN_SPEC} (extras: {','.join(extras) or 'none'}) into {venv}")
    if not venv_python(venv).is_file():
        # The base interpreter of whatever runs this, not the project venv's site-packages.
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    spec = f"sovereign[{','.join(extras)}]==0.32.*" if extras else SOVEREIGN_SPEC
    subprocess.run(
        [
            str(venv_python(venv)),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            spec,
        ],
        check=True,
        timeout=900,
    )
    version = installed_version(venv)
    if version is None or not version.startswith("0.32."):
        raise SovereignError(f"sovereign 0.32.x not importable in {venv} (got {version})")
    return venv / "bin" / "sovereign"


def template_module_source(resources_json: Path) -> str:
    return _TEMPLATE_MODULE.format(path=str(resources_json))


def write_config(workdir: Path, resources: Mapping[str, Path]) -> Path:
    """A sovereign config serving each `{rest_type: resources JSON file}` through a Python
    template module that returns those resources. Returns the config file."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = ["templates:", "  default:"]
    for rest_type, json_path in sorted(resources.items()):
        module = workdir / f"template_{rest_type}.py"
        module.write_text(template_module_source(json_path.resolve()))
        lines += [
            f"    - type: {rest_type}",
            "      spec:",
            "        protocol: python",
            "        serialization: raw",
            f"        path: {module.resolve()}",
        ]
    config = workdir / "sovereign.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


class SovereignProcess:
    """`sovereign` (gunicorn master + `workers` uvicorn workers) on 127.0.0.1:<free port>."""

    def __init__(
        self,
        executable: Path,
        config: Path,
        workdir: Path,
        *,
        workers: int = 2,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.executable = executable
        self.config = config
        self.workdir = workdir
        self.workers = workers
        self.env = dict(env or {})
        self.port = 0
        self.log_path = workdir / "sovereign.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise SovereignError("sovereign is not running")
        return self._proc.pid

    def start(self, timeout: float = 60.0) -> SovereignProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {
            # Only what sovereign needs: no proxy settings, no unrelated PYTHON* variables.
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "SOVEREIGN_CONFIG": f"file://{self.config.resolve()}",
            "SOVEREIGN_HOST": "127.0.0.1",
            "SOVEREIGN_PORT": str(self.port),
            "SOVEREIGN_WORKERS": str(self.workers),
            # Like istiod at --log-level warning: no per-request access log line.
            "SOVEREIGN_ENABLE_ACCESS_LOGS": "false",
            "SOVEREIGN_ENABLE_APPLICATION_LOGS": "false",
            "SOVEREIGN_KEEPALIVE": "30",
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [str(self.executable)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self._proc.poll() is not None:
                    raise SovereignError(
                        f"sovereign exited with {self._proc.returncode}\n{self.tail()}"
                    )
                if self._healthy():
                    pids = tree_pids(self._proc.pid)
                    if len(pids) >= 1 + self.workers:  # the master and every worker are up
                        self.pids = pids
                        return self
                if time.monotonic() > deadline:
                    raise SovereignError(f"sovereign not ready after {timeout}s\n{self.tail()}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        return http_ok(f"{self.url}/healthcheck")

    def post(self, rest_type: str, body: bytes, timeout: float = 60.0) -> bytes:
        request = urllib.request.Request(
            f"{self.url}/v3/discovery:{rest_type}",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            data: bytes = resp.read()
            return data

    def cpu_seconds(self) -> float:
        """user+sys of the master and the workers (the pids seen at start; a worker that
        gunicorn replaced would be missed, so `check_workers` is called around each phase)."""
        return sum(pid_cpu_seconds(p) for p in self.pids)

    def rss_mb(self) -> float:
        return sum(pid_memory_mb(p)[0] for p in self.pids)

    def check_workers(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise SovereignError(f"sovereign is not running\n{self.tail()}")
        now = set(tree_pids(self._proc.pid))
        if now != set(self.pids):
            raise SovereignError(
                f"sovereign's processes changed ({sorted(self.pids)} → {sorted(now)}): "
                f"a worker was restarted\n{self.tail()}"
            )

    def stop(self, timeout: float = 8.0) -> int | None:
        """SIGINT (gunicorn's quick shutdown) to the process group, then SIGKILL."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        # Workers left behind by a master that died first: they are in our process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
