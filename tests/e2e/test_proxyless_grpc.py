"""(E) Proxyless gRPC: grpcio's own xDS client gets its listener, routes, clusters and
endpoints from istiod and follows weighted routing.

Two grpc.aio echo servers (each on its own loopback IP) are the WorkloadEntries v1 and v2 of
the Kubernetes Service `echo` (port 7070, `grpc`). A client process whose GRPC_XDS_BOOTSTRAP
points at istiod's plaintext xDS port, with node metadata `GENERATOR: grpc` (as pilot-agent's
gRPC bootstrap says), dials `xds:///echo.default.svc.cluster.local:7070`; no Envoy anywhere.
One istiod, the servers and one long-lived client are shared by the module; each test leaves
the routing as it found it (80/20, plus a header match to v2).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .grpc_echo import EchoServer, XdsClient, write_bootstrap
from .istiod import IstiodProcess
from .mesh import join_docs, syncz_entry, wait_synced, write_config
from .net import allocate_ip, wait_until

PORT = 7070
HOST = "echo.default.svc.cluster.local"
TARGET = f"xds:///{HOST}:{PORT}"
CLIENT = "grpc-client.default"
SUBSETS = {"v1": "outbound|7070|v1|" + HOST, "v2": "outbound|7070|v2|" + HOST}
DELAY = 0.25


def routing(weights: dict[str, int]) -> str:
    routes = "".join(
        f"""
            - destination: {{host: echo, subset: {subset}}}
              weight: {weight}"""
        for subset, weight in weights.items()
    )
    return f"""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: echo, namespace: default}}
        spec:
          hosts: [echo]
          http:
          - name: abort
            match:
            - headers:
                x-fault: {{exact: abort}}
            fault:
              abort:
                httpStatus: 503
                percentage: {{value: 100}}
            route:
            - destination: {{host: echo, subset: v1}}
          - name: delay
            match:
            - headers:
                x-fault: {{exact: delay}}
            fault:
              delay:
                fixedDelay: {DELAY}s
                percentage: {{value: 100}}
            route:
            - destination: {{host: echo, subset: v1}}
          - name: canary
            match:
            - headers:
                x-canary: {{exact: "true"}}
            route:
            - destination: {{host: echo, subset: v2}}
          - name: split
            route:{routes}
        """


def service(servers: dict[str, EchoServer]) -> str:
    docs = [
        f"""
        apiVersion: v1
        kind: Service
        metadata: {{name: echo, namespace: default}}
        spec:
          selector: {{app: echo}}
          ports:
          - {{name: grpc, port: {PORT}, targetPort: {PORT}}}
        """,
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: echo, namespace: default}
        spec:
          host: echo
          subsets:
          - {name: v1, labels: {version: v1}}
          - {name: v2, labels: {version: v2}}
        """,
    ]
    for version, server in sorted(servers.items()):
        docs.append(
            f"""
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata: {{name: echo-{version}, namespace: default}}
            spec:
              address: {server.ip}
              labels: {{app: echo, version: {version}}}
              ports: {{grpc: {server.port}}}
            """
        )
    return join_docs(*docs)


@dataclass
class Mesh:
    istiod: IstiodProcess
    config: Path
    servers: dict[str, EchoServer]
    client: XdsClient

    def route(self, weights: dict[str, int]) -> None:
        write_config(self.config, "routing.yaml", routing(weights))

    def sample(self, count: int, **metadata: str) -> dict[str, int]:
        """`count` calls through the client; every one must succeed."""
        result = self.client.run(count, **metadata)
        assert not result["errors"], result
        counts: dict[str, int] = result["counts"]
        assert sum(counts.values()) == count, result
        return counts

    def wait_counts(self, expected: dict[str, int], **metadata: str) -> None:
        """Until a batch of calls lands exactly as `expected` (the push reached the client)."""
        total = sum(expected.values())
        wait_until(
            lambda: self.client.run(total, **metadata)["counts"] == expected,
            15.0,
            0.05,
            f"{total} calls landing as {expected}",
        )


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("proxyless-grpc")
    started: list[Any] = []
    try:
        servers = {v: EchoServer(f"echo-{v}", allocate_ip(), workdir) for v in ("v1", "v2")}
        started.extend(servers.values())
        config = workdir / "config"
        config.mkdir()
        write_config(config, "echo.yaml", service(servers))
        write_config(config, "routing.yaml", routing({"v1": 80, "v2": 20}))
        istiod = IstiodProcess(workdir / "istiod", config_dirs=[config]).start()
        started.append(istiod)
        client_ip = allocate_ip()
        bootstrap = write_bootstrap(
            workdir / "grpc-bootstrap.json",
            istiod.grpc_addr,
            f"sidecar~{client_ip}~{CLIENT}~default.svc.cluster.local",
            {
                "GENERATOR": "grpc",
                "NAMESPACE": "default",
                "INSTANCE_IPS": client_ip,
                "LABELS": {"app": "grpc-client"},
            },
        )
        client = XdsClient(TARGET, bootstrap, workdir)
        started.append(client)
        yield Mesh(istiod, config, servers, client)
    finally:
        for process in reversed(started):
            process.stop()


