"""Issue 5 (6): REDIRECT interception, as in a pod, in network namespaces the test creates.

Each workload lives in its own namespace with Istio's capture rules (istio-init's iptables:
inbound → 15006, outbound → 15001, the proxy user's own traffic left alone) and a secure
sidecar Envoy in REDIRECT mode running as that user. Applications know nothing of the mesh:
productpage's calls `http://reviews:9080/` by the Service's ClusterIP, and the kernel hands
the connection to its sidecar (virtualOutbound → the non-binding outbound listener → mTLS),
whose peer's rules hand it to the server sidecar (virtualInbound → the app). Topology and
harness: redirect_mesh.py and netns.py. One mesh is shared by the module; every test leaves
its config as it found it.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from .backend import tcp_exchange
from .mesh import assert_config_dump_matches, proxy_key, remove_config, write_config
from .net import wait_until
from .netns import PROXY_GID, PROXY_UID, NetnsUnavailable, require_netns
from .redirect_mesh import (
    ECHO_PORT,
    ECHO_VIP,
    OUTSIDER_PORT,
    POLICY_FILE,
    PORT,
    REVIEWS_VIP,
    SPLIT,
    RedirectMesh,
    Workload,
    redirect_mesh,
)
from .security_helpers import parse_xfcc, peer_authentication, spiffe_id
from .traffic import Response, request

REVIEWS = ("reviews-v1", "reviews-v2")
# An outbound listener that does not bind (bind_to_port false) can only be reached through
# virtualOutbound's original-destination hand-off, i.e. through the capture rules.
OUT_HTTP = f"listener.0.0.0.0_{PORT}.downstream_cx_total"
OUT_RQ = f"http.outbound_0.0.0.0_{PORT};.downstream_rq_total"
IN_RQ = f"http.inbound_0.0.0.0_{PORT};.downstream_rq_total"
IN_HANDSHAKES = "listener.0.0.0.0_15006.ssl.handshake"
NO_CHAIN = "listener.0.0.0.0_15006.no_filter_chain_match"
ECHO_OUT = f"listener.{ECHO_VIP}_{ECHO_PORT}.downstream_cx_total"
ECHO_IN = f"tcp.inbound|{ECHO_PORT}||.downstream_cx_total"
PASSTHROUGH = "tcp.PassthroughCluster.downstream_cx_total"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedirectMesh]:
    try:
        require_netns()
    except NetnsUnavailable as err:
        pytest.fail(str(err), pytrace=False)
    with redirect_mesh(tmp_path_factory.mktemp("redirect")) as built:
        yield built


def counters(workload: Workload, *names: str) -> dict[str, int]:
    stats = workload.envoy.stats(filter="|".join(f"^{_re2(n)}$" for n in names))
    return {name: stats.get(name, 0) for name in names}


def _re2(name: str) -> str:
    return "".join(f"\\{c}" if c in r".|()[]{}*+?^$\\" else c for c in name)


def delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in before}


def total(workloads: list[Workload], name: str) -> int:
    return sum(counters(w, name)[name] for w in workloads)


def test_capture_rules_and_proxy_user(mesh: RedirectMesh) -> None:
    for role, workload in mesh.workloads.items():
        table = mesh.captured[role]
        for rule in (
            "-A PREROUTING -p tcp -j ISTIO_INBOUND",
            "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
            "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
            f"-A ISTIO_OUTPUT -m owner --uid-owner {PROXY_UID} -j RETURN",
            f"-A ISTIO_OUTPUT -m owner --gid-owner {PROXY_GID} -j RETURN",
            "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
        ):
            assert rule in table, f"{role}: {rule!r} not in\n{table}"
        status = Path(f"/proc/{workload.envoy.pid}/status").read_text().splitlines()
        ids = {line.split(":")[0]: line.split()[1:] for line in status if ":" in line}
        assert ids["Uid"][0] == ids["Gid"][0] == str(PROXY_UID), (role, ids["Uid"], ids["Gid"])
    assert "ISTIO" not in mesh.outsider.exec("iptables-save", "-t", "nat")


def test_http_by_cluster_ip_through_both_sidecars(mesh: RedirectMesh) -> None:
    servers = [mesh.workloads[r] for r in REVIEWS]
    client_before = counters(mesh.client, OUT_HTTP, OUT_RQ)
    served_before = total(servers, IN_RQ)
    apps_before = sum(mesh.app(r).request_count for r in REVIEWS)

    answers: list[Response] = [mesh.get_reviews() for _ in range(10)]  # fresh connections
    for resp in answers:
        assert resp.status == 200 and resp.headers.get("x-backend") in REVIEWS, resp
        seen = resp.json()
        assert seen["host"] == f"reviews:{PORT}"
        # The server sidecar terminated mTLS from productpage's sidecar, and says so (XFCC
        # exists only on a TLS connection with a client certificate).
        xfcc = parse_xfcc(seen["headers"]["x-forwarded-client-cert"])
        assert xfcc[-1]["By"] == spiffe_id("default", "reviews"), xfcc
        assert xfcc[-1]["URI"] == spiffe_id("default", "productpage"), xfcc

    assert delta(client_before, counters(mesh.client, OUT_HTTP, OUT_RQ)) == {
        OUT_HTTP: 10,
        OUT_RQ: 10,
    }
    assert total(servers, IN_RQ) - served_before == 10
    assert sum(mesh.app(r).request_count for r in REVIEWS) - apps_before == 10

    # The VIP is no address at all outside a sidecar: the outsider cannot reach it.
    with pytest.raises(OSError, match=r"timed out|No route to host|unreachable"):
        mesh.outsider.run(request, REVIEWS_VIP, PORT, host=f"reviews:{PORT}", timeout=1.0)

    for workload in mesh.workloads.values():
        assert_config_dump_matches(mesh.istiod, workload.envoy, proxy_key(workload.opts))


def test_weighted_split_across_server_namespaces(mesh: RedirectMesh) -> None:
    servers = {r: mesh.workloads[r] for r in REVIEWS}
    served_before = {r: counters(w, IN_RQ)[IN_RQ] for r, w in servers.items()}
    apps_before = {r: mesh.app(r).request_count for r in REVIEWS}

    counts = mesh.call_reviews(200)
    assert sum(counts.values()) == 200 and set(counts) == set(REVIEWS), counts
    share = counts["reviews-v1"] / 200
    assert abs(share - SPLIT["v1"] / 100) <= 0.12, counts  # ±4.5 sd of a 70/30 split
    for role, workload in servers.items():
        # Every request an app answered came through its own sidecar's inbound chain.
        served = counters(workload, IN_RQ)[IN_RQ] - served_before[role]
        assert served == mesh.app(role).request_count - apps_before[role] == counts[role]


def test_tcp_by_cluster_ip(mesh: RedirectMesh) -> None:
    server = mesh.workloads["reviews-v1"]
    client_before = counters(mesh.client, ECHO_OUT)
    server_before = counters(server, ECHO_IN, IN_HANDSHAKES)
    connections = mesh.echo.connection_count

    assert mesh.echo_exchange(b"hello through two sidecars\n") == "echo"

    assert delta(client_before, counters(mesh.client, ECHO_OUT)) == {ECHO_OUT: 1}
    assert delta(server_before, counters(server, ECHO_IN, IN_HANDSHAKES)) == {
        ECHO_IN: 1,
        IN_HANDSHAKES: 1,
    }
    assert mesh.echo.connection_count == connections + 1


def test_workload_reaching_itself_through_its_sidecar(mesh: RedirectMesh) -> None:
    """reviews-v1 calls `echo`, whose only endpoint is reviews-v1 itself: its sidecar's
    upstream connection to its own IP goes over lo and Istio's owner rule sends it back to
    15006 (`-o lo ! -d 127.0.0.1/32 ... --uid-owner 1337 -j ISTIO_IN_REDIRECT`)."""
    workload = mesh.workloads["reviews-v1"]
    before = counters(workload, ECHO_OUT, ECHO_IN, IN_HANDSHAKES)

    assert workload.ns.run(tcp_exchange, ECHO_VIP, ECHO_PORT, b"me again\n") == "echo"

    after = counters(workload, ECHO_OUT, ECHO_IN, IN_HANDSHAKES)
    assert delta(before, after) == {ECHO_OUT: 1, ECHO_IN: 1, IN_HANDSHAKES: 1}


def test_unknown_destination_passes_through(mesh: RedirectMesh) -> None:
    before = counters(mesh.client, PASSTHROUGH)
    resp = mesh.client_get(mesh.outsider.ip, OUTSIDER_PORT, "outsider")
    assert resp.status == 200 and resp.headers.get("x-backend") == "outsider", resp
    assert "x-forwarded-client-cert" not in resp.json()["headers"]
    assert delta(before, counters(mesh.client, PASSTHROUGH)) == {PASSTHROUGH: 1}


def _refused(mesh: RedirectMesh) -> bool:
    try:
        mesh.outsider_get("reviews-v1", timeout=2.0)
    except (OSError, http.client.HTTPException):
        return True
    return False


def test_strict_refuses_plaintext_that_bypasses_the_sidecar(mesh: RedirectMesh) -> None:
    server = mesh.workloads["reviews-v1"]
    app = mesh.app("reviews-v1")

    # PERMISSIVE (no policy): the outsider's plaintext call is captured by reviews-v1's
    # sidecar too, and reaches the app without a client certificate.
    before = counters(server, IN_RQ)
    resp = mesh.outsider_get("reviews-v1")
    assert resp.status == 200 and resp.headers.get("x-backend") == "reviews-v1", resp
    assert "x-forwarded-client-cert" not in resp.json()["headers"]
    assert delta(before, counters(server, IN_RQ)) == {IN_RQ: 1}

    config = mesh.istiod.config_dir
    write_config(config, POLICY_FILE, peer_authentication("STRICT"))
    try:
        wait_until(lambda: _refused(mesh), 15.0, 0.1, "STRICT refusing plaintext")
        before = counters(server, NO_CHAIN)
        answered = app.request_count
        assert all(_refused(mesh) for _ in range(5))
        assert counters(server, NO_CHAIN)[NO_CHAIN] - before[NO_CHAIN] >= 5
        assert app.request_count == answered
        # The mesh client, with its sidecar's certificate, still gets through.
        wait_until(
            lambda: set(mesh.call_reviews(20)) <= set(REVIEWS), 10.0, 0.1, "mTLS under STRICT"
        )
        assert set(mesh.call_reviews(40)) == set(REVIEWS)
    finally:
        remove_config(config, POLICY_FILE)
        wait_until(lambda: not _refused(mesh), 15.0, 0.1, "PERMISSIVE again")


def _outsider_echo(mesh: RedirectMesh) -> str:
    ip = mesh.workloads["reviews-v1"].ns.ip
    return mesh.outsider.run(tcp_exchange, ip, ECHO_PORT, b"plain\n", 1.0)


def test_server_first_tcp_under_disable(mesh: RedirectMesh) -> None:
    """The echo server speaks first (like MySQL). With mTLS DISABLE its port has only a
    plaintext chain, so virtualInbound must not wait for the client's first bytes to inspect
    them: the greeting arrives at once, from a mesh client and from a process without a
    sidecar alike (an inspector waiting there would hang both: protocolDetectionTimeout is
    0, no timeout)."""
    server = mesh.workloads["reviews-v1"]
    config = mesh.istiod.config_dir
    write_config(config, POLICY_FILE, peer_authentication("DISABLE"))
    try:
        assert wait_until(lambda: _outsider_echo(mesh), 15.0, 0.1, "greeting under DISABLE")
        before = counters(server, ECHO_IN, IN_HANDSHAKES)
        assert mesh.echo_exchange(b"plaintext through two sidecars\n") == "echo"
        # Plaintext end to end (auto mTLS follows the namespace's DISABLE), still captured.
        after = counters(server, ECHO_IN, IN_HANDSHAKES)
        assert delta(before, after) == {ECHO_IN: 1, IN_HANDSHAKES: 0}
    finally:
        remove_config(config, POLICY_FILE)
        wait_until(
            lambda: "x-forwarded-client-cert" in mesh.get_reviews().json()["headers"],
            15.0,
            0.1,
            "mTLS again",
        )
