"""TLS contexts for mutual TLS between sidecars, and for gateways' credentialName secrets.

Certificates always come over SDS on the ADS stream: `default` (the workload's key and SPIFFE
certificate) and `ROOTCA` (the trust bundle), or `kubernetes://<secret>` for gateways.

ALPN: Istio's proxies set per-request ALPN (`istio-http/1.1`, `istio-h2`) with the istio.alpn
filter, which plain Envoy does not have; pyistio's clusters advertise it statically instead
(`istio-http/1.1` for HTTP/1.x clusters, `istio-h2` for HTTP/2 ones, `istio-peer-exchange` for
TCP), always followed by `istio`, so a server picks the same filter chains Istio's would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2

from pilot.networking import naming
from pilot.networking.protos import ads_config_source, to_any, to_struct

TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
RAW_BUFFER_TRANSPORT_SOCKET = "envoy.transport_sockets.raw_buffer"

# ALPN a sidecar client offers (see the module docstring).
ALPN_MESH_HTTP11 = ("istio-http/1.1", "istio")
ALPN_MESH_H2 = ("istio-h2", "istio", "h2")
ALPN_MESH_TCP = ("istio-peer-exchange", "istio")
# What inbound mTLS chains match (Istio's mtlsHTTPALPNs, mtlsTCPWithMxcALPNs, allIstioMtlsALPNs).
MTLS_HTTP_ALPNS = ("istio-http/1.0", "istio-http/1.1", "istio-h2")
MTLS_TCP_ALPNS = ("istio-peer-exchange", "istio")
ALL_ISTIO_MTLS_ALPNS = ("istio", "istio-peer-exchange", *MTLS_HTTP_ALPNS)

# Istio's default cipher suites for mesh mTLS.
CIPHER_SUITES = (
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
)


def sds_secret_config(name: str) -> Any:
    """A secret fetched over the ADS stream (no initial fetch timeout override, as Istio)."""
    source = ads_config_source(initial_fetch_timeout_zero=False)
    return secret_pb2.SdsSecretConfig(name=name, sds_config=source)


def _exact_uris(uris: Sequence[str]) -> list[Any]:
    return [
        common_pb2.SubjectAltNameMatcher(
            san_type=common_pb2.SubjectAltNameMatcher.URI,
            matcher=string_pb2.StringMatcher(exact=uri),
        )
        for uri in uris
    ]


def _exact_sans(names: Sequence[str]) -> list[Any]:
    """SPIFFE ids match URI SANs; any other name matches DNS SANs."""
    return [
        common_pb2.SubjectAltNameMatcher(
            san_type=common_pb2.SubjectAltNameMatcher.URI
            if name.startswith("spiffe://")
            else common_pb2.SubjectAltNameMatcher.DNS,
            matcher=string_pb2.StringMatcher(exact=name),
        )
        for name in names
    ]


def _tls_params(minimum: int = common_pb2.TlsParameters.TLSv1_2) -> Any:
    return common_pb2.TlsParameters(
        tls_minimum_protocol_version=minimum,
        tls_maximum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
    )


def istio_mutual_upstream(sni: str, subject_alt_names: Sequence[str], alpn: Sequence[str]) -> Any:
    """UpstreamTlsContext for ISTIO_MUTUAL: present `default`, trust `ROOTCA`, and check the
    server's SPIFFE id against the destination's service accounts (when known)."""
    common = tls_pb2.CommonTlsContext(tls_params=_tls_params(), alpn_protocols=list(alpn))
    common.tls_certificate_sds_secret_configs.append(sds_secret_config(naming.SDS_DEFAULT))
    combined = common.combined_validation_context
    combined.default_validation_context.match_typed_subject_alt_names.extend(
        _exact_uris(subject_alt_names)
    )
    combined.validation_context_sds_secret_config.CopyFrom(sds_secret_config(naming.SDS_ROOT_CA))
    return tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=sni)


# Where Envoy finds the system's CA bundle (Istio's agent serves it as `file-root:system`).
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def simple_upstream(
    sni: str,
    subject_alt_names: Sequence[str],
    credential: str,
    mutual: bool,
    alpn: Sequence[str],
    insecure_skip_verify: bool = False,
) -> Any:
    """UpstreamTlsContext for DestinationRule SIMPLE/MUTUAL: certificates from a credentialName
    secret, or, without one, the server verified against the system's CA bundle."""
    common = tls_pb2.CommonTlsContext(tls_params=_tls_params(), alpn_protocols=list(alpn))
    if not credential:
        if not insecure_skip_verify:
            validation = common.validation_context
            validation.trusted_ca.filename = SYSTEM_CA_BUNDLE
            validation.match_typed_subject_alt_names.extend(_exact_sans(subject_alt_names))
    else:
        if mutual:
            common.tls_certificate_sds_secret_configs.append(sds_secret_config(credential))
        combined = common.combined_validation_context
        combined.default_validation_context.match_typed_subject_alt_names.extend(
            _exact_sans(subject_alt_names)
        )
        combined.validation_context_sds_secret_config.CopyFrom(
            sds_secret_config(f"{credential}{CA_SUFFIX}")
        )
    return tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=sni)


