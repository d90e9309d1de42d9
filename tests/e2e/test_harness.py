"""Tests of the e2e harness itself, with real Envoy (static bootstraps and a minimal ADS)."""

from __future__ import annotations

import http.client
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from istioctl.bootstrap import BootstrapOptions, build_bootstrap

from .backend import Backend, TcpEcho, tcp_exchange
from .envoy import (
    EnvoyError,
    EnvoyProcess,
    static_http_bootstrap,
    static_tcp_bootstrap,
    validate_bootstrap,
)
from .istiod import IstiodError, IstiodProcess
from .net import WaitTimeout, allocate_ip, free_port, port_open, wait_until
from .traffic import LoadGenerator, count_backends, http_get, request, request_on

FAKE_ISTIOD = [sys.executable, str(Path(__file__).with_name("fake_istiod.py"))]
BackendFactory = Callable[..., Backend]
EnvoyFactory = Callable[..., EnvoyProcess]

# -- net -----------------------------------------------------------------------------------


def test_allocate_ip_distinct_loopback() -> None:
    ips = [allocate_ip() for _ in range(300)]  # crosses a /24 block boundary
    assert len(set(ips)) == 300
    assert all(ip.startswith("127.") for ip in ips)


def test_wait_until() -> None:
    values = iter([0, None, "", 7])
    assert wait_until(lambda: next(values), timeout=2.0, interval=0.001) == 7
    with pytest.raises(WaitTimeout, match=r"the answer.*last: ValueError: invalid literal"):
        wait_until(lambda: int("nope"), timeout=0.1, interval=0.01, message="the answer")
    with pytest.raises(WaitTimeout, match=r"last: 0"):
        wait_until(lambda: 0, timeout=0.05, interval=0.01)


def test_free_port_is_bindable(loopback_ip: str) -> None:
    port = free_port(loopback_ip)
    with Backend("b", loopback_ip, port) as backend:
        assert backend.port == port
        assert port_open(loopback_ip, port)


# -- backends ------------------------------------------------------------------------------


def test_backend_echoes_request(backend_factory: BackendFactory) -> None:
    backend = backend_factory("b1")
    status, body, headers = http_get(
        backend.ip, backend.port, "/x?y=1", host="reviews:9080", headers={"x-test": "1"}
    )
    assert status == 200
    assert headers["x-backend"] == "b1"
    assert body["name"] == "b1"
    assert body["path"] == "/x?y=1"
    assert body["method"] == "GET"
    assert body["host"] == "reviews:9080"
    assert body["headers"]["x-test"] == "1"
    resp = request(backend.ip, backend.port, "POST", "/p", body=b"hello")
    assert resp.json()["method"] == "POST"
    assert backend.request_count == 2
    assert backend.requests[-1].body == b"hello"
    backend.status = 503
    assert http_get(backend.ip, backend.port)[0] == 503


def test_backend_stop_cuts_keepalive(loopback_ip: str) -> None:
    backend = Backend("b", loopback_ip).start()
    port = backend.port
    conn = http.client.HTTPConnection(backend.ip, port, timeout=2.0)
    conn.request("GET", "/")
    assert conn.getresponse().read()
    backend.stop()
    with pytest.raises((OSError, http.client.HTTPException)):
        request_on(conn, "GET", "/")
    conn.close()
    assert not port_open(loopback_ip, port)


def test_tcp_echo(tcp_echo_factory: Callable[..., TcpEcho]) -> None:
    echo = tcp_echo_factory("t1")
    assert tcp_exchange(echo.ip, echo.port, b"abc\n") == "t1"
    assert echo.connection_count == 1


# -- Envoy with static bootstraps ----------------------------------------------------------


