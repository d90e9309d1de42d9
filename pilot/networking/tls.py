"""TLS contexts for mutual TLS between sidecars, and for gateways' credentialName secrets.

Certificates always come over SDS on the ADS stream: `default` (the workload's key and SPIFFE
certificate) and `ROOTCA` (the trust bundle), or `kubernetes://<secret>` for gateways.

ALPN: Istio's proxies set per-request ALPN (`istio-http/1.1`, `istio-h2`) with the istio.alpn
filter, which plain Envoy does not have; pyistio's clusters advertise it statically instead
(`istio-http/1.1` for HTTP/1.x clusters, `istio-h2` for HTTP/2 ones, `istio-peer-exchange` for
TCP), always followed by `istio`, so a server picks the same filter chains Istio's would.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2

from pilot.networking import naming
from pilot.networking.protos import ads_config_source, to_any, to_struct
from pkg.config.validation.gateway import VALID_CIPHER_SUITES

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


def san_matchers(names: Sequence[str]) -> list[Any]:
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


# ---- Gateway servers that terminate TLS (Istio's BuildListenerTLSContext) -------------------

# What an HTTPS gateway server offers (Istio's util.ALPNHttp).
ALPN_HTTP = ("h2", "http/1.1")

BUILTIN_PREFIX = "builtin://"

# Gateway `tls.cipherSuites` outside VALID_CIPHER_SUITES (Istio's ValidCipherSuites, what
# Envoy's BoringSSL accepts) are dropped rather than sent to Envoy to be NACKed. Expressions
# starting with an operator (`-`, `+`, `!`, `[`) pass through, as in Istio.

_TLS_PROTOCOLS = {
    "TLS_AUTO": common_pb2.TlsParameters.TLS_AUTO,
    "TLSV1_0": common_pb2.TlsParameters.TLSv1_0,
    "TLSV1_1": common_pb2.TlsParameters.TLSv1_1,
    "TLSV1_2": common_pb2.TlsParameters.TLSv1_2,
    "TLSV1_3": common_pb2.TlsParameters.TLSv1_3,
}

ACCEPT_UNTRUSTED = common_pb2.CertificateValidationContext.ACCEPT_UNTRUSTED

# Server TLS modes that terminate TLS, and those of them that check client certificates.
TERMINATING_MODES = frozenset({"SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL", "ISTIO_MUTUAL"})
_CLIENT_VALIDATING_MODES = frozenset({"MUTUAL", "OPTIONAL_MUTUAL", "ISTIO_MUTUAL"})


def credential_resource_name(name: str) -> str:
    """A credentialName as the SDS resource name istiod serves it under (Istio's
    credentials.ToResourceName): a bare name is a Secret, `kubernetes://NAME`; a name that
    already says where it comes from (`kubernetes://`, `sds://`, ...) is kept as written;
    `builtin://` is the proxy's own `default` certificate (and `builtin://-cacert`, ROOTCA)."""
    if name.startswith(BUILTIN_PREFIX):
        return naming.SDS_ROOT_CA if name.endswith(CA_SUFFIX) else naming.SDS_DEFAULT
    if "://" in name:
        return name
    return f"kubernetes://{name}"


def filter_cipher_suites(suites: Sequence[str]) -> list[str]:
    """Valid cipher suites, first occurrence only (Istio's FilterCipherSuites)."""
    out: list[str] = []
    for suite in suites:
        valid = suite in ("", "ALL") or not suite[:1].isalnum() or suite in VALID_CIPHER_SUITES
        if valid and suite not in out:
            out.append(suite)
    return out


def tls_protocol(value: object) -> int:
    """A Gateway TLSProtocol (TLSV1_0 ... TLSV1_3, TLS_AUTO) as Envoy's TlsProtocol."""
    return int(_TLS_PROTOCOLS.get(str(value), common_pb2.TlsParameters.TLS_AUTO))


def _client_san_matchers(names: Sequence[str]) -> list[Any]:
    """Exact matchers for a client certificate's subjectAltNames. Istio writes untyped matchers
    (any SAN type); typed ones need a type, read from the name's shape: a URI (`spiffe://...`
    or any `scheme://`), an IP address, an email address, else a DNS name."""
    out = []
    for name in names:
        if "://" in name:
            san_type = common_pb2.SubjectAltNameMatcher.URI
        elif "@" in name:
            san_type = common_pb2.SubjectAltNameMatcher.EMAIL
        elif _is_ip(name):
            san_type = common_pb2.SubjectAltNameMatcher.IP_ADDRESS
        else:
            san_type = common_pb2.SubjectAltNameMatcher.DNS
        out.append(
            common_pb2.SubjectAltNameMatcher(
                san_type=san_type, matcher=string_pb2.StringMatcher(exact=name)
            )
        )
    return out


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def gateway_certificate_problem(settings: Any, has_identity: bool) -> str:
    """Why a terminating Gateway server's TLS settings cannot make a DownstreamTlsContext for
    this proxy ("" when they can). Istio's validation rejects the first two; the last is
    pyistio's: SDS secrets (credentialName, ISTIO_MUTUAL's `default`) are only served to a
    proxy with a verified identity, and a listener waiting on a secret that never comes blocks
    the proxy's start."""
    mode = str(settings.mode)
    if mode not in TERMINATING_MODES:
        return f"TLS mode {mode} does not terminate TLS"
    uses_sds = mode == "ISTIO_MUTUAL" or bool(settings.credential_name or settings.credential_names)
    if not uses_sds:
        files = _file_certificates(settings)
        if not files:
            return (
                f"{mode} TLS needs a credentialName, or serverCertificate and privateKey "
                "(or tlsCertificates)"
            )
        if mode != "SIMPLE" and not settings.ca_certificates:
            return f"{mode} TLS with certificate files needs caCertificates"
    if uses_sds and not has_identity:
        return "the proxy has no verified identity, so istiod serves it no certificates over SDS"
    return ""


