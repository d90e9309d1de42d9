"""`istioctl x plan` against a real istiod and a real Envoy: the plan of a change equals what
Envoy holds once the change is applied, and planning changes nothing.

One NONE-mode sidecar (productpage) in front of reviews (two WorkloadEntries, subsets v1/v2, a
VirtualService sending everything to v1). The change file shifts half the traffic to v2 and
adds a subset v3. The plan (exit status 2) lists the new cluster and its endpoints, the route
change with its diff; Envoy's update counters do not move while planning. After the change is
written into the config directory, Envoy's own /config_dump holds exactly the planned
resources (compared as protos), and the resources that changed between Envoy's dumps before
and after are exactly those the plan named. A change that changes nothing exits 0; an invalid
one exits 1 with `istioctl validate`'s message and plans nothing. `--envoy` has real Envoy
(`--mode validate`) accept the planned result. `istioctl apply --plan` shows the plan and, with
no terminal to ask on, applies nothing unless `--yes` is given.
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
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import json_format

import pilot.xds.generators  # noqa: F401  (registers every Envoy type the resources use)

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
from .net import allocate_ip, split_host_port, wait_until
from .traffic import request

ISTIOCTL = str(Path(sys.executable).parent / "istioctl")
HOST = "reviews.default.svc.cluster.local"
V3 = f"outbound|{SERVICE_PORT}|v3|{HOST}"

# Envoy's config dump section, the entry field holding the resource, its proto, its name.
SECTIONS: dict[str, tuple[str, str, Any, str]] = {
    "CDS": ("ClustersConfigDump", "dynamic_active_clusters", cluster_pb2.Cluster, "cluster"),
    "EDS": (
        "EndpointsConfigDump",
        "dynamic_endpoint_configs",
        endpoint_pb2.ClusterLoadAssignment,
        "endpoint_config",
    ),
    "LDS": ("ListenersConfigDump", "dynamic_listeners", listener_pb2.Listener, "listener"),
    "RDS": (
        "RoutesConfigDump",
        "dynamic_route_configs",
        route_pb2.RouteConfiguration,
        "route_config",
    ),
}
PLAN_KEYS = {"CDS": "clusters", "EDS": "endpoints", "LDS": "listeners", "RDS": "routes"}


def mesh_docs(ip_v1: str, ip_v2: str) -> str:
    return join_docs(
        f"""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: reviews, namespace: default}}
        spec:
          hosts: [{HOST}]
          location: MESH_INTERNAL
          resolution: STATIC
          ports: [{{number: {SERVICE_PORT}, name: http, protocol: HTTP}}]
          workloadSelector: {{labels: {{app: reviews}}}}
        """,
        f"""
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {{name: reviews-v1, namespace: default}}
        spec: {{address: {ip_v1}, labels: {{app: reviews, version: v1}}}}
        """,
        f"""
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {{name: reviews-v2, namespace: default}}
        spec: {{address: {ip_v2}, labels: {{app: reviews, version: v2}}}}
        """,
    )


def rules(weight_v1: int, subsets: tuple[str, ...]) -> str:
    subset_docs = ", ".join(f"{{name: {s}, labels: {{version: {s}}}}}" for s in subsets)
    return join_docs(
        f"""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: reviews, namespace: default}}
        spec:
          host: {HOST}
          subsets: [{subset_docs}]
        """,
        f"""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: reviews, namespace: default}}
        spec:
          hosts: [{HOST}]
          http:
          - route:
            - {{destination: {{host: {HOST}, subset: v1}}, weight: {weight_v1}}}
            - {{destination: {{host: {HOST}, subset: v2}}, weight: {100 - weight_v1}}}
        """,
    )


@dataclass
class Mesh:
    istiod: IstiodProcess
    config: Path
    workdir: Path
    envoy: EnvoyProcess


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("plan")
    config = workdir / "config"
    config.mkdir()
    write_config(config, "mesh.yaml", mesh_docs(allocate_ip(), allocate_ip()))
    write_config(config, "rules.yaml", rules(100, ("v1", "v2")))
    started: list[Any] = []
    try:
        istiod = IstiodProcess(workdir / "istiod", config_dirs=[config]).start()
        started.append(istiod)
        opts = sidecar_options(istiod, "productpage", allocate_ip(), {"app": "productpage"}, "sotw")
        envoy = EnvoyProcess.for_proxy(opts, workdir / "productpage")
        started.append(envoy)
        envoy.start().wait_live(15.0)
        wait_synced(istiod, "productpage.default", timeout=15.0)
        yield Mesh(istiod, config, workdir, envoy)
    finally:
        for process in reversed(started):
            process.stop()


def istioctl(*argv: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [ISTIOCTL, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode, done.stdout, done.stderr


def canonical(type_name: str, value: dict[str, Any]) -> tuple[str, bytes]:
    """(name, deterministic proto bytes) of a resource in proto JSON."""
    message = SECTIONS[type_name][2]()
    body = {k: v for k, v in value.items() if k != "@type"}
    json_format.ParseDict(body, message)
    name = message.cluster_name if type_name == "EDS" else message.name
    return name, message.SerializeToString(deterministic=True)


def envoy_state(envoy: EnvoyProcess) -> dict[str, dict[str, bytes]]:
    """What Envoy holds from xDS, per type: name → canonical bytes. Envoy's endpoint dump is
    its own view (defaults filled in, static clusters too), not the resource it received: EDS
    is reduced to the endpoint addresses of the EDS clusters (`endpoint_addresses`)."""
    out: dict[str, dict[str, bytes]] = {}
    for type_name, (section_name, entries, _, field) in SECTIONS.items():
        section = envoy.config_section(section_name)
        resources: dict[str, bytes] = {}
        for entry in section.get(entries, []):
            if type_name == "LDS":
                entry = entry.get("active_state") or {}
            if field in entry:
                name, data = canonical(type_name, entry[field])
                resources[name] = data
        out[type_name] = resources
    out["EDS"] = endpoint_addresses(out["EDS"], out["CDS"])
    return out


def endpoint_addresses(eds: dict[str, bytes], cds: dict[str, bytes]) -> dict[str, bytes]:
    """Per EDS cluster of `cds`: its endpoints' socket addresses, sorted, as bytes."""
    services = set()
    for data in cds.values():
        cluster = cluster_pb2.Cluster.FromString(data)
        if cluster.type == cluster_pb2.Cluster.EDS:
            services.add(cluster.eds_cluster_config.service_name or cluster.name)
    out: dict[str, bytes] = {}
    for name, data in eds.items():
        if name not in services:
            continue
        assignment = endpoint_pb2.ClusterLoadAssignment.FromString(data)
        addresses = sorted(
            f"{e.endpoint.address.socket_address.address}:"
            f"{e.endpoint.address.socket_address.port_value}"
            for group in assignment.endpoints
            for e in group.lb_endpoints
        )
        out[name] = ",".join(addresses).encode()
    return out


