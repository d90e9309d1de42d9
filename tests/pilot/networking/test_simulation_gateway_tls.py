"""Gateways terminating TLS: simulated calls through the listeners of HTTPS Gateway servers.

Cases: testdata/gateway-https.yaml (HTTP on 80 with httpsRedirect; SIMPLE and MUTUAL servers on
443 told apart by SNI) and testdata/gateway-https-modes.yaml (TLS parameters, client SANs,
ISTIO_MUTUAL). A comment starting "Istio:" points at the Istio source the test follows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from pilot.networking.listener_gateway import sni_hosts
from pilot.networking.tls import (
    credential_resource_name,
    filter_cipher_suites,
    gateway_certificate_problem,
    gateway_server_downstream,
)
from pkg.config.specs.gateway import ServerTLSSettings, ServerTLSSettings_TLSmode, TLSCertificate
from tests.helpers.consistency import assert_consistent
from tests.helpers.simulate import TLS, Call, CallMode, Error, Simulation, simulate_case
from tests.helpers.xds import FakeDiscovery, ProxySpec

TESTDATA = Path(__file__).resolve().parent / "testdata"
GATEWAY_IP = "10.10.1.1"
PRODUCTPAGE = "outbound|9080||productpage.default.svc.cluster.local"
PRODUCTPAGE_ENDPOINTS = ("10.10.0.10:9080",)
SAN = common_pb2.SubjectAltNameMatcher
BOOKINFO_ROUTE = "https.443.https-bookinfo.bookinfo-gateway.istio-system"
SECURE_ROUTE = "https.443.https-secure.bookinfo-gateway.istio-system"


def simulation(case: str, **overrides: Any) -> Simulation:
    return simulate_case(TESTDATA / f"{case}.yaml", **overrides)


def https(host: str, *, sni: str | None = None, port: int = 443, **kwargs: Any) -> Call:
    kwargs.setdefault("tls", TLS.TLS)
    kwargs.setdefault("scheme", "https")
    return Call(
        address=GATEWAY_IP,
        port=port,
        host=host,
        sni=host if sni is None else sni,
        mode=CallMode.DIRECT,
        **kwargs,
    )


def transport(result: Any) -> Any:
    context = tls_pb2.DownstreamTlsContext()
    assert result.chain_proto.transport_socket.typed_config.Unpack(context)
    return context


# ---- gateway-https: SNI selects the server -------------------------------------------------


def test_simple_server_terminates_tls_and_routes_to_productpage() -> None:
    result = simulation("gateway-https").run(https("bookinfo.example.com", path="/productpage"))
    assert result.error is None, result
    assert result.listener == "0.0.0.0_443"
    assert result.filter_chain == BOOKINFO_ROUTE
    assert result.terminates_tls
    assert result.route_config == BOOKINFO_ROUTE
    assert result.virtual_host == "bookinfo.example.com:443"
    assert result.cluster == PRODUCTPAGE
    assert result.endpoints == PRODUCTPAGE_ENDPOINTS
    context = transport(result)
    certs = context.common_tls_context.tls_certificate_sds_secret_configs
    assert [c.name for c in certs] == ["kubernetes://bookinfo-cert"]
    assert not context.require_client_certificate.value
    assert list(context.common_tls_context.alpn_protocols) == ["h2", "http/1.1"]


def test_mutual_server_requires_a_client_certificate() -> None:
    sim = simulation("gateway-https")
    without = sim.run(https("secure.example.com"))
    assert without.error is Error.TLS_ERROR
    assert without.filter_chain == SECURE_ROUTE

    with_cert = sim.run(https("secure.example.com", tls=TLS.MTLS))
    assert with_cert.error is None, with_cert
    assert with_cert.route_config == SECURE_ROUTE
    assert with_cert.cluster == PRODUCTPAGE
    context = transport(with_cert)
    assert context.require_client_certificate.value
    combined = context.common_tls_context.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == "kubernetes://secure-cert-cacert"


def test_each_https_server_has_its_own_route_configuration() -> None:
    # Istio: gatewayRDSRouteName — an HTTPS server's Host header is routed only by the route
    # configuration of the chain its SNI selected.
    sim = simulation("gateway-https")
    crossed = sim.run(https("secure.example.com", sni="bookinfo.example.com"))
    assert crossed.route_config == BOOKINFO_ROUTE
    assert crossed.error is Error.NO_VIRTUAL_HOST


@pytest.mark.parametrize("sni", ["unknown.example.com", ""])
def test_unknown_or_missing_sni_matches_no_chain(sni: str) -> None:
    result = simulation("gateway-https").run(https("bookinfo.example.com", sni=sni))
    assert result.error is Error.NO_FILTER_CHAIN
    assert result.listener == "0.0.0.0_443"


def test_plaintext_to_https_port_fails() -> None:
    result = simulation("gateway-https").run(
        https("bookinfo.example.com", tls=TLS.PLAINTEXT, scheme="http")
    )
    assert result.error is Error.NO_FILTER_CHAIN  # every chain wants an SNI


@pytest.mark.parametrize("host", ["bookinfo.example.com", "secure.example.com"])
def test_http_server_with_https_redirect_sends_301(host: str) -> None:
    # Istio: buildGatewayHTTPRouteConfig sets RequireTls ALL for httpsRedirect servers.
    call = Call(address=GATEWAY_IP, port=80, host=host, mode=CallMode.DIRECT)
    result = simulation("gateway-https").run(call)
    assert result.error is Error.TLS_REDIRECT
    assert result.route_config == "http.80"
    assert result.virtual_host == f"{host}:80"
    assert not result.terminates_tls


def test_https_listener_reads_sni_with_the_tls_inspector() -> None:
    sim = simulation("gateway-https")
    listener = sim.listeners["0.0.0.0_443"]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    assert not sim.listeners["0.0.0.0_80"].listener_filters
    names = {c.name: list(c.filter_chain_match.server_names) for c in listener.filter_chains}
    assert names == {
        BOOKINFO_ROUTE: ["bookinfo.example.com"],
        SECURE_ROUTE: ["secure.example.com"],  # "default/" stripped
    }


def test_unauthenticated_gateway_skips_servers_needing_sds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # istiod serves credentialName secrets only to proxies with a verified identity; a
    # listener waiting for them would hold the whole proxy at start, so the servers are left out.
    with caplog.at_level(logging.WARNING, logger="pilot.networking.listener_gateway"):
        sim = simulation("gateway-https", authenticated=False)
    assert "0.0.0.0_443" not in sim.listeners
    assert "0.0.0.0_80" in sim.listeners
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert any(
        "istio-system/bookinfo-gateway" in m and "https-secure" in m and "identity" in m
        for m in skipped
    ), skipped


# ---- gateway-https-modes: TLS settings --------------------------------------------------------


def test_tls_parameters_and_named_server_stat_prefix() -> None:
    sim = simulation("gateway-https-modes")
    result = sim.run(https("shop.example.com"))
    assert result.error is None, result
    assert result.cluster == PRODUCTPAGE
    params = transport(result).common_tls_context.tls_params
    assert params.tls_minimum_protocol_version == params.TLSv1_2
    assert params.tls_maximum_protocol_version == params.TLSv1_3
    # Istio: FilterCipherSuites drops duplicates and suites BoringSSL does not know.
    assert list(params.cipher_suites) == [
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
    ]
    certs = transport(result).common_tls_context.tls_certificate_sds_secret_configs
    assert [c.name for c in certs] == ["kubernetes://wildcard-cert"]


def test_most_specific_sni_wins_over_wildcard_server() -> None:
    sim = simulation("gateway-https-modes")
    partners = sim.run(https("partners.example.com", tls=TLS.MTLS))
    assert partners.route_config == "https.443.https-partners.edge.istio-system"
    validation = transport(partners).common_tls_context.combined_validation_context
    sans = validation.default_validation_context.match_typed_subject_alt_names
    assert [(m.san_type, m.matcher.exact) for m in sans] == [
        (SAN.DNS, "client.partners.example.com"),
        (SAN.URI, "spiffe://partners.example.com/ns/a/sa/client"),
    ]
    assert sim.run(https("partners.example.com")).error is Error.TLS_ERROR


def test_istio_mutual_server_uses_the_proxy_certificate() -> None:
    sim = simulation("gateway-https-modes")
    result = sim.run(https("shop.example.com", sni="", port=8443, tls=TLS.MTLS))
    assert result.error is None, result
    assert result.route_config == "https.8443.https-mesh.edge.istio-system"
    assert not result.chain_proto.HasField("filter_chain_match")  # hosts "*": any SNI
    common = transport(result).common_tls_context
    assert [c.name for c in common.tls_certificate_sds_secret_configs] == ["default"]
    assert common.combined_validation_context.validation_context_sds_secret_config.name == (
        "ROOTCA"
    )
    assert not common.HasField("tls_params")
    assert sim.run(https("shop.example.com", port=8443)).error is Error.TLS_ERROR
    plaintext = sim.run(https("shop.example.com", port=8443, tls=TLS.PLAINTEXT))
    assert plaintext.error is Error.TLS_ERROR


# ---- certificate files (no SDS) -------------------------------------------------------------

FILE_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: files, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["files.example.com"]
    tls:
      mode: MUTUAL
      serverCertificate: /etc/certs/tls.crt
      privateKey: /etc/certs/tls.key
      caCertificates: /etc/certs/ca.crt
      minProtocolVersion: TLSV1_3
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: files, namespace: istio-system}
spec:
  hosts: ["files.example.com"]
  gateways: [files]
  http:
  - route:
    - destination: {host: files.internal, port: {number: 80}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: files, namespace: istio-system}
spec:
  hosts: [files.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.30.0.1}]
"""

