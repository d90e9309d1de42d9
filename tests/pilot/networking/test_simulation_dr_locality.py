"""Locality load balancing and DestinationRule TLS in generated xDS (the dr-locality and dr-tls
golden cases): where a proxy's traffic goes by priority as Envoy picks it, for proxies in
different localities sharing one push, and how it connects upstream. A comment starting
"Istio:" points at the behaviour's source in Istio."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pilot.networking.locality import proxy_locality
from tests.helpers.golden import case_discovery
from tests.helpers.simulate import TLS, Simulation, UpstreamTLS, simulate_case
from tests.helpers.xds import ENDPOINT, ProxySpec, decode_any

TESTDATA = Path(__file__).resolve().parent / "testdata"
LOCALITY = TESTDATA / "dr-locality.yaml"
EAST_A1, EAST_A2, EAST_B, WEST, EU = (f"10.72.1.{i}" for i in range(1, 6))


def priorities(sim: Simulation, host: str) -> dict[int, list[str]]:
    """Endpoint addresses by priority of `outbound|80||host`, as this proxy received them."""
    assignment = sim.endpoints_by_name[f"outbound|80||{host}"]
    out: dict[int, list[str]] = {}
    for group in assignment.endpoints:
        for lb in group.lb_endpoints:
            out.setdefault(group.priority, []).append(lb.endpoint.address.socket_address.address)
    return {p: sorted(v) for p, v in sorted(out.items())}


def serving(by_priority: dict[int, list[str]], ejected: set[str] = frozenset()) -> list[str]:
    """Envoy (panic threshold 0, as Istio sets it with outlier detection): all traffic to the
    highest priority that still has a host not ejected."""
    for _, hosts in sorted(by_priority.items()):
        alive = [h for h in hosts if h not in ejected]
        if alive:
            return alive
    return []


def locality_sim(**labels: str) -> Simulation:
    discovery, proxy = case_discovery(LOCALITY)
    merged = {"app": "sleep", "version": "v1", "tier": "gold", **labels}
    return Simulation(discovery.resources(ProxySpec(**{**proxy.__dict__, "labels": merged})))


def test_default_failover_prefers_the_closest_locality() -> None:
    # Istio: loadbalancer.applyLocalityFailover — with outlier detection and no explicit
    # setting, priority follows how much of region/zone/subzone matches.
    sim = simulate_case(LOCALITY)
    by_priority = priorities(sim, "failover.geo.internal")
    assert by_priority == {0: [EAST_A1], 1: [EAST_A2], 2: [EAST_B], 3: [WEST, EU]}
    assert serving(by_priority) == [EAST_A1]
    assert serving(by_priority, {EAST_A1}) == [EAST_A2]
    assert serving(by_priority, {EAST_A1, EAST_A2, EAST_B}) == [WEST, EU]


def test_explicit_failover_region_comes_before_other_regions() -> None:
    sim = simulate_case(LOCALITY)
    by_priority = priorities(sim, "explicit.geo.internal")
    assert by_priority == {0: [EAST_A1], 1: [EAST_A2], 2: [EAST_B], 3: [EU], 4: [WEST]}
    assert serving(by_priority, {EAST_A1, EAST_A2, EAST_B}) == [EU]


def test_failover_priority_labels_then_region() -> None:
    # Istio: applyFailoverPriorities (label match count, `label=value` overrides) then
    # applyLocalityFailover on top (priority * 5 + locality priority, made contiguous).
    sim = simulate_case(LOCALITY)
    by_priority = priorities(sim, "labels.geo.internal")
    assert by_priority == {0: [EAST_A2], 1: [EU], 2: [WEST], 3: [EAST_A1], 4: [EAST_B]}


def test_distribute_reweights_and_drops_unlisted_localities() -> None:
    sim = simulate_case(LOCALITY)
    assignment = sim.endpoints_by_name["outbound|80||split.geo.internal"]
    weights = {
        lb.endpoint.address.socket_address.address: group.load_balancing_weight.value
        for group in assignment.endpoints
        for lb in group.lb_endpoints
    }
    assert weights == {EAST_A1: 40, EAST_A2: 40, WEST: 20}
    cluster = sim.clusters["outbound|80||split.geo.internal"]
    assert cluster.common_lb_config.HasField("locality_weighted_lb_config")


def test_no_priorities_without_outlier_detection_or_when_disabled() -> None:
    sim = simulate_case(LOCALITY)
    for host in ("plain.geo.internal", "disabled.geo.internal"):
        assert list(priorities(sim, host)) == [0], host


def test_each_proxy_gets_priorities_for_its_own_locality_from_one_push() -> None:
    # The assignment is per proxy locality: two proxies of one push must not share it.
    east = locality_sim(**{"topology.kubernetes.io/region": "us-east"})
    eu = locality_sim(
        **{"topology.kubernetes.io/region": "eu-west", "topology.kubernetes.io/zone": "zone-d"}
    )
    assert serving(priorities(eu, "failover.geo.internal")) == [EU]
    assert serving(priorities(east, "failover.geo.internal")) == [EAST_A1, EAST_A2, EAST_B]
    # Plain rules stay shared: the same bytes for both.
    discovery, proxy = case_discovery(LOCALITY)
    built = [
        discovery.generate(
            discovery.view(ProxySpec(**{**proxy.__dict__, "labels": labels})),
            ENDPOINT,
            ["outbound|80||plain.geo.internal"],
        )[0]
        for labels in (
            {"topology.kubernetes.io/region": "a"},
            {"topology.kubernetes.io/region": "b"},
        )
    ]
    assert decode_any(built[0].unpack()) == decode_any(built[1].unpack())


def test_workload_entry_locality_then_node_locality_place_the_proxy() -> None:
    # Without topology labels, the proxy's WorkloadEntry locality counts, then the Envoy
    # node's; with neither, every endpoint is "another region" (one priority).
    discovery, proxy = case_discovery(LOCALITY)
    eu_vm = ProxySpec(**{**proxy.__dict__, "labels": {"app": "sleep"}, "ip": "10.72.0.20"})
    sim = Simulation(discovery.resources(eu_vm))
    assert serving(priorities(sim, "failover.geo.internal")) == [EU]
    nowhere = ProxySpec(**{**proxy.__dict__, "labels": {"app": "sleep"}, "ip": "10.72.9.9"})
    view = discovery.view(nowhere)
    assert view.workload is None and proxy_locality(view) == ("", "", "")
    sim = Simulation(discovery.resources(nowhere))
    assert list(priorities(sim, "failover.geo.internal")) == [0]
    node = dataclasses.replace(
        view, proxy=dataclasses.replace(view.proxy, locality="us-west/zone-c")
    )
    assert proxy_locality(node) == ("us-west", "zone-c", "")


# ---- DestinationRule TLS -------------------------------------------------------------------


def upstream(cluster: str, endpoint: str = "") -> UpstreamTLS:
    sim = simulate_case(TESTDATA / "dr-tls.yaml")
    if not endpoint:
        return sim.upstream_tls(cluster, sim.cluster_endpoints(cluster)[0])
    return sim.upstream_tls(cluster, endpoint)


def test_simple_tls_with_a_ca_file_verifies_the_service_entry_names() -> None:
    # Istio: constructUpstreamTLS — no sni: auto SNI (Host header) and SANs from the
    # ServiceEntry's subjectAltNames.
    sim = simulate_case(TESTDATA / "dr-tls.yaml")
    cluster = sim.clusters["outbound|443||secure.tls.example.com"]
    tls = sim.upstream_tls(cluster.name, "secure.tls.example.com:443")
    assert (tls.tls, tls.sni, tls.sans) == (TLS.TLS, "", ("secure.tls.example.com",))
    key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    options = decode_any(cluster.typed_extension_protocol_options[key])
    assert options.upstream_http_protocol_options.auto_sni


def test_mutual_tls_from_files_presents_the_client_certificate() -> None:
    sim = simulate_case(TESTDATA / "dr-tls.yaml")
    name = "outbound|443||partner.tls.example.com"
    tls = sim.upstream_tls(name, "partner.tls.example.com:443")
    assert (tls.tls, tls.sni, tls.sans) == (
        TLS.TLS,
        "api.partner.example.com",
        ("api.partner.example.com",),
    )
    context = decode_any(sim.clusters[name].transport_socket.typed_config).common_tls_context
    assert context.tls_certificates[0].certificate_chain.filename == "/etc/certs/client.pem"
    assert context.validation_context.crl.filename == "/etc/certs/partner.crl"


def test_credential_name_on_a_sidecar_needs_a_workload_selector() -> None:
    # Istio: buildUpstreamClusterTLSContext returns no TLS for a sidecar's SIMPLE/MUTUAL
    # credentialName unless the DestinationRule selects the workload.
    sim = simulate_case(TESTDATA / "dr-tls.yaml")
    assert sim.upstream_tls(
        "outbound|443||vault.tls.example.com", "vault.tls.example.com:443"
    ) == UpstreamTLS(TLS.PLAINTEXT)
    selected = sim.upstream_tls(
        "outbound|443||vault-selected.tls.example.com", "vault-selected.tls.example.com:443"
    )
    assert (selected.tls, selected.certificate, selected.validation) == (
        TLS.MTLS,
        "kubernetes://vault-client",
        "kubernetes://vault-client-cacert",
    )


def test_disable_istio_mutual_and_auto_mtls() -> None:
    sim = simulate_case(TESTDATA / "dr-tls.yaml")
    endpoint = "10.73.1.1:80"
    assert sim.upstream_tls("outbound|80||plain.tls.internal", endpoint) == UpstreamTLS(
        TLS.PLAINTEXT
    )
    mesh = sim.upstream_tls("outbound|80||mesh.tls.internal", endpoint)
    assert (mesh.tls, mesh.sni, mesh.certificate, mesh.sans) == (
        TLS.MTLS,
        "mesh.custom.sni",
        "default",
        ("spiffe://cluster.local/ns/default/sa/app",),
    )
    auto = sim.upstream_tls("outbound|80||auto.tls.internal", endpoint)
    assert (auto.tls, auto.sni) == (TLS.MTLS, "outbound_.80_._.auto.tls.internal")


def test_insecure_skip_verify_on_http2_offers_h2_without_verification() -> None:
    sim = simulate_case(TESTDATA / "dr-tls.yaml")
    name = "outbound|8443||skip.tls.example.com"
    tls = sim.upstream_tls(name, "skip.tls.example.com:8443")
    assert (tls.tls, tls.alpn, tls.sans) == (TLS.TLS, ("h2",), ())
    context = decode_any(sim.clusters[name].transport_socket.typed_config).common_tls_context
    assert not context.validation_context.HasField("trusted_ca")