def test_weighted_split_80_20(mesh: Mesh) -> None:
    result = mesh.client.run(400)
    assert not result["errors"], result
    counts = result["counts"]
    assert set(counts) == {"echo-v1", "echo-v2"}, result
    assert sum(counts.values()) == 400
    # 80 % of 400 = 320 with a standard deviation of 8: five of them either way.
    assert 280 <= counts["echo-v1"] <= 360, counts


def test_header_match_routes_to_v2(mesh: Mesh) -> None:
    assert mesh.sample(50, **{"x-canary": "true"}) == {"echo-v2": 50}
    assert mesh.sample(50, **{"x-canary": "false"}).keys() <= {"echo-v1", "echo-v2"}


def test_fault_injection_reaches_the_grpc_client(mesh: Mesh) -> None:
    """The fault filter Istio gives gRPC clients acts on the routes' fault policies: an
    HTTP 503 abort is the gRPC status UNAVAILABLE, and a fixed delay holds each call."""
    aborted = mesh.client.run(20, **{"x-fault": "abort"})
    assert aborted["counts"] == {}, aborted
    assert sum(aborted["errors"].values()) == 20, aborted
    # gRPC's fault filter fails the call itself ("UNAVAILABLE: Fault injected").
    assert all(e.startswith("UNAVAILABLE") and "fault" in e.lower() for e in aborted["errors"])
    delayed = mesh.client.run(4, **{"x-fault": "delay"})
    assert delayed["counts"] == {"echo-v1": 4} and not delayed["errors"], delayed
    assert 4 * DELAY <= delayed["seconds"] < 4 * DELAY + 2.0, delayed
    fast = mesh.client.run(4)
    assert fast["seconds"] < 4 * DELAY, fast


def test_route_changes_are_followed(mesh: Mesh) -> None:
    try:
        mesh.route({"v1": 100, "v2": 0})
        mesh.wait_counts({"echo-v1": 50})
        assert mesh.sample(200) == {"echo-v1": 200}
        mesh.route({"v1": 0, "v2": 100})
        mesh.wait_counts({"echo-v2": 50})
        assert mesh.sample(200) == {"echo-v2": 200}
        # The header route is untouched by the weight changes.
        assert mesh.sample(20, **{"x-canary": "true"}) == {"echo-v2": 20}
    finally:
        mesh.route({"v1": 80, "v2": 20})
        wait_until(
            lambda: set(mesh.client.run(100)["counts"]) == {"echo-v1", "echo-v2"},
            15.0,
            0.05,
            "the 80/20 split back",
        )


def test_grpc_node_gets_api_listeners_and_only_what_it_asked_for(mesh: Mesh) -> None:
    """Node metadata GENERATOR: grpc picks the gRPC generators: the listener is an ApiListener
    named as dialed, and the client holds exactly the clusters its routes name."""
    mesh.sample(10)
    entry = wait_synced(mesh.istiod, CLIENT)
    assert all(not r["lastError"] for r in entry["resources"].values()), entry  # no NACK
    dump = mesh.istiod.get_json(f"/debug/config_dump?proxyID={CLIENT}")
    listeners = clusters = routes = []
    for section in dump["configs"]:
        kind = section["@type"].rsplit(".", 1)[-1]
        if kind == "ListenersConfigDump":
            listeners = section.get("dynamicListeners", [])
        elif kind == "ClustersConfigDump":
            clusters = [c["cluster"] for c in section.get("dynamicActiveClusters", [])]
        elif kind == "RoutesConfigDump":
            routes = [r["routeConfig"] for r in section.get("dynamicRouteConfigs", [])]
    assert [lst["name"] for lst in listeners] == [f"{HOST}:{PORT}"], listeners
    adsz = mesh.istiod.get_json(f"/debug/adsz?proxyID={CLIENT}")
    (client,) = [c for c in adsz["clients"] if c["metadata"].get("GENERATOR") == "grpc"]
    watches = client["watches"]
    assert sorted(watches[k] for k in watches if k.endswith("Listener")) == [[f"{HOST}:{PORT}"]]
    assert sorted(c["name"] for c in clusters) == sorted(SUBSETS.values()), clusters
    assert [r["name"] for r in routes] == [f"outbound|{PORT}||{HOST}"], routes
    assert syncz_entry(mesh.istiod, CLIENT) is not None
