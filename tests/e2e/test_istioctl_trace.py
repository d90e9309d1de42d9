"""`istioctl x trace` against a real istiod and three real Envoys: is my change live everywhere?

Three NONE-mode sidecars, each bound on its own loopback IP by its own Sidecar resource:
a.default (SotW) and b.shop (Delta) import every namespace; c.scoped (Delta) imports only its
own namespace, so a change in `default` does not concern it.

1. Editing the VirtualService default/reviews: `x trace --wait 10s` reports it pushed to 2
   proxies and ACKed by both, c.scoped not concerned, and a time from the file event to the
   last ACK; the Envoys agree (a and b hold the new route, c was sent nothing).
2. A VirtualService scoped/ratings-by-color, exported to its own namespace only, matches a
   header with a regex that is valid RE2 (istiod's validation accepts it) but compiles to a
   program of 36004 instructions, over the 32768 `istioctl bootstrap` allows Envoy (checked
   with `envoy --mode validate`): c.scoped NACKs it. `x trace` reports NACKed by 1 with
   Envoy's message, exit status 3, and the two other proxies up to date (the push concerned
   them, but the object is not visible to them). Last-known-good may then revert the object
   (pilot/config/last_good.py); the NACK stays on record.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import (
    SERVICE_PORT,
    join_docs,
    received_updates,
    sidecar_options,
    update_counters,
    wait_synced,
    write_config,
)
from .net import allocate_ip, wait_until

ISTIOCTL = str(Path(sys.executable).parent / "istioctl")
# (name.namespace, xDS API, hosts the proxy's Sidecar imports)
PROXIES = (
    ("a.default", "sotw", "*/*"),
    ("b.shop", "delta", "*/*"),
    ("c.scoped", "delta", "./*"),
)
BAD_REGEX = "(red|green|blue|cyan|magenta|yellow|black){1000}"


def service_entry(name: str, namespace: str) -> str:
    return f"""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          hosts: [{name}.{namespace}.svc.cluster.local]
          location: MESH_INTERNAL
          resolution: STATIC
          ports: [{{number: {SERVICE_PORT}, name: http, protocol: HTTP}}]
          endpoints: [{{address: {allocate_ip()}}}]
        """


def sidecar(app: str, namespace: str, ip: str, hosts: str) -> str:
    return f"""
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {{name: {app}, namespace: {namespace}}}
        spec:
          workloadSelector:
            labels: {{app: {app}}}
          egress:
          - port: {{number: {SERVICE_PORT}, protocol: HTTP, name: http}}
            bind: {ip}
            hosts: ["{hosts}"]
        """


def reviews_vs(timeout: str) -> str:
    return f"""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: reviews, namespace: default}}
        spec:
          hosts: [reviews.default.svc.cluster.local]
          http:
          - timeout: {timeout}
            route:
            - destination: {{host: reviews.default.svc.cluster.local}}
        """


BAD_VS = f"""
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {{name: ratings-by-color, namespace: scoped}}
    spec:
      hosts: [ratings.scoped.svc.cluster.local]
      exportTo: ["."]
      http:
      - match: [{{headers: {{x-color: {{regex: "{BAD_REGEX}"}}}}}}]
        route: [{{destination: {{host: ratings.scoped.svc.cluster.local}}}}]
      - route: [{{destination: {{host: ratings.scoped.svc.cluster.local}}}}]
    """


@dataclass
class Mesh:
    istiod: IstiodProcess
    config: Path
    envoys: dict[str, EnvoyProcess]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("trace")
    config = workdir / "config"
    config.mkdir()
    ips = {proxy: allocate_ip() for proxy, _, _ in PROXIES}
    docs = [service_entry("reviews", "default"), service_entry("ratings", "scoped")]
    for proxy, _, hosts in PROXIES:
        app, namespace = proxy.split(".")
        docs.append(sidecar(app, namespace, ips[proxy], hosts))
    write_config(config, "mesh.yaml", join_docs(*docs))
    write_config(config, "reviews-vs.yaml", reviews_vs("3s"))
    started: list[Any] = []
    try:
        # Anonymous (plaintext) Envoys whose NACKs may revert, as last-known-good does for
        # authenticated proxies by default.
        env = {"PILOT_REVERT_REJECTED_CONFIG": "all"}
        istiod = IstiodProcess(workdir / "istiod", config_dirs=[config], env=env).start()
        started.append(istiod)
        envoys = {}
        for proxy, api, _ in PROXIES:
            app, namespace = proxy.split(".")
            opts = sidecar_options(istiod, app, ips[proxy], {"app": app}, api, namespace)  # type: ignore[arg-type]
            envoy = EnvoyProcess.for_proxy(opts, workdir / proxy)
            started.append(envoy)
            envoys[proxy] = envoy.start()
        for proxy, envoy in envoys.items():
            envoy.wait_live(15.0)
            wait_synced(istiod, proxy, timeout=15.0)
        yield Mesh(istiod, config, envoys)
    finally:
        for process in reversed(started):
            process.stop()


def istioctl(*argv: str) -> tuple[int, str]:
    """`.venv/bin/istioctl ARGV` as a user runs it: (exit status, stdout + stderr)."""
    done = subprocess.run(
        [ISTIOCTL, *argv], capture_output=True, text=True, timeout=30, check=False
    )
    return done.returncode, done.stdout + done.stderr


def ledger_version(istiod: IstiodProcess, namespace: str, name: str) -> str:
    """The VirtualService's resourceVersion as istiod's push ledger knows it ("" if none)."""
    query = f"/debug/trace?kind=VirtualService&namespace={namespace}&name={name}"
    resp = istiod.get(query)
    if resp.status == 404:
        return ""
    assert resp.status == 200, resp.body
    return str(resp.json()["version"]["resourceVersion"])


def wait_event(mesh: Mesh, namespace: str, name: str, before: str) -> str:
    """Wait until istiod has seen the file change (a new resourceVersion)."""
    version: str = wait_until(
        lambda: (v := ledger_version(mesh.istiod, namespace, name)) != before and v,
        10.0,
        0.05,
        f"istiod to see the new version of VirtualService {namespace}/{name}",
    )
    return version


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {p["proxy"]: p["status"] for p in report["proxies"]}


def test_a_change_reaches_the_proxies_it_concerns(mesh: Mesh) -> None:
    url = mesh.istiod.http_url
    before = ledger_version(mesh.istiod, "default", "reviews")
    assert before, "the VirtualService loaded at start is on record"
    c_before = received_updates(update_counters(mesh.envoys["c.scoped"]))

    write_config(mesh.config, "reviews-vs.yaml", reviews_vs("7s"))
    version = wait_event(mesh, "default", "reviews", before)
    assert int(version) > int(before)

    code, out = istioctl(
        "x", "trace", "VirtualService/default/reviews", "--istiod", url, "--wait", "10s"
    )
    assert code == 0, out
    assert "Pushed to 2 proxies: ACKed by 2, NACKed by 0, pending 0" in out, out
    assert "not concerned 1" in out and "LIVE on every proxy it concerns" in out, out
    rows = {line.split()[0]: line for line in out.splitlines() if line.endswith(("Z", "-"))}
    assert "ACKED" in rows["a.default"] and "ACKED" in rows["b.shop"], out
    assert "NOT CONCERNED" in rows["c.scoped"], out

    code, out = istioctl(
        "experimental", "trace", "virtualservice/reviews", "-n", "default", "--istiod", url,
        "-o", "json",
    )  # fmt: skip
    assert code == 0, out
    report = json.loads(out)
    assert statuses(report) == {
        "a.default": "ACKED",
        "b.shop": "ACKED",
        "c.scoped": "NOT CONCERNED",
    }
    assert report["version"] == {"resourceVersion": version, "generation": 2, "deleted": False}
    assert report["eventToLastAckSeconds"] > 0
    current = [p for p in report["pushes"] if p["current"]]
    assert current and current[0]["proxies"]["acked"] == 2

    # What Envoy holds agrees: a and b run the new route; c was sent nothing at all.
    for proxy in ("a.default", "b.shop"):
        routes = json.dumps(mesh.envoys[proxy].config_section("RoutesConfigDump"))
        assert '"timeout": "7s"' in routes, f"{proxy} lacks the new route"
    assert received_updates(update_counters(mesh.envoys["c.scoped"])) == c_before


def test_a_rejected_change_is_reported_with_envoys_message(mesh: Mesh) -> None:
    url = mesh.istiod.http_url
    write_config(mesh.config, "ratings-by-color.yaml", BAD_VS)
    wait_event(mesh, "scoped", "ratings-by-color", "")

    code, out = istioctl(
        "x", "trace", "VirtualService/scoped/ratings-by-color", "--istiod", url, "--wait", "10s"
    )
    assert code == 3, out
    assert "Pushed to 1 proxy: ACKed by 0, NACKed by 1, pending 0" in out, out
    assert "REJECTED by 1 proxy" in out, out
    assert "c.scoped RDS" in out and "RE2 program size of 36004" in out, out

    code, out = istioctl("x", "trace", "vs/scoped/ratings-by-color", "--istiod", url, "-o", "json")
    assert code == 3, out
    report = json.loads(out)
    assert statuses(report) == {
        "a.default": "UP TO DATE",
        "b.shop": "UP TO DATE",
        "c.scoped": "NACKED",
    }
    nack = next(p["nack"] for p in report["proxies"] if p["proxy"] == "c.scoped")
    assert nack["type"] == "RDS" and BAD_REGEX in nack["message"], nack
    assert not report["live"] and report["summary"]["nacked"] == 1
    # Envoy agrees: c.scoped counted the rejection.
    counters = received_updates(update_counters(mesh.envoys["c.scoped"]))
    assert any(k.endswith("update_rejected") and v > 0 for k, v in counters.items()), counters