def changed_names(before: dict[str, bytes], after: dict[str, bytes]) -> dict[str, list[str]]:
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(n for n in set(before) & set(after) if before[n] != after[n]),
    }


def test_plan_matches_what_envoy_receives(mesh: Mesh) -> None:
    url = mesh.istiod.http_url
    change = mesh.workdir / "change.yaml"
    change.write_text(rules(50, ("v1", "v2", "v3")))
    before = envoy_state(mesh.envoy)
    counters = received_updates(update_counters(mesh.envoy))

    code, out, err = istioctl("x", "plan", "-f", str(change), "--istiod", url, "-o", "json")
    assert code == 2, out + err
    plan = json.loads(out)
    (cls,) = plan["classes"]
    assert cls["proxies"] == ["productpage.default"] and cls["changed"]
    types = {t["type"]: t for t in cls["types"]}
    assert types["CDS"]["added"] == [V3] and types["EDS"]["added"] == [V3]
    assert types["RDS"]["changed"] == [str(SERVICE_PORT)]
    assert not cls["endpointOnly"]
    # Planning pushed nothing.
    assert received_updates(update_counters(mesh.envoy)) == counters

    code, text, err = istioctl("x", "plan", "-f", str(change), "--istiod", url, "--envoy")
    assert code == 2, text + err
    assert "envoy: accepts the resulting configuration" in text, text
    assert f"+ {V3}" in text and f"~ {SERVICE_PORT}" in text and "push: full" in text, text
    assert '+                  "weight": 50' in text and "IST0173" in text, text

    # The resources Envoy would hold after the change (asked as --envoy does).
    resources = istiod_plan_resources(mesh, change)

    write_config(mesh.config, "rules.yaml", change.read_text())
    wait_until(
        lambda: V3 in envoy_state(mesh.envoy)["EDS"],
        15.0,
        0.1,
        "Envoy to receive the new subset's endpoints",
    )
    wait_synced(mesh.istiod, "productpage.default", timeout=15.0)
    after = envoy_state(mesh.envoy)
    for type_name, key in PLAN_KEYS.items():
        planned = dict(canonical(type_name, r) for r in resources[key])
        if type_name == "EDS":
            # Exactly what istiod now sends (its config dump), and Envoy's endpoints.
            assert istiod_endpoints(mesh) == planned
            planned = endpoint_addresses(planned, after["CDS"])
        assert after[type_name] == planned, f"{type_name}: Envoy ≠ plan"
        names = changed_names(before[type_name], after[type_name])
        wanted = {k: sorted(types[type_name][k]) for k in ("added", "removed", "changed")}
        assert names == wanted, type_name

    # Applied now: planning it again changes nothing (exit 0).
    code, out, err = istioctl("x", "plan", "-f", str(change), "--istiod", url)
    assert code == 0, out + err
    assert "No proxy's configuration would change." in out


