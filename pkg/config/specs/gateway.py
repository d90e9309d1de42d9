"""Gateway (networking/v1alpha3/gateway.proto).

Renames: `ServerTLSSettings.TLSmode` → `ServerTLSSettings_TLSmode` (DestinationRule's
ClientTLSSettings has its own TLSmode). `ServerTLSSettings.TLSCertificate` → `TLSCertificate`,
`ServerTLSSettings.TLSProtocol` → `TLSProtocol`. `ServerTLSSettings` is also used by the
Sidecar ingress listeners.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pkg.config.fields import mapping, repeated, schema, string, uint32, wrapper


@dataclass(frozen=True, slots=True)
class Port:
    number: int = uint32(required=True)
    protocol: str = string(required=True)
    name: str = string(required=True)
    target_port: int = uint32()  # deprecated: has no effect on gateways


class ServerTLSSettings_TLSmode(StrEnum):
    PASSTHROUGH = "PASSTHROUGH"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    AUTO_PASSTHROUGH = "AUTO_PASSTHROUGH"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"
    OPTIONAL_MUTUAL = "OPTIONAL_MUTUAL"


class TLSProtocol(StrEnum):
    TLS_AUTO = "TLS_AUTO"
    TLSV1_0 = "TLSV1_0"
    TLSV1_1 = "TLSV1_1"
    TLSV1_2 = "TLSV1_2"
    TLSV1_3 = "TLSV1_3"


@dataclass(frozen=True, slots=True)
class TLSCertificate:
    server_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""


@dataclass(frozen=True, slots=True)
class ServerTLSSettings:
    https_redirect: bool = False
    mode: ServerTLSSettings_TLSmode = ServerTLSSettings_TLSmode.PASSTHROUGH
    server_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    ca_crl: str = ""
    credential_name: str = ""
    credential_names: tuple[str, ...] = repeated(min_items=1, max_items=2)
    ca_cert_credential_name: str = ""
    tls_certificates: tuple[TLSCertificate, ...] = repeated(min_items=1, max_items=2)
    subject_alt_names: tuple[str, ...] = ()
    verify_certificate_spki: tuple[str, ...] = ()
    verify_certificate_hash: tuple[str, ...] = ()
    min_protocol_version: TLSProtocol = TLSProtocol.TLS_AUTO
    max_protocol_version: TLSProtocol = TLSProtocol.TLS_AUTO
    cipher_suites: tuple[str, ...] = ()
    insecure_skip_verify: bool | None = wrapper()
    ecdh_curves: tuple[str, ...] = ()  # newer API (istio/istio CRDs of 2026-08)


@dataclass(frozen=True, slots=True)
class Server:
    port: Port | None = field(default=None, metadata=schema(required=True))
    bind: str = ""
    hosts: tuple[str, ...] = repeated(required=True)
    tls: ServerTLSSettings | None = None
    default_endpoint: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class Gateway:
    servers: tuple[Server, ...] = ()
    selector: Mapping[str, str] = mapping()


__all__ = [
    "Gateway",
    "Port",
    "Server",
    "ServerTLSSettings",
    "ServerTLSSettings_TLSmode",
    "TLSCertificate",
    "TLSProtocol",
]