def test_envoy_static_http(
    envoy_factory: EnvoyFactory, backend_factory: BackendFactory, loopback_ip: str
) -> None:
    b1, b2 = backend_factory("b1"), backend_factory("b2")
    port = free_port(loopback_ip)
    envoy = envoy_factory(static_http_bootstrap((loopback_ip, port), [b1.address, b2.address]))
    assert envoy.state() == "LIVE"

    status, body, headers = http_get(loopback_ip, port, "/hello", host="example.com")
    assert status == 200
    assert body["path"] == "/hello"
    assert body["host"] == "example.com"
    assert headers["x-backend"] in ("b1", "b2")

    counts = count_backends(loopback_ip, port, 20)
    assert sum(counts.values()) == 20
    assert set(counts) == {"b1", "b2"}, counts

    assert "backend" in envoy.cluster_names()
    assert f"{loopback_ip}_{port}" in envoy.listener_names()
    stats = envoy.stats()
    assert stats["cluster.backend.upstream_rq_200"] == 21
    assert envoy.stat("cluster.backend.upstream_rq_200") == 21
    assert "server.live" in envoy.stats(filter="^server\\.")
    dump = envoy.config_dump()
    types = [c["@type"].rsplit(".", 1)[-1] for c in dump["configs"]]
    assert "BootstrapConfigDump" in types
    assert envoy.config_section("ListenersConfigDump")["static_listeners"]
    clusters = envoy.config_dump(resource="static_clusters")
    assert clusters["configs"][0]["cluster"]["name"] == "backend"
    endpoints = envoy.config_section("EndpointsConfigDump")["static_endpoint_configs"]
    assert {e["endpoint_config"]["cluster_name"] for e in endpoints} == {"backend"}

    assert envoy.stop() == 0
    assert not envoy.running
    assert not port_open(loopback_ip, port)


def test_envoy_static_tcp(
    envoy_factory: EnvoyFactory, tcp_echo_factory: Callable[..., TcpEcho], loopback_ip: str
) -> None:
    echo = tcp_echo_factory("t1")
    port = free_port(loopback_ip)
    envoy_factory(static_tcp_bootstrap((loopback_ip, port), [echo.address]))
    assert tcp_exchange(loopback_ip, port) == "t1"


def test_envoy_failure_reports_log_tail(envoy_factory: EnvoyFactory) -> None:
    bad = static_http_bootstrap(("127.0.0.1", 0), [("127.0.0.1", 1)])
    bad["static_resources"]["clusters"][0]["bogus_field"] = 1
    with pytest.raises(EnvoyError, match=r"(?s)exited with 1.*bogus_field"):
        envoy_factory(bad)


def test_load_generator(
    envoy_factory: EnvoyFactory, backend_factory: BackendFactory, loopback_ip: str
) -> None:
    backend = backend_factory("b1")
    port = free_port(loopback_ip)
    envoy_factory(static_http_bootstrap((loopback_ip, port), [backend.address]))
    with LoadGenerator(loopback_ip, port, rate=200, duration=0.5) as load:
        load.wait_done()
    samples = load.samples
    assert 20 <= len(samples) <= 100, load.summary()
    assert not load.failures(), load.summary()
    assert load.backends() == {"b1": len(samples)}
    assert samples == sorted(samples, key=lambda s: s.started)


def test_load_generator_records_failures() -> None:
    ip = allocate_ip()
    with LoadGenerator(ip, free_port(ip), rate=50, duration=0.2, timeout=0.5) as load:
        load.wait_done()
    assert load.samples
    assert len(load.failures()) == len(load.samples)
    assert load.samples[0].error is not None
    assert load.statuses() == {"error": len(load.samples)}


# -- istioctl bootstrap with real Envoy ----------------------------------------------------


@pytest.mark.parametrize("api", ["sotw", "delta"])
def test_istioctl_bootstrap_validates(tmp_path: Path, api: str) -> None:
    opts = BootstrapOptions(name="p", namespace="ns", insecure=True, xds_api=api)  # type: ignore[arg-type]
    result = validate_bootstrap(build_bootstrap(opts), tmp_path / "b.json")
    assert result.returncode == 0, result.stdout + result.stderr