ROUTER = ProxySpec(
    type="router",
    ip="10.10.1.1",
    name="istio-ingressgateway-6b77dd9b4c-q8k2z.istio-system",
    labels={"istio": "ingressgateway"},
)


def test_certificate_files_are_read_by_envoy_without_an_identity() -> None:
    resources = FakeDiscovery(FILE_GATEWAY).resources(ROUTER)
    assert_consistent(resources)
    result = Simulation(resources).run(https("files.example.com", tls=TLS.MTLS))
    assert result.route_config == "https.443.https.files.istio-system"
    common = transport(result).common_tls_context
    assert not common.tls_certificate_sds_secret_configs
    [cert] = common.tls_certificates
    assert cert.certificate_chain.filename == "/etc/certs/tls.crt"
    assert cert.private_key.filename == "/etc/certs/tls.key"
    assert common.validation_context.trusted_ca.filename == "/etc/certs/ca.crt"
    assert common.tls_params.tls_minimum_protocol_version == common.tls_params.TLSv1_3
    assert transport(result).require_client_certificate.value


# ---- the builders on their own ---------------------------------------------------------------


def _settings(**kwargs: Any) -> ServerTLSSettings:
    return ServerTLSSettings(**kwargs)


SIMPLE = ServerTLSSettings_TLSmode.SIMPLE
MUTUAL = ServerTLSSettings_TLSmode.MUTUAL


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (_settings(mode=SIMPLE), "needs a credentialName"),
        (_settings(mode=SIMPLE, server_certificate="/c.pem"), "needs a credentialName"),
        (
            _settings(mode=MUTUAL, server_certificate="/c.pem", private_key="/k.pem"),
            "needs caCertificates",
        ),
        (_settings(mode=ServerTLSSettings_TLSmode.PASSTHROUGH), "does not terminate"),
        (_settings(mode=SIMPLE, credential_name="c"), ""),
        (_settings(mode=SIMPLE, server_certificate="/c.pem", private_key="/k.pem"), ""),
        (
            _settings(mode=SIMPLE, tls_certificates=(TLSCertificate("/a.pem", "/a.key"),)),
            "",
        ),
    ],
)
def test_certificate_problems(settings: ServerTLSSettings, problem: str) -> None:
    found = gateway_certificate_problem(settings, has_identity=True)
    assert (problem in found) if problem else found == ""


