"""AuthorizationPolicy behaviour on the authz-sidecar golden case: simulated calls land on the
ratings sidecar's inbound chains, then its RBAC / ext_authz filters decide (tests/helpers/
simulate_rbac.py evaluates them as Envoy does). A comment starting "Istio:" points at the
behaviour's source in Istio."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.simulate import TLS, Call, CallMode, Protocol, Simulation, simulate_case
from tests.helpers.simulate_rbac import Decision, Request, authorize

TESTDATA = Path(__file__).resolve().parent / "testdata"
RATINGS = "10.10.0.40"
REVIEWS_ID = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
PRODUCTPAGE_ID = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
GATEWAY_ID = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate_case(TESTDATA / "authz-sidecar.yaml")


def call(
    sim: Simulation,
    path: str,
    *,
    method: str = "GET",
    peer: str = "",
    port: int = 9080,
    ext_authz_allows: bool = True,
) -> Decision:
    """An inbound HTTP call to ratings: over mTLS from a sidecar with identity `peer`, or
    plaintext when there is none."""
    tls = TLS.MTLS if peer else TLS.PLAINTEXT
    alpn = "istio-http/1.1" if peer else ""
    result = sim.run(
        Call(
            address=RATINGS, port=port, host="ratings", path=path, method=method,
            mode=CallMode.INBOUND, tls=tls, alpn=alpn,
        )
    )  # fmt: skip
    assert result.error is None, result
    headers = {":path": path, ":method": method, ":authority": "ratings"}
    request = Request(
        destination_port=port,
        destination_ip=RATINGS,
        headers=headers,
        peer_principal=peer,
        ext_authz_allows=ext_authz_allows,
    )
    return authorize(result.chain_proto, request)


def test_allowed_principal_and_path(sim: Simulation) -> None:
    decision = call(sim, "/ratings/0", peer=REVIEWS_ID)
    assert decision.allowed
    assert decision.matched == ["ns[default]-policy[ratings-viewer]-rule[0]"]


@pytest.mark.parametrize(
    ("path", "method", "peer"),
    [
        pytest.param("/ratings/0", "GET", PRODUCTPAGE_ID, id="other-principal"),
        pytest.param("/ratings/0/extra", "GET", REVIEWS_ID, id="template-is-one-segment"),
        pytest.param("/ratings/0", "POST", REVIEWS_ID, id="other-method"),
        pytest.param("/ratings/0", "GET", "", id="plaintext-has-no-principal"),
    ],
)
def test_allow_policy_denies_what_it_does_not_match(
    sim: Simulation, path: str, method: str, peer: str
) -> None:
    # Istio: an ALLOW policy applying to a workload denies every request no ALLOW policy
    # matches (RBAC action ALLOW; 403 "RBAC: access denied").
    decision = call(sim, path, method=method, peer=peer)
    assert (decision.allowed, decision.denied_by) == (False, "ALLOW")


def test_namespace_source_is_allowed_any_get(sim: Simulation) -> None:
    decision = call(sim, "/anything", peer=GATEWAY_ID)
    assert decision.allowed
    assert decision.matched == ["ns[default]-policy[ratings-viewer]-rule[1]"]


def test_mesh_wide_deny_runs_before_allow(sim: Simulation) -> None:
    decision = call(sim, "/debug/vars", peer=GATEWAY_ID)
    assert (decision.allowed, decision.denied_by) == (False, "DENY")
    assert decision.matched == ["ns[istio-system]-policy[mesh-deny-debug]-rule[0]"]


def test_dry_run_deny_is_only_recorded(sim: Simulation) -> None:
    decision = call(sim, "/ratings/0", method="DELETE", peer=GATEWAY_ID)
    assert decision.shadow_matched == ["ns[default]-policy[ratings-no-delete]-rule[0]"]
    assert decision.denied_by == "ALLOW"  # DELETE is not allowed, but not by the dry run


def test_audit_logs_without_deciding(sim: Simulation) -> None:
    decision = call(sim, "/ratings/0", method="POST", peer=REVIEWS_ID)
    assert decision.logged == ["ns[default]-policy[audit-writes]-rule[0]"]


def test_custom_policy_asks_ext_authz_only_for_its_paths(sim: Simulation) -> None:
    plain = call(sim, "/ratings/0", peer=REVIEWS_ID)
    assert not plain.ext_authz_called
    admin = call(sim, "/admin/users", peer=GATEWAY_ID)
    assert admin.ext_authz_called and admin.allowed
    refused = call(sim, "/admin/users", peer=GATEWAY_ID, ext_authz_allows=False)
    assert (refused.allowed, refused.denied_by) == (False, "ext_authz")


def test_tcp_to_an_undeclared_port_is_denied(sim: Simulation) -> None:
    # Istio: the ALLOW rules use HTTP attributes only, so on TCP chains they are dropped and
    # the ALLOW filter has no policy: every connection is denied.
    result = sim.run(
        Call(
            address=RATINGS, port=7777, mode=CallMode.INBOUND, tls=TLS.MTLS,
            alpn="istio-peer-exchange", protocol=Protocol.TCP,
        )
    )  # fmt: skip
    assert (result.error, result.filter_chain) == (None, "virtualInbound")
    decision = authorize(result.chain_proto, Request(7777, RATINGS, peer_principal=REVIEWS_ID))
    assert (decision.allowed, decision.denied_by) == (False, "ALLOW")
    assert not decision.ext_authz_called  # an HTTP provider has no TCP filter
