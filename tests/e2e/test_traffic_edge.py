"""Issue 5 (items 3 to 5) with real Envoy: Gateway TLS passthrough and TCP servers, DNS
ServiceEntries, Sidecar scoping, and outboundTrafficPolicy REGISTRY_ONLY vs ALLOW_ANY.

Most tests share the loopback mesh of edge_mesh.py (one istiod, a gateway and two NONE-mode
sidecars, each on its own 127.0.x.y; every config is written once at the start and tests only
observe, so they stay independent).

REGISTRY_ONLY vs ALLOW_ANY on traffic to a destination the registry does not know needs the
capture that REDIRECT mode gives: without it (NONE mode) a sidecar's PassthroughCluster has no
original destination to forward to, in Istio as here. That part runs in the network-namespace
mesh of redirect_mesh.py: productpage's application calls the `outsider` backend (no service
declares it) by its address, with and without a Sidecar setting REGISTRY_ONLY, and with a
ServiceEntry declaring it; the test restores the config it changed.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from .backend import tcp_exchange
from .edge_mesh import (
    DNS_PORT,
    FAR_SERVICES,
    HTTP_PORT,
    LOGICAL_DNS_PORT,
    PASSTHROUGH_PORT,
    TCP_PORT,
    LoopMesh,
    loop_mesh,
)
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import remove_config, write_config
from .net import wait_until
from .netns import NetnsUnavailable, require_netns
from .redirect_mesh import OUTSIDER_PORT, RedirectMesh, redirect_mesh
from .tls_backend import tls_get
from .traffic import Response, request


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopMesh]:
    with loop_mesh(tmp_path_factory.mktemp("edge")) as built:
        yield built


def _get(ip: str, port: int, host: str) -> Response:
    return request(ip, port, "GET", "/", host=host, timeout=2.0)


def _eventually(ip: str, port: int, host: str, backend: str) -> Response:
    return wait_until(
        lambda: r if (r := _get(ip, port, host)).headers.get("x-backend") == backend else None,
        15.0,
        0.05,
        f"{host} via {ip}:{port} answered by {backend}",
    )


# ---- Gateway: TLS passthrough and TCP ---------------------------------------------------------


def test_passthrough_gateway_forwards_tls_by_sni(loop: LoopMesh) -> None:
    for backend in (loop.alpha, loop.beta):
        reply = wait_until(
            lambda b=backend: tls_get(loop.gateway_ip, PASSTHROUGH_PORT, b.host, b.certificate_pem),
            15.0,
            0.05,
            f"TLS to {backend.host} through the gateway",
        )
        # The client verified the chain against the backend's own certificate, for its name:
        # the gateway did not terminate; the bytes it saw were the backend's.
        assert reply.peer_certificate == backend.certificate_der
        assert reply.body == backend.name
    before = loop.alpha.handshakes
    for _ in range(5):
        assert (
            tls_get(
                loop.gateway_ip, PASSTHROUGH_PORT, loop.alpha.host, loop.alpha.certificate_pem
            ).body
            == "alpha"
        )
    assert loop.alpha.handshakes - before == 5
    # An SNI no tls route claims matches no filter chain: the gateway closes the connection.
    with pytest.raises((OSError, ConnectionError)):
        tls_get(
            loop.gateway_ip, PASSTHROUGH_PORT, "gamma.passthrough.test", loop.alpha.certificate_pem
        )
    listener = f"listener.{loop.gateway_ip}_{PASSTHROUGH_PORT}.no_filter_chain_match"
    assert (loop.gateway.stat(listener) or 0) >= 1


def test_tcp_gateway_server_forwards_bytes(loop: LoopMesh) -> None:
    greeting = wait_until(
        lambda: tcp_exchange(loop.gateway_ip, TCP_PORT, b"hello through the gateway\n"),
        15.0,
        0.05,
        "TCP echo through the gateway",
    )
    assert greeting == "echo"
    before = loop.echo.connection_count
    payload = bytes(range(256)) * 64  # 16 KiB, every byte value
    assert tcp_exchange(loop.gateway_ip, TCP_PORT, payload) == "echo"
    assert loop.echo.connection_count == before + 1


# ---- DNS ServiceEntries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "host", "kind"),
    [
        (DNS_PORT, "localhost", "STRICT_DNS"),
        (LOGICAL_DNS_PORT, "logical.local.test", "LOGICAL_DNS"),
    ],
)
def test_dns_service_entry_reachable_through_sidecar(
    loop: LoopMesh, port: int, host: str, kind: str
) -> None:
    before = loop.local.request_count
    resp = _eventually(loop.wide_ip, port, host, "local")
    assert resp.status == 200
    assert loop.local.request_count > before
    # Envoy resolved the name itself: the cluster's host is 127.0.0.1:<backend port>.
    cluster_name = f"outbound|{port}||{host}"
    dump = loop.wide.config_dump(resource="dynamic_active_clusters")
    types = {c["cluster"]["name"]: c["cluster"].get("type") for c in dump["configs"]}
    assert types[cluster_name] == kind
    statuses = {c["name"]: c for c in loop.wide.clusters()["cluster_statuses"]}
    resolved = {
        (h["address"]["socket_address"]["address"], h["address"]["socket_address"]["port_value"])
        for h in statuses[cluster_name].get("host_statuses", [])
    }
    assert ("127.0.0.1", loop.local.port) in resolved, resolved


# ---- Sidecar scoping -----------------------------------------------------------------------------


def _istiod_dump_bytes(istiod: IstiodProcess, proxy: str) -> int:
    return len(json.dumps(istiod.get_json(f"/debug/config_dump?proxyID={proxy}")))


def _dynamic_bytes(envoy: EnvoyProcess) -> int:
    """Size of what Envoy holds from xDS (its /config_dump, the bootstrap left out)."""
    sections = ("dynamic_active_clusters", "dynamic_listeners", "dynamic_route_configs")
    return sum(len(json.dumps(envoy.config_dump(resource=s))) for s in sections)


def test_sidecar_scope_shrinks_config_and_blocks_out_of_scope(loop: LoopMesh) -> None:
    far_host = "far-3.far.svc.cluster.local"
    _eventually(loop.wide_ip, HTTP_PORT, far_host, "far")
    _eventually(loop.narrow_ip, HTTP_PORT, "near.default.svc.cluster.local", "near")

    wide_clusters = {c for c in loop.wide.cluster_names() if c.startswith("outbound|")}
    narrow_clusters = {c for c in loop.narrow.cluster_names() if c.startswith("outbound|")}
    assert sum(1 for c in wide_clusters if ".far.svc" in c) == FAR_SERVICES
    assert not any(".far.svc" in c for c in narrow_clusters), narrow_clusters
    assert narrow_clusters < wide_clusters
    # What istiod would send each (its /debug/config_dump) and what each Envoy holds.
    wide_bytes = _istiod_dump_bytes(loop.istiod, "wide.default")
    narrow_bytes = _istiod_dump_bytes(loop.istiod, "narrow.default")
    assert narrow_bytes * 2 < wide_bytes, (narrow_bytes, wide_bytes)
    envoy_wide, envoy_narrow = _dynamic_bytes(loop.wide), _dynamic_bytes(loop.narrow)
    assert envoy_narrow * 2 < envoy_wide, (envoy_narrow, envoy_wide)

    # The narrow proxy cannot reach a service outside its scope (REGISTRY_ONLY: 502).
    before = loop.far.request_count
    for _ in range(10):
        assert _get(loop.narrow_ip, HTTP_PORT, far_host).status == 502
    assert loop.far.request_count == before


# ---- REGISTRY_ONLY vs ALLOW_ANY (REDIRECT mode, network namespaces) ---------------------------


@pytest.fixture(scope="module")
def redirect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedirectMesh]:
    try:
        require_netns()
    except NetnsUnavailable as err:
        pytest.fail(str(err), pytrace=False)
    with redirect_mesh(tmp_path_factory.mktemp("redirect-edge")) as built:
        yield built


REGISTRY_ONLY_SIDECAR = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: productpage, namespace: default}
    spec:
      workloadSelector:
        labels: {app: productpage}
      outboundTrafficPolicy: {mode: REGISTRY_ONLY}
    """


