"""istiod's history of what each proxy was sent, against a real istiod and two real Envoys
(a.default on SotW, b.default on Delta), read with the real `istioctl` console script.

A sequence of changes through the config dir (a DestinationRule gains subset v2, then the
VirtualService's weights move 100/0 → 80/20 → 50/50). After each step, once both proxies have
ACKed it, the test keeps istiod's live `/debug/config_dump?proxyID=` and what
`istioctl proxy-config all PROXY -o json` printed, with the time and the push version
`istioctl x history` lists. Then:
- `proxy-config all --at VERSION` and `--at TIME` reproduce each earlier step exactly (every
  dynamic resource, version and body; only `lastUpdated` stamps differ), and the raw
  `/debug/history?…&dump` answer has the live dump's very shape;
- `x diff --from A --to B` names exactly the resources that differ between the live dumps of
  the two steps (computed here independently), exit 1, and exit 0 when nothing changed;
- with a small PILOT_HISTORY_MAX_BYTES, twelve more changes evict the oldest snapshots while
  `/debug/history` reports bytes within the budget, the latest still reproducing the live dump;
- a stopped Envoy's history stays readable.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import SERVICE_PORT, join_docs, sidecar_options, wait_synced, write_config
from .net import allocate_ip, wait_until

ISTIOCTL = str(Path(sys.executable).parent / "istioctl")
PROXIES = (("a", "sotw"), ("b", "delta"))
BUDGET = 32 << 10  # the four steps fit; the twelve changes of the last test do not
HOST = "reviews.default.svc.cluster.local"
SECTIONS = {  # config dump section → (list of dynamic entries, path to the resource)
    "ClustersConfigDump": ("dynamicActiveClusters", ("cluster",)),
    "EndpointsConfigDump": ("dynamicEndpointConfigs", ("endpointConfig",)),
    "ListenersConfigDump": ("dynamicListeners", ("activeState", "listener")),
    "RoutesConfigDump": ("dynamicRouteConfigs", ("routeConfig",)),
    "SecretsConfigDump": ("dynamicActiveSecrets", ("secret",)),
}


def mesh_yaml(ips: dict[str, str]) -> str:
    docs = [
        f"""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: reviews, namespace: default}}
        spec:
          hosts: [{HOST}]
          location: MESH_INTERNAL
          resolution: STATIC
          ports: [{{number: {SERVICE_PORT}, name: http, protocol: HTTP}}]
          endpoints:
          - {{address: {allocate_ip()}, labels: {{version: v1}}}}
          - {{address: {allocate_ip()}, labels: {{version: v2}}}}
        """
    ]
    for app, ip in ips.items():
        docs.append(
            f"""
            apiVersion: networking.istio.io/v1
            kind: Sidecar
            metadata: {{name: {app}, namespace: default}}
            spec:
              workloadSelector: {{labels: {{app: {app}}}}}
              egress:
              - port: {{number: {SERVICE_PORT}, protocol: HTTP, name: http}}
                bind: {ip}
                hosts: ["./*"]
            """
        )
    return join_docs(*docs)


def destination_rule(*subsets: str) -> str:
    entries = ", ".join(f"{{name: {s}, labels: {{version: {s}}}}}" for s in subsets)
    return f"""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: reviews, namespace: default}}
        spec:
          host: {HOST}
          subsets: [{entries}]
        """


def virtual_service(v1: int, v2: int, timeout: str = "5s") -> str:
    routes = [f"{{destination: {{host: {HOST}, subset: v1}}, weight: {v1}}}"]
    if v2:
        routes.append(f"{{destination: {{host: {HOST}, subset: v2}}, weight: {v2}}}")
    return f"""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: reviews, namespace: default}}
        spec:
          hosts: [{HOST}]
          http:
          - timeout: {timeout}
            route: [{", ".join(routes)}]
        """


@dataclass
class Step:
    at: float  # time.time() once both proxies ACKed it
    versions: dict[str, str]  # proxy → push version of its latest snapshot
    live: dict[str, Any]  # proxy → istiod's /debug/config_dump?proxyID=&include_eds
    printed: dict[str, Any]  # proxy → `istioctl proxy-config all PROXY -o json`


@dataclass
class Mesh:
    istiod: IstiodProcess
    config: Path
    envoys: dict[str, EnvoyProcess]
    steps: list[Step] = field(default_factory=list)


def istioctl(*argv: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [ISTIOCTL, *argv], capture_output=True, text=True, timeout=30, check=False
    )
    return done.returncode, done.stdout, done.stderr


def live_dump(istiod: IstiodProcess, proxy: str) -> Any:
    return istiod.get_json(f"/debug/config_dump?proxyID={proxy}&include_eds=true")


def timeline(istiod: IstiodProcess, proxy: str) -> Any:
    return istiod.get_json(f"/debug/history?proxyID={proxy}")


def resources(dump: Any) -> dict[str, dict[str, Any]]:
    """Section → resource name → its dynamic entry without `lastUpdated` (istiod stamps the
    live dump with the time of the request), in either proto-JSON spelling (istiod answers
    lowerCamel, `istioctl -o json` prints Envoy's snake_case)."""
    out: dict[str, dict[str, Any]] = {}
    for section in _camel(dump)["configs"]:
        kind = section["@type"].rsplit(".", 1)[-1]
        if kind not in SECTIONS:
            continue
        entries, path = SECTIONS[kind]
        for entry in section.get(entries, []):
            value = entry
            for part in path:
                value = value[part]
            name = value.get("name") or value.get("clusterName")
            out.setdefault(kind, {})[name] = _strip(entry)
    return out


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel_key(k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "lastUpdated"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def record_step(mesh: Mesh, before: Step | None) -> Step:
    """Wait until both proxies hold a new configuration and ACKed it; keep what they have."""
    live: dict[str, Any] = {}
    for app, _ in PROXIES:
        proxy = f"{app}.default"
        if before is not None:
            wait_until(
                lambda p=proxy: resources(live_dump(mesh.istiod, p)) != resources(before.live[p]),
                10.0,
                0.05,
                f"istiod to have new config for {proxy}",
            )
        wait_synced(mesh.istiod, proxy)
        live[proxy] = live_dump(mesh.istiod, proxy)
    step = Step(datetime.datetime.now(datetime.UTC).timestamp(), {}, live, {})
    for proxy in live:
        step.versions[proxy] = timeline(mesh.istiod, proxy)["snapshots"][-1]["version"]
        code, out, err = istioctl(
            "pc", "all", proxy, "--istiod", mesh.istiod.http_url, "-o", "json"
        )
        assert code == 0, err
        step.printed[proxy] = json.loads(out)
    mesh.steps.append(step)
    return step


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("history")
    config = workdir / "config"
    config.mkdir()
    ips = {app: allocate_ip() for app, _ in PROXIES}
    write_config(config, "mesh.yaml", mesh_yaml(ips))
    write_config(config, "dr.yaml", destination_rule("v1"))
    write_config(config, "vs.yaml", virtual_service(100, 0))
    started: list[Any] = []
    try:
        env = {"PILOT_HISTORY_MAX_BYTES": str(BUDGET)}
        istiod = IstiodProcess(workdir / "istiod", config_dirs=[config], env=env).start()
        started.append(istiod)
        envoys = {}
        for app, api in PROXIES:
            opts = sidecar_options(istiod, app, ips[app], {"app": app}, api)  # type: ignore[arg-type]
            envoy = EnvoyProcess.for_proxy(opts, workdir / app)
            started.append(envoy)
            envoys[f"{app}.default"] = envoy.start()
        for envoy in envoys.values():
            envoy.wait_live(15.0)
        built = Mesh(istiod, config, envoys)
        step = record_step(built, None)
        for name, text in (
            ("dr.yaml", destination_rule("v1", "v2")),  # a new subset: CDS and EDS
            ("vs.yaml", virtual_service(80, 20)),  # weights: RDS
            ("vs.yaml", virtual_service(50, 50)),
        ):
            write_config(config, name, text)
            step = record_step(built, step)
        yield built
    finally:
        for process in reversed(started):
            process.stop()


def test_at_reproduces_every_earlier_step(mesh: Mesh) -> None:
    url = mesh.istiod.http_url
    assert len(mesh.steps) == 4
    for proxy in mesh.envoys:
        versions = [step.versions[proxy] for step in mesh.steps]
        assert len(set(versions)) == 4, versions  # each step is its own snapshot
        for index, step in enumerate(mesh.steps):
            moment = datetime.datetime.fromtimestamp(step.at, datetime.UTC).isoformat()
            for at in (step.versions[proxy], moment):
                code, out, err = istioctl(
                    "pc", "all", proxy, "--istiod", url, "--at", at, "-o", "json"
                )
                assert code == 0, err
                printed = resources(json.loads(out))
                assert set(printed) >= {"ClustersConfigDump", "ListenersConfigDump"}
                assert printed == resources(step.printed[proxy]), (proxy, index, at)
            raw = mesh.istiod.get_json(
                f"/debug/history?proxyID={proxy}&dump&include_eds&version={step.versions[proxy]}"
            )
            assert resources(raw) == resources(step.live[proxy]), (proxy, index)
            assert [c["@type"] for c in raw["configs"]] == [
                c["@type"] for c in step.live[proxy]["configs"]
            ]
        # The table form reads the same history (the parsers are proxy-config's own).
        code, out, err = istioctl("pc", "cluster", proxy, "--istiod", url, "--at", versions[0])
        assert code == 0, err
        assert HOST in out and "v1" in out, out
        assert "v2" not in out.split("\n", 1)[1]  # no subset v2 before the DestinationRule


def expected_diff(before: Any, after: Any) -> dict[str, dict[str, list[str]]]:
    """What changed between two live dumps, per xDS type (computed without istioctl)."""
    short = {
        "ClustersConfigDump": "CDS",
        "EndpointsConfigDump": "EDS",
        "ListenersConfigDump": "LDS",
        "RoutesConfigDump": "RDS",
        "SecretsConfigDump": "SDS",
    }
    old, new = resources(before), resources(after)
    out = {}
    for section, xds in short.items():
        a, b = old.get(section, {}), new.get(section, {})
        body = {n: _body(e) for n, e in a.items()}
        changed = sorted(n for n, e in b.items() if n in a and _body(e) != body[n])
        diff = {
            "added": sorted(set(b) - set(a)),
            "removed": sorted(set(a) - set(b)),
            "changed": changed,
        }
        if any(diff.values()):
            out[xds] = diff
    return out


def _body(entry: dict[str, Any]) -> Any:
    return {k: v for k, v in entry.items() if k not in ("versionInfo", "name")}


def test_diff_names_exactly_the_changed_resources(mesh: Mesh) -> None:
    url = mesh.istiod.http_url
    for proxy in mesh.envoys:
        for first, second in ((0, 1), (1, 2), (0, 3)):
            a, b = mesh.steps[first], mesh.steps[second]
            code, out, err = istioctl(
                "x", "diff", proxy, "--istiod", url, "--from", a.versions[proxy],
                "--to", b.versions[proxy], "-o", "json",
            )  # fmt: skip
            assert code == 1, err
            report = json.loads(out)
            got = {
                xds: {"added": d["added"], "removed": d["removed"], "changed": sorted(d["changed"])}
                for xds, d in report["types"].items()
            }
            assert got == expected_diff(a.live[proxy], b.live[proxy]), (proxy, first, second)
            assert report["from"]["version"] == a.versions[proxy]
        # The weight change (step 1 → 2) is one route config, shown as a readable diff.
        code, out, _ = istioctl(
            "x", "diff", proxy, "--istiod", url, "--from", mesh.steps[1].versions[proxy],
            "--to", mesh.steps[2].versions[proxy],
        )  # fmt: skip
        assert code == 1 and "RDS: 0 added, 0 removed, 1 changed" in out, out
        assert '-            "weight": 100' in out or '"weight": 80' in out, out
        code, out, err = istioctl(
            "x", "diff", proxy, "--istiod", url, "--from", mesh.steps[3].versions[proxy]
        )
        assert code == 0 and "No differences." in out, out + err
    code, out, _ = istioctl("x", "history", "a.default", "--istiod", url)
    assert code == 0 and "VERSION" in out and "DestinationRule/default/reviews" in out, out
    assert "VirtualService/default/reviews" in out and "CDS +1" in out, out


def test_the_budget_holds_and_a_stopped_proxys_history_stays(mesh: Mesh) -> None:
    istiod = mesh.istiod
    for i in range(12):
        write_config(mesh.config, "vs.yaml", virtual_service(50, 50, f"{10 + i}s"))
        for proxy in mesh.envoys:
            wait_until(
                lambda p=proxy, t=f"{10 + i}s": t in json.dumps(live_dump(istiod, p)),
                10.0,
                0.05,
                f"timeout {10 + i}s in {proxy}'s config",
            )
            wait_synced(istiod, proxy)
        store = istiod.get_json("/debug/history")
        assert store["maxBytes"] == BUDGET and store["bytes"] <= BUDGET, store
    assert store["evicted"] > 0, store
    a = timeline(istiod, "a.default")
    assert a["dropped"] > 0 and len(a["snapshots"]) >= 2, a
    latest = istiod.get_json("/debug/history?proxyID=a.default&dump&include_eds")
    assert resources(latest) == resources(live_dump(istiod, "a.default"))
    # A proxy that leaves keeps its history.
    code, before, err = istioctl(
        "pc", "all", "b.default", "--istiod", istiod.http_url, "-o", "json"
    )
    assert code == 0, err
    mesh.envoys["b.default"].stop()
    wait_until(
        lambda: not timeline(istiod, "b.default")["connected"], 10.0, 0.05, "b.default to leave"
    )
    code, out, err = istioctl(
        "pc", "all", "b.default", "--istiod", istiod.http_url, "--at", "now", "-o", "json"
    )
    assert code == 0, err
    assert resources(json.loads(out)) == resources(json.loads(before))
    code, out, err = istioctl("pc", "all", "b.default", "--istiod", istiod.http_url)
    assert code == 1 and "no proxy" in err  # the live view needs a connected proxy
