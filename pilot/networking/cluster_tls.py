"""Upstream TLS of an outbound cluster (Istio's cluster_tls.go): DestinationRule `tls`, else auto
mTLS.

- DISABLE: plaintext, and no auto mTLS either.
- ISTIO_MUTUAL: the mesh certificate (`default`) and trust bundle (`ROOTCA`), SNI the DR's or the
  DNS-SRV cluster key, server SANs the DR's or the service accounts. Only for a proxy with an
  identity (a plaintext-xDS proxy has no certificate).
- SIMPLE / MUTUAL with `credentialName`: the secret over SDS (`kubernetes://NAME`, its CA in
  `kubernetes://NAME-cacert`). As in Istio, a sidecar may only use one from a DestinationRule
  with a workloadSelector; otherwise its cluster gets no TLS.
- SIMPLE / MUTUAL with files: `caCertificates` (else the system bundle), `clientCertificate` and
  `privateKey`, `caCrl`; Envoy reads them itself (Istio's agent serves them as SDS resources;
  pyistio has no agent). `insecureSkipVerify` drops verification.
- SIMPLE / MUTUAL without `sni`: `auto_sni` (SNI from the request's Host) and, without SANs,
  `auto_san_validation`, in the cluster's HTTP protocol options. A ServiceEntry's
  subjectAltNames stand in for missing SANs. ALPN `h2` for HTTP/2 clusters.
- No `tls`: auto mTLS (mesh `enableAutoMtls`) — mTLS to endpoints labelled `tlsMode: istio`,
  plaintext to others — except for external services, ORIGINAL_DST clusters and namespaces
  whose PeerAuthentication disables mTLS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from pilot.model.peer_authentication import MTLSMode
from pilot.model.proxy_view import ProxyView
from pilot.model.service import Registry, Service, ServicePort
from pilot.networking import naming
from pilot.networking.tls import (
    ALPN_MESH_H2,
    ALPN_MESH_HTTP11,
    ALPN_MESH_TCP,
    CA_SUFFIX,
    SYSTEM_CA_BUNDLE,
    auto_mtls_matches,
    istio_mutual_upstream,
    san_matchers,
    sds_secret_config,
    transport_socket,
)
from pkg.config.specs.destination_rule import ClientTLSSettings_TLSmode as Mode

_CONFIGMAP_PREFIX = "configmap://"


def is_h2(options: Any | None) -> bool:
    return (
        options is not None
        and options.WhichOneof("upstream_protocol_options") == "explicit_http_config"
        and options.explicit_http_config.HasField("http2_protocol_options")
    )


def _mesh_alpn(port: ServicePort, options: Any | None) -> tuple[str, ...]:
    which = options.WhichOneof("upstream_protocol_options") if options is not None else None
    if which == "use_downstream_protocol_config":
        return ("istio-http/1.1", "istio-h2", "istio")
    if is_h2(options):
        return ALPN_MESH_H2
    if port.protocol.is_http:
        return ALPN_MESH_HTTP11
    return ALPN_MESH_TCP


def apply_tls(
    c: Any,
    view: ProxyView,
    svc: Service,
    port: ServicePort,
    subset: str,
    tls: Any,
    dr_has_selector: bool,
    options: Any | None,
) -> Any | None:
    """Set the cluster's transport socket(s); returns the (maybe new) HTTP protocol options."""
    has_identity = view.proxy.identity is not None
    sni = naming.dns_srv_subset_key(port.port, subset, svc.hostname)
    if tls is not None:
        mode = tls.mode
        if mode == Mode.ISTIO_MUTUAL and has_identity:
            sans = tuple(tls.subject_alt_names) or svc.service_accounts
            context = istio_mutual_upstream(tls.sni or sni, sans, _mesh_alpn(port, options))
            c.transport_socket.CopyFrom(transport_socket(context))
        elif mode in (Mode.SIMPLE, Mode.MUTUAL):
            privileged = bool(tls.credential_name) and not tls.credential_name.startswith(
                _CONFIGMAP_PREFIX
            )
            if privileged and not view.is_router and not dr_has_selector:
                return options
            sans = tuple(tls.subject_alt_names)
            if not sans and svc.registry is Registry.EXTERNAL:
                sans = svc.service_accounts
            context = _simple_or_mutual(tls, sans, mode == Mode.MUTUAL, is_h2(options))
            c.transport_socket.CopyFrom(transport_socket(context))
            options = _auto_sni(tls, options)
        return options
    mesh = view.push.mesh
    if (
        not has_identity
        or not mesh.enable_auto_mtls
        or svc.mesh_external
        or c.type == cluster_pb2.Cluster.ORIGINAL_DST
        or view.push.peer_authentication.namespace_mode(svc.namespace) is MTLSMode.DISABLE
    ):
        return options
    context = istio_mutual_upstream(sni, svc.service_accounts, _mesh_alpn(port, options))
    c.transport_socket_matches.extend(auto_mtls_matches(context))
    return options


def credential_resource(name: str) -> str:
    """credentialName → SDS resource name (`kubernetes://name`), as Istio normalizes it."""
    if not name or "://" in name:
        return name
    return f"kubernetes://{name}"


def _simple_or_mutual(tls: Any, sans: Sequence[str], mutual: bool, h2: bool) -> Any:
    common = tls_pb2.CommonTlsContext()
    common.tls_params.tls_minimum_protocol_version = common_pb2.TlsParameters.TLSv1_2
    common.tls_params.tls_maximum_protocol_version = common_pb2.TlsParameters.TLSv1_3
    if h2:
        common.alpn_protocols.append("h2")
    credential = credential_resource(tls.credential_name)
    if credential:
        if mutual:
            common.tls_certificate_sds_secret_configs.append(sds_secret_config(credential))
        combined = common.combined_validation_context
        combined.default_validation_context.match_typed_subject_alt_names.extend(san_matchers(sans))
        combined.validation_context_sds_secret_config.CopyFrom(
            sds_secret_config(f"{credential}{CA_SUFFIX}")
        )
        return tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=tls.sni)
    if mutual:
        pair = common.tls_certificates.add()
        pair.certificate_chain.filename = tls.client_certificate
        pair.private_key.filename = tls.private_key
    if tls.insecure_skip_verify:
        common.validation_context.SetInParent()
    else:
        validation = common.validation_context
        validation.trusted_ca.filename = tls.ca_certificates or SYSTEM_CA_BUNDLE
        validation.match_typed_subject_alt_names.extend(san_matchers(sans))
        if tls.ca_crl:
            validation.crl.filename = tls.ca_crl
    return tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=tls.sni)


def _auto_sni(tls: Any, options: Any | None) -> Any | None:
    """setAutoSniAndAutoSanValidation for SIMPLE/MUTUAL without an explicit SNI."""
    if tls.sni:
        return options
    options = options or http_protocol_options_pb2.HttpProtocolOptions()
    upstream = options.upstream_http_protocol_options
    upstream.auto_sni = True
    if not tls.subject_alt_names and not tls.insecure_skip_verify:
        upstream.auto_san_validation = True
    return options