def test_sds_sources_need_an_identity() -> None:
    for settings in (
        _settings(mode=SIMPLE, credential_name="c"),
        _settings(mode=ServerTLSSettings_TLSmode.ISTIO_MUTUAL),
    ):
        assert "identity" in gateway_certificate_problem(settings, has_identity=False)
    files = _settings(mode=SIMPLE, server_certificate="/c.pem", private_key="/k.pem")
    assert gateway_certificate_problem(files, has_identity=False) == ""


@pytest.mark.parametrize(
    ("name", "resource"),
    [
        ("bookinfo-cert", "kubernetes://bookinfo-cert"),
        ("kubernetes://bookinfo-cert", "kubernetes://bookinfo-cert"),
        ("kubernetes://other-ns/cert", "kubernetes://other-ns/cert"),
        ("sds://vault/cert", "sds://vault/cert"),
        ("builtin://", "default"),
        ("builtin://-cacert", "ROOTCA"),
    ],
)
def test_credential_resource_names(name: str, resource: str) -> None:
    assert credential_resource_name(name) == resource


def test_mutual_with_prefixed_credential_keeps_prefix_for_the_ca() -> None:
    context = gateway_server_downstream(
        _settings(mode=MUTUAL, credential_name="kubernetes://ns1/cert")
    )
    common = context.common_tls_context
    assert common.tls_certificate_sds_secret_configs[0].name == "kubernetes://ns1/cert"
    ca = common.combined_validation_context.validation_context_sds_secret_config
    assert ca.name == "kubernetes://ns1/cert-cacert"


def test_optional_mutual_validates_without_requiring() -> None:
    context = gateway_server_downstream(
        _settings(mode=ServerTLSSettings_TLSmode.OPTIONAL_MUTUAL, credential_name="c")
    )
    assert not context.require_client_certificate.value
    assert context.common_tls_context.HasField("combined_validation_context")


def test_simple_subject_alt_names_add_no_ca_less_validation() -> None:
    # Envoy rejects SAN checks without a trusted CA; SIMPLE asks clients for no certificate.
    context = gateway_server_downstream(
        _settings(mode=SIMPLE, credential_name="c", subject_alt_names=("a.example.com",))
    )
    common = context.common_tls_context
    assert not common.HasField("validation_context")
    assert not common.HasField("combined_validation_context")


def test_cipher_suite_filter() -> None:
    assert filter_cipher_suites(["AES128-SHA", "bogus", "AES128-SHA", "-ALL", "ALL"]) == [
        "AES128-SHA",
        "-ALL",
        "ALL",
    ]


@pytest.mark.parametrize(
    ("hosts", "names"),
    [
        (("b.example.com", "a.example.com"), ["a.example.com", "b.example.com"]),
        (("ns/a.example.com", "a.example.com"), ["a.example.com"]),
        (("*",), []),
        (("a.example.com", "*"), []),
        (("*.example.com",), ["*.example.com"]),
    ],
)
def test_sni_hosts(hosts: tuple[str, ...], names: list[str]) -> None:
    assert sni_hosts(hosts) == names