class _EmptyAds(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """An ADS server that answers each type once with no resources, recording the node."""

    def __init__(self) -> None:
        self.node_ids: list[str] = []
        self.metadata: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def _node(self, node: Any) -> None:
        if node.id:
            from google.protobuf.json_format import MessageToDict

            with self.lock:
                self.node_ids.append(node.id)
                self.metadata.append(MessageToDict(node.metadata))

    def StreamAggregatedResources(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        answered: set[str] = set()
        for req in requests:
            self._node(req.node)
            if req.type_url not in answered:
                answered.add(req.type_url)
                yield discovery_pb2.DiscoveryResponse(
                    version_info="1", type_url=req.type_url, nonce=f"n-{len(answered)}"
                )

    def DeltaAggregatedResources(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        answered: set[str] = set()
        for req in requests:
            self._node(req.node)
            if req.type_url not in answered:
                answered.add(req.type_url)
                yield discovery_pb2.DeltaDiscoveryResponse(
                    system_version_info="1", type_url=req.type_url, nonce=f"n-{len(answered)}"
                )


@pytest.fixture
def empty_ads() -> Iterator[tuple[_EmptyAds, int]]:
    servicer = _EmptyAds()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(grace=None)


@pytest.mark.parametrize("api", ["sotw", "delta"])
def test_istioctl_bootstrap_reaches_live_over_ads(
    envoy_factory: EnvoyFactory, empty_ads: tuple[_EmptyAds, int], api: str
) -> None:
    servicer, port = empty_ads
    ip = allocate_ip()
    opts = BootstrapOptions(
        name="p",
        namespace="ns",
        ip=ip,
        labels={"app": "p"},
        insecure=True,
        istiod=f"127.0.0.1:{port}",
        xds_api=api,  # type: ignore[arg-type]
    )
    envoy = envoy_factory(options=opts)  # waits for LIVE: CDS and LDS answered over HTTP/2
    assert servicer.node_ids == [opts.node_id]
    assert servicer.metadata[0]["LABELS"] == {"app": "p"}
    assert servicer.metadata[0]["INSTANCE_IPS"] == ip
    assert envoy.stat("control_plane.connected_state") == 1
    assert envoy.config_section("BootstrapConfigDump")["bootstrap"]["node"]["id"] == opts.node_id


def test_istioctl_bootstrap_without_control_plane(envoy_factory: EnvoyFactory) -> None:
    opts = BootstrapOptions(
        name="p", namespace="ns", insecure=True, istiod=f"127.0.0.1:{free_port()}"
    )
    envoy = envoy_factory(options=opts, wait_live=False)
    envoy.wait_for(lambda: envoy.state() == "PRE_INITIALIZING", 5.0, "PRE_INITIALIZING")
    assert "xds-grpc" in envoy.cluster_names()
    with pytest.raises(EnvoyError, match="state LIVE"):
        envoy.wait_live(timeout=0.3)


# -- istiod process harness (against a fake istiod) ----------------------------------------


def test_istiod_harness_with_fake(tmp_path: Path) -> None:
    istiod = IstiodProcess(
        tmp_path / "istiod",
        command=FAKE_ISTIOD,
        env={"FAKE_ISTIOD_NOISE": "3000", "FAKE_ISTIOD_READY_DELAY": "0.3"},
    )
    with istiod:
        addrs = istiod.addresses
        assert set(addrs) == {"grpc", "secure-grpc", "http", "monitoring", "webhook"}
        assert istiod.grpc_addr.startswith("127.0.0.1:")
        assert istiod.http_url == f"http://{addrs['http']}"
        info = istiod.get_json("/debug/fake")
        assert info["starts"] == 1
        assert info["addresses"] == addrs
        with pytest.raises(IstiodError, match="404"):
            istiod.get_json("/nope")

        first_pid = istiod.pid
        assert istiod.restart() == 0
        assert istiod.pid != first_pid
        assert istiod.addresses == addrs  # same ports, same state dir
        assert istiod.get_json("/debug/fake")["starts"] == 2

        assert istiod.restart(graceful=False) == -9
        assert istiod.addresses == addrs
        assert istiod.stop() == 0
    log = istiod.log_path.read_text()
    assert "noise 002999" in log
    assert log.count("=== start") == 3


def test_istiod_stop_escalates_to_kill(tmp_path: Path) -> None:
    istiod = IstiodProcess(tmp_path, command=FAKE_ISTIOD, env={"FAKE_ISTIOD_IGNORE_TERM": "1"})
    istiod.start()
    assert istiod.stop(timeout=0.5) == -9


def test_istiod_start_failure_reports_log(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-c",
        "import sys; print('boom: bad flags', file=sys.stderr); sys.exit(3)",
    ]
    istiod = IstiodProcess(tmp_path, command=cmd)
    with pytest.raises(IstiodError, match=r"(?s)exited with 3.*boom: bad flags"):
        istiod.start(timeout=10)


def test_real_istiod_starts_and_stops(istiod_factory: Callable[..., IstiodProcess]) -> None:
    istiod = istiod_factory()
    assert {"grpc", "http"} <= set(istiod.addresses)
    assert istiod.get("/ready").status == 200
    assert istiod.stop(timeout=5.0) == 0