def _outsider_entry(ip: str) -> str:
    return f"""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: outsider, namespace: default}}
        spec:
          hosts: [outsider.example.com]
          addresses: [{ip}]
          location: MESH_EXTERNAL
          resolution: STATIC
          ports:
          - {{number: {OUTSIDER_PORT}, name: http, protocol: HTTP}}
          endpoints:
          - {{address: {ip}}}
        """


def _outsider_status(mesh: RedirectMesh, host: str = "outsider") -> int:
    """productpage's application calling the outsider by its address: the status, or 0 when
    the connection is cut (BlackHoleCluster)."""
    try:
        return mesh.client_get(mesh.outsider.ip, OUTSIDER_PORT, host, timeout=2.0).status
    except (OSError, http.client.HTTPException):
        return 0


def test_registry_only_blocks_unknown_allow_any_passes(redirect: RedirectMesh) -> None:
    config = redirect.istiod.config_dir
    # ALLOW_ANY (the mesh default): the unknown destination passes through.
    assert wait_until(lambda: _outsider_status(redirect) == 200, 15.0, 0.1, "ALLOW_ANY passes")
    try:
        write_config(config, "edge-sidecar.yaml", REGISTRY_ONLY_SIDECAR)
        wait_until(lambda: _outsider_status(redirect) == 0, 15.0, 0.1, "REGISTRY_ONLY blocks")
        before = redirect.outsider_app.request_count
        assert [_outsider_status(redirect) for _ in range(5)] == [0] * 5
        assert redirect.outsider_app.request_count == before
        # Registry services still work under REGISTRY_ONLY.
        assert redirect.get_reviews().status == 200
        # Declared by a ServiceEntry, the same destination is reachable again.
        write_config(config, "edge-outsider.yaml", _outsider_entry(redirect.outsider.ip))
        wait_until(
            lambda: _outsider_status(redirect, "outsider.example.com") == 200,
            15.0,
            0.1,
            "the declared destination passes under REGISTRY_ONLY",
        )
        assert redirect.outsider_app.request_count > before
        # An undeclared Host on that port now meets the route's catch-all: block_all (502).
        assert _outsider_status(redirect, "elsewhere.example.com") == 502
    finally:
        for name in ("edge-sidecar.yaml", "edge-outsider.yaml"):
            if (config / name).exists():
                remove_config(config, name)
    assert wait_until(lambda: _outsider_status(redirect) == 200, 15.0, 0.1, "ALLOW_ANY again")