CA_SUFFIX = "-cacert"


def transport_socket(context: Any) -> Any:
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=to_any(context))


def raw_buffer_socket() -> Any:
    return base_pb2.TransportSocket(
        name=RAW_BUFFER_TRANSPORT_SOCKET, typed_config=to_any(raw_buffer_pb2.RawBuffer())
    )


def auto_mtls_matches(context: Any) -> list[Any]:
    """Istio's auto mTLS: mTLS to endpoints labelled tlsMode: istio, plaintext to the rest."""
    istio = cluster_pb2.Cluster.TransportSocketMatch(
        name="tlsMode-istio",
        match=to_struct({"tlsMode": "istio"}),
        transport_socket=transport_socket(context),
    )
    plain = cluster_pb2.Cluster.TransportSocketMatch(
        name="tlsMode-disabled", match=to_struct({}), transport_socket=raw_buffer_socket()
    )
    return [istio, plain]


def mesh_downstream(trust_domains: Sequence[str], alpn: Sequence[str]) -> Any:
    """DownstreamTlsContext of an inbound mTLS chain: present `default`, require a client
    certificate chained to `ROOTCA` whose SPIFFE id is in one of the mesh's trust domains."""
    common = tls_pb2.CommonTlsContext(tls_params=_tls_params(), alpn_protocols=list(alpn))
    common.tls_params.cipher_suites.extend(CIPHER_SUITES)
    common.tls_certificate_sds_secret_configs.append(sds_secret_config(naming.SDS_DEFAULT))
    combined = common.combined_validation_context
    for domain in trust_domains:
        combined.default_validation_context.match_typed_subject_alt_names.append(
            common_pb2.SubjectAltNameMatcher(
                san_type=common_pb2.SubjectAltNameMatcher.URI,
                matcher=string_pb2.StringMatcher(prefix=f"spiffe://{domain}/"),
            )
        )
    combined.validation_context_sds_secret_config.CopyFrom(sds_secret_config(naming.SDS_ROOT_CA))
    out = tls_pb2.DownstreamTlsContext(common_tls_context=common)
    out.require_client_certificate.value = True
    return out


def gateway_downstream(credential: str, mutual: bool, alpn: Sequence[str]) -> Any:
    """DownstreamTlsContext of a Gateway server with a credentialName (SIMPLE or MUTUAL)."""
    common = tls_pb2.CommonTlsContext(tls_params=_tls_params(), alpn_protocols=list(alpn))
    common.tls_certificate_sds_secret_configs.append(sds_secret_config(credential))
    out = tls_pb2.DownstreamTlsContext(common_tls_context=common)
    if mutual:
        common.validation_context_sds_secret_config.CopyFrom(
            sds_secret_config(f"{credential}{CA_SUFFIX}")
        )
        out.require_client_certificate.value = True
    return out