def istiod_endpoints(mesh: Mesh) -> dict[str, bytes]:
    dump = mesh.istiod.get_json("/debug/config_dump?proxyID=productpage.default&types=EDS")
    (section,) = [c for c in dump["configs"] if c["@type"].endswith("EndpointsConfigDump")]
    entries = section.get("dynamicEndpointConfigs", [])
    return dict(canonical("EDS", e["endpointConfig"]) for e in entries)


def istiod_plan_resources(mesh: Mesh, change: Path) -> dict[str, Any]:
    host, port = split_host_port(mesh.istiod.address("http"))
    response = request(
        host, port, "POST", "/debug/plan?resources=true", body=change.read_bytes(), timeout=30.0
    )
    assert response.status == 200, response.body
    (cls,) = response.json()["classes"]
    resources: dict[str, Any] = cls["resources"]
    return resources


def test_invalid_change_is_refused(mesh: Mesh) -> None:
    change = mesh.workdir / "bad.yaml"
    change.write_text(rules(50, ("v1", "v2")).replace("weight: 50", "weight: -1", 1))
    code, out, err = istioctl("x", "plan", "-f", str(change), "--istiod", mesh.istiod.http_url)
    assert code == 1 and not out, out
    assert "VirtualService/default/reviews" in err, err


def test_apply_with_plan_asks_first(mesh: Mesh) -> None:
    url = mesh.istiod.http_url
    change = mesh.workdir / "rules.yaml"
    change.write_text(rules(20, ("v1", "v2", "v3")))
    stored = mesh.config / "rules.yaml"
    before = stored.read_text()
    args = ("apply", "-f", str(change), "--config-dir", str(mesh.config), "--istiod", url)

    # No terminal to ask on, no --yes: the plan is shown, nothing is written.
    code, out, err = istioctl(*args, "--plan", "--brief")
    assert code == 1, out + err
    assert f"~ {SERVICE_PORT}" in out and "--yes" in err and "Nothing applied" in err
    assert stored.read_text() == before

    # The contract's form: no --config-dir, istiod says where it reads its config from.
    code, out, err = istioctl("apply", "-f", str(change), "--istiod", url, "--plan", "--yes")
    assert code == 0, out + err
    assert stored.read_text() == change.read_text()
    assert f"applied to {stored.resolve()}" in out, out
    wait_until(
        lambda: weights(mesh.envoy) == [20, 80],
        15.0,
        0.1,
        "Envoy to receive the 20/80 split",
    )


def weights(envoy: EnvoyProcess) -> list[int]:
    section = envoy.config_section("RoutesConfigDump")
    for entry in section.get("dynamic_route_configs", []):
        for vhost in entry["route_config"].get("virtual_hosts", []):
            if HOST in vhost.get("domains", []):
                clusters = vhost["routes"][0]["route"]["weighted_clusters"]["clusters"]
                return [int(c.get("weight", 0)) for c in clusters]
    return []