def _file_certificates(settings: Any) -> list[tuple[str, str]]:
    if settings.tls_certificates:
        pairs = [(c.server_certificate, c.private_key) for c in settings.tls_certificates]
    else:
        pairs = [(settings.server_certificate, settings.private_key)]
    return [(cert, key) for cert, key in pairs if cert and key]


def gateway_server_downstream(settings: Any, alpn: Sequence[str] = ALPN_HTTP) -> Any:
    """DownstreamTlsContext of a Gateway server terminating TLS (SIMPLE, MUTUAL,
    OPTIONAL_MUTUAL, ISTIO_MUTUAL); check `gateway_certificate_problem` first.

    - ISTIO_MUTUAL: the proxy's `default` certificate, clients verified against `ROOTCA`;
    - credentialName(s): certificates from SDS (`kubernetes://NAME`), clients of MUTUAL verified
      against `kubernetes://NAME-cacert` (or caCertCredentialName);
    - else certificate files Envoy reads itself (pyistio has no agent to serve them over SDS).

    tls_params carry only what the server sets (min/max version, cipher suites, ECDH curves);
    unset, Envoy's server defaults apply: TLSv1.2 to TLSv1.3, as on Istio's gateways.
    """
    mode = str(settings.mode)
    out = tls_pb2.DownstreamTlsContext()
    common = out.common_tls_context
    common.alpn_protocols.extend(alpn)
    out.require_client_certificate.value = mode in ("MUTUAL", "ISTIO_MUTUAL")
    validate_client = mode in _CLIENT_VALIDATING_MODES
    sans = _client_san_matchers(settings.subject_alt_names)
    credentials = list(settings.credential_names) or (
        [settings.credential_name] if settings.credential_name else []
    )
    if mode == "ISTIO_MUTUAL":
        common.tls_certificate_sds_secret_configs.append(sds_secret_config(naming.SDS_DEFAULT))
        combined = common.combined_validation_context
        combined.default_validation_context.match_typed_subject_alt_names.extend(sans)
        combined.validation_context_sds_secret_config.CopyFrom(
            sds_secret_config(naming.SDS_ROOT_CA)
        )
    elif credentials:
        for name in credentials:
            common.tls_certificate_sds_secret_configs.append(
                sds_secret_config(credential_resource_name(name))
            )
        if validate_client:
            ca = settings.ca_cert_credential_name or f"{credentials[0]}{CA_SUFFIX}"
            combined = common.combined_validation_context
            default = combined.default_validation_context
            default.match_typed_subject_alt_names.extend(sans)
            default.verify_certificate_spki.extend(settings.verify_certificate_spki)
            default.verify_certificate_hash.extend(settings.verify_certificate_hash)
            if settings.insecure_skip_verify:
                default.trust_chain_verification = ACCEPT_UNTRUSTED
            combined.validation_context_sds_secret_config.CopyFrom(
                sds_secret_config(credential_resource_name(ca))
            )
        # SIMPLE with subjectAltNames: Istio adds a validation context with only SAN matchers,
        # which Envoy rejects (SAN checks without a trusted CA); clients are not asked for a
        # certificate anyway, so there is nothing to check.
    else:
        for cert, key in _file_certificates(settings):
            certificate = common.tls_certificates.add()
            certificate.certificate_chain.filename = cert
            certificate.private_key.filename = key
        if validate_client:
            validation = common.validation_context
            validation.trusted_ca.filename = settings.ca_certificates
            validation.match_typed_subject_alt_names.extend(sans)
            if settings.ca_crl:
                validation.crl.filename = settings.ca_crl
            if settings.insecure_skip_verify:
                validation.trust_chain_verification = ACCEPT_UNTRUSTED
    if mode != "ISTIO_MUTUAL":
        _apply_server_tls_params(settings, common)
    return out


def _apply_server_tls_params(settings: Any, common: Any) -> None:
    """Istio's applyServerTLSSettings: only what the server sets."""
    params = common.tls_params
    minimum = tls_protocol(settings.min_protocol_version)
    maximum = tls_protocol(settings.max_protocol_version)
    if minimum != common_pb2.TlsParameters.TLS_AUTO:
        params.tls_minimum_protocol_version = minimum
    if maximum != common_pb2.TlsParameters.TLS_AUTO:
        params.tls_maximum_protocol_version = maximum
    params.ecdh_curves.extend(settings.ecdh_curves)
    params.cipher_suites.extend(filter_cipher_suites(settings.cipher_suites))
    if params.ByteSize() == 0:
        common.ClearField("tls_params")
