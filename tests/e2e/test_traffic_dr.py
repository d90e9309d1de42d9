"""DestinationRule traffic policies through real Envoy: one istiod and one client sidecar (NONE
mode, placed in us-east/zone-a by its topology labels) shared by the module; every test uses
its own service, backends and DestinationRule, so the tests stay independent.

- ROUND_ROBIN spreads requests evenly over three backends;
- consistent hashing pins a key to one backend: a header (RING_HASH), a query parameter
  (MAGLEV), and a cookie Envoy itself sets on the first response (`httpCookie` with a ttl);
- outlier detection ejects the backend answering 503 after `consecutive5xxErrors`;
- connectionPool limits: with maxConnections 1 and http1MaxPendingRequests 1, a third
  concurrent request overflows (503, `x-envoy-overloaded`, upstream_rq_pending_overflow);
- locality: priority failover from the local zone to another region once the local backend
  is ejected, and `distribute` weights between zones.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from istioctl.bootstrap import BootstrapOptions

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import SERVICE_PORT, join_docs, proxy_key, sample, wait_synced, write_config
from .net import allocate_ip, wait_until
from .traffic import BACKEND_HEADER, request, request_on

NS = "default"
CLIENT_LABELS = {
    "app": "client",
    "topology.kubernetes.io/region": "us-east",
    "topology.kubernetes.io/zone": "zone-a",
}
# service → [(backend name, locality)]
SERVICES = {
    "rr": [("rr-1", ""), ("rr-2", ""), ("rr-3", "")],
    "hash": [("hash-1", ""), ("hash-2", ""), ("hash-3", "")],
    "maglev": [("maglev-1", ""), ("maglev-2", ""), ("maglev-3", "")],
    "cookie": [("cookie-1", ""), ("cookie-2", ""), ("cookie-3", "")],
    "flaky": [("flaky-good", ""), ("flaky-bad", "")],
    "geo": [("geo-local", "us-east/zone-a"), ("geo-remote", "us-west/zone-b")],
    "split": [("split-a", "us-east/zone-a"), ("split-b", "us-east/zone-b")],
}
_EJECT = {"interval": "1s", "baseEjectionTime": "60s", "maxEjectionPercent": 100}
POLICIES: dict[str, dict[str, Any]] = {
    "rr": {"loadBalancer": {"simple": "ROUND_ROBIN"}},
    "hash": {
        "loadBalancer": {
            "consistentHash": {"httpHeaderName": "x-user", "ringHash": {"minimumRingSize": 1024}}
        }
    },
    "maglev": {
        "loadBalancer": {
            "consistentHash": {"httpQueryParameterName": "user", "maglev": {"tableSize": 1031}}
        }
    },
    "cookie": {
        "loadBalancer": {"consistentHash": {"httpCookie": {"name": "session", "ttl": "60s"}}}
    },
    "flaky": {"outlierDetection": {"consecutive5xxErrors": 3, **_EJECT}},
    "gated": {
        "connectionPool": {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}
    },
    "geo": {
        "outlierDetection": {"consecutive5xxErrors": 2, **_EJECT},
        "loadBalancer": {"localityLbSetting": {"failover": [{"from": "us-east", "to": "us-west"}]}},
    },
    "split": {
        "loadBalancer": {
            "localityLbSetting": {
                "distribute": [
                    {
                        "from": "us-east/zone-a/*",
                        "to": {"us-east/zone-a/*": 80, "us-east/zone-b/*": 20},
                    }
                ]
            }
        }
    },
}


class GateBackend:
    """An HTTP backend that holds every request until `release()` (bounded by `hold` s)."""

    def __init__(self, name: str, ip: str, hold: float = 10.0) -> None:
        self.name, self.ip, self.hold = name, ip, hold
        self.gate = threading.Event()
        self._lock = threading.Lock()
        self.waiting = 0
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                with backend._lock:
                    backend.waiting += 1
                backend.gate.wait(backend.hold)
                self.send_response(200)
                self.send_header(BACKEND_HEADER, backend.name)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((ip, 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def release(self) -> None:
        self.gate.set()

    def stop(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Mesh:
    istiod: IstiodProcess
    client: EnvoyProcess
    ip: str
    backends: dict[str, Backend]
    gate: GateBackend

    def host(self, service: str) -> str:
        return f"{service}.{NS}.svc.cluster.local"

    def send(self, service: str, n: int, path: str = "/", **headers: str) -> Counter[str]:
        return sample(self.ip, SERVICE_PORT, n, host=self.host(service), path=path, headers=headers)

    def cluster_stat(self, service: str, stat: str) -> int:
        name = f"cluster.outbound|{SERVICE_PORT}||{self.host(service)};.{stat}"
        return self.client.stats(filter=f"^{name.replace('|', '[|]')}$").get(name, 0)


def _service_entry(service: str, endpoints: list[tuple[str, int, str]]) -> str:
    entries = []
    for ip, port, locality in endpoints:
        entry: dict[str, Any] = {"address": ip, "ports": {"http": port}}
        if locality:
            entry["locality"] = locality
        entries.append(entry)
    return _doc(
        "ServiceEntry",
        service,
        {
            "hosts": [f"{service}.{NS}.svc.cluster.local"],
            "location": "MESH_INTERNAL",
            "resolution": "STATIC",
            "ports": [{"number": SERVICE_PORT, "name": "http", "protocol": "HTTP"}],
            "endpoints": entries,
        },
    )


def _destination_rule(service: str) -> str:
    spec = {"host": f"{service}.{NS}.svc.cluster.local", "trafficPolicy": POLICIES[service]}
    return _doc("DestinationRule", service, spec)


def _doc(kind: str, name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
    )


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("traffic-dr")
    backends: dict[str, Backend] = {}
    gate = GateBackend("gated-1", allocate_ip())
    istiod: IstiodProcess | None = None
    client: EnvoyProcess | None = None
    try:
        docs = []
        for service, members in SERVICES.items():
            endpoints = []
            for name, locality in members:
                backends[name] = Backend(name, allocate_ip()).start()
                endpoints.append((backends[name].ip, backends[name].port, locality))
            docs += [_service_entry(service, endpoints), _destination_rule(service)]
        docs += [_service_entry("gated", [(gate.ip, gate.port, "")]), _destination_rule("gated")]
        backends["flaky-bad"].status = 503
        config = root / "config"
        config.mkdir()
        write_config(config, "services.yaml", join_docs(*docs))
        istiod = IstiodProcess(root / "istiod", config_dirs=[config]).start()
        ip = allocate_ip()
        opts = BootstrapOptions(
            name="client",
            namespace=NS,
            proxy_type="sidecar",
            ip=ip,
            labels=CLIENT_LABELS,
            interception_mode="NONE",
            insecure=True,
            istiod=istiod.grpc_addr,
        )
        client = EnvoyProcess.for_proxy(opts, root / "client").start()
        client.wait_live(15.0)
        wait_synced(istiod, proxy_key(opts), timeout=15.0)
        yield Mesh(istiod, client, ip, backends, gate)
    finally:
        if client is not None:
            client.stop()
        if istiod is not None:
            istiod.stop()
        gate.stop()
        for backend in backends.values():
            backend.stop()


def test_round_robin_spreads_evenly(mesh: Mesh) -> None:
    counts = mesh.send("rr", 300)
    assert set(counts) == {"rr-1", "rr-2", "rr-3"}, counts
    assert all(95 <= counts[name] <= 105 for name in counts), counts


def test_header_hash_pins_each_user_to_one_backend(mesh: Mesh) -> None:
    chosen = {}
    for i in range(12):
        counts = mesh.send("hash", 50, **{"x-user": f"user-{i}"})
        assert len(counts) == 1 and sum(counts.values()) == 50, (i, counts)
        chosen[i] = next(iter(counts))
    assert len(set(chosen.values())) >= 2, chosen  # the key decides, not one fixed host
    again = mesh.send("hash", 20, **{"x-user": "user-0"})
    assert again == {chosen[0]: 20}


def test_maglev_query_parameter_hash_pins(mesh: Mesh) -> None:
    chosen = set()
    for i in range(12):
        counts = mesh.send("maglev", 30, path=f"/items?user=u{i}&page={i}")
        assert len(counts) == 1 and sum(counts.values()) == 30, (i, counts)
        chosen |= set(counts)
    assert len(chosen) >= 2, chosen


def test_cookie_hash_envoy_sets_the_cookie_and_then_pins(mesh: Mesh) -> None:
    chosen = set()
    for i in range(12):
        first = request(mesh.ip, SERVICE_PORT, host=mesh.host("cookie"))
        assert first.status == 200, first
        cookie = first.headers.get("set-cookie", "")
        assert cookie.startswith("session=") and "Max-Age=60" in cookie, cookie
        value = cookie.split(";", 1)[0]
        counts = mesh.send("cookie", 30, cookie=value)
        assert counts == {first.headers[BACKEND_HEADER]: 30}, (i, value, counts)
        chosen |= set(counts)
    assert len(chosen) >= 2, chosen


def test_outlier_detection_ejects_the_failing_backend(mesh: Mesh) -> None:
    bad = mesh.backends["flaky-bad"]
    first = mesh.send("flaky", 30)
    assert set(first) <= {"flaky-good", "<503>"}, first
    assert 1 <= first["<503>"] <= 6, first  # ejected after 3 consecutive 5xx
    wait_until(
        lambda: mesh.cluster_stat("flaky", "outlier_detection.ejections_enforced_consecutive_5xx"),
        5.0,
        message="the 503 backend ejected",
    )
    seen_by_bad = bad.request_count
    after = mesh.send("flaky", 50)
    assert after == {"flaky-good": 50}, after
    assert bad.request_count == seen_by_bad


def _get_in_thread(mesh: Mesh, results: list[int]) -> threading.Thread:
    def run() -> None:
        conn = http.client.HTTPConnection(mesh.ip, SERVICE_PORT, timeout=15.0)
        try:
            results.append(request_on(conn, "GET", "/", host=mesh.host("gated")).status)
        finally:
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_connection_pool_overflow_is_rejected_by_envoy(mesh: Mesh) -> None:
    results: list[int] = []
    first = _get_in_thread(mesh, results)  # holds the cluster's only connection
    wait_until(lambda: mesh.gate.waiting == 1, 5.0, message="first request at the backend")
    second = _get_in_thread(mesh, results)  # queued: the one pending request allowed
    wait_until(
        lambda: mesh.cluster_stat("gated", "upstream_rq_pending_active") == 1,
        5.0,
        message="second request pending in Envoy",
    )
    third = request(mesh.ip, SERVICE_PORT, host=mesh.host("gated"))
    assert third.status == 503, third
    assert third.headers.get("x-envoy-overloaded") == "true", third.headers
    assert mesh.cluster_stat("gated", "upstream_rq_pending_overflow") == 1
    assert mesh.cluster_stat("gated", "upstream_cx_total") == 1
    mesh.gate.release()
    for thread in (first, second):
        thread.join(10.0)
        assert not thread.is_alive()
    assert sorted(results) == [200, 200], results
    assert mesh.gate.waiting == 2  # the overflowing request never reached the backend


def test_locality_failover_to_the_other_region(mesh: Mesh) -> None:
    local = mesh.backends["geo-local"]
    assert mesh.send("geo", 50) == {"geo-local": 50}  # priority 0: same zone
    local.status = 503
    mesh.send("geo", 5)  # ≥ 2 consecutive 503s → ejected
    wait_until(
        lambda: mesh.cluster_stat("geo", "outlier_detection.ejections_enforced_consecutive_5xx"),
        5.0,
        message="the local backend ejected",
    )
    assert mesh.send("geo", 50) == {"geo-remote": 50}


def test_locality_distribute_weights(mesh: Mesh) -> None:
    counts = mesh.send("split", 1000)
    assert set(counts) == {"split-a", "split-b"}, counts
    assert 750 <= counts["split-a"] <= 850, counts


def test_envoy_holds_the_policies_istiod_generated(mesh: Mesh) -> None:
    clusters = {
        entry["cluster"]["name"]: entry["cluster"]
        for entry in mesh.client.config_section("ClustersConfigDump").get(
            "dynamic_active_clusters", []
        )
    }

    def cluster(service: str) -> dict[str, Any]:
        return clusters[f"outbound|{SERVICE_PORT}||{mesh.host(service)}"]

    assert cluster("hash")["lb_policy"] == "RING_HASH"
    assert cluster("maglev")["lb_policy"] == "MAGLEV"
    assert cluster("flaky")["outlier_detection"]["consecutive_5xx"] == 3
    assert cluster("gated")["circuit_breakers"]["thresholds"][0]["max_connections"] == 1
    assert "locality_weighted_lb_config" in cluster("split")["common_lb_config"]
