"""`proxy-config secret`: istioctl's SDS secret table (`compare/sds/util.go`, `writer.go`).

Columns `RESOURCE NAME  TYPE  STATUS  VALID CERT  SERIAL NUMBER  NOT AFTER  NOT BEFORE  TRUST
DOMAIN`, padding 5: warming secrets first, then active ones (STATUS `WARMING`, `ACTIVE`, or
`UNINITIALIZED` for an active secret whose version is "uninitialized"). The certificate shown
is the first of the secret's certificate chain, else of its trusted CA bundle, else one row per
trust domain of a SPIFFE certificate validator. TYPE is `CA` for a CA certificate, else `Cert
Chain`; VALID CERT is `true` while now lies between NOT BEFORE and NOT AFTER (RFC 3339, UTC);
the serial number is lowercase hex, at least 32 digits. TRUST DOMAIN is the validator's trust
domain, else the host of the certificate's `spiffe://` URI SAN, else `-`. istioctl adds that
column only when every row has a trust domain (which a mesh root CA never has); pyistio
always shows it. Nothing here ever reads a private key.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_spiffe_validator_config_pb2

from istioctl.proxyconfig.configdump import ConfigDump
from istioctl.proxyconfig.tabwriter import Table

HEADER = (
    "RESOURCE NAME",
    "TYPE",
    "STATUS",
    "VALID CERT",
    "SERIAL NUMBER",
    "NOT AFTER",
    "NOT BEFORE",
    "TRUST DOMAIN",
)
PADDING = 5
NO_SECRETS = "No active or warming secrets found."
SPIFFE_VALIDATOR = tls_spiffe_validator_config_pb2.SPIFFECertValidatorConfig.DESCRIPTOR.full_name


@dataclass(frozen=True)
class SecretItem:
    """One row: a secret (or one trust domain of it) and its certificate's facts."""

    name: str
    state: str
    type: str = ""
    valid: bool = False
    serial: str = ""
    not_after: str = ""
    not_before: str = ""
    trust_domain: str = ""

    def cells(self, with_prefix: bool) -> tuple[str, ...]:
        return (
            f"secret/{self.name}" if with_prefix else self.name,
            self.type,
            self.state,
            "true" if self.valid else "false",
            self.serial,
            self.not_after,
            self.not_before,
            self.trust_domain or "-",
        )


def items(dump: ConfigDump, now: datetime.datetime | None = None) -> list[SecretItem] | None:
    """The rows, or None when the dump holds no active or warming secret."""
    section = dump.secrets()
    if section is None or not (section.dynamic_active_secrets or section.dynamic_warming_secrets):
        return None
    moment = now or datetime.datetime.now(datetime.UTC)
    out: list[SecretItem] = []
    for entry in section.dynamic_warming_secrets:
        out.extend(_items(entry, "WARMING", moment))
    for entry in section.dynamic_active_secrets:
        state = "UNINITIALIZED" if entry.version_info == "uninitialized" else "ACTIVE"
        out.extend(_items(entry, state, moment))
    return out


def table(
    dump: ConfigDump, *, with_prefix: bool = False, now: datetime.datetime | None = None
) -> Table | str:
    """The table, or istioctl's one-line message when there is nothing to show."""
    rows = items(dump, now)
    if rows is None:
        return NO_SECRETS
    if not rows:
        return "No secret items to show."
    return Table(HEADER, tuple(r.cells(with_prefix) for r in rows), PADDING)


def _items(entry: Any, state: str, now: datetime.datetime) -> list[SecretItem]:
    secret = secret_pb2.Secret()
    if entry.HasField("secret"):
        secret.ParseFromString(entry.secret.value)
    chain = _inline(secret.tls_certificate.certificate_chain)
    trusted = _inline(secret.validation_context.trusted_ca)
    if chain:
        return [_item(entry.name, state, chain, "", now)]
    if trusted:
        return [_item(entry.name, state, trusted, "", now)]
    validator = secret.validation_context.custom_validator_config
    if validator.typed_config.type_url.endswith("/" + SPIFFE_VALIDATOR):
        spiffe = tls_spiffe_validator_config_pb2.SPIFFECertValidatorConfig()
        spiffe.ParseFromString(validator.typed_config.value)
        return [
            _item(entry.name, state, _inline(td.trust_bundle), td.name, now)
            for td in spiffe.trust_domains
        ]
    return [SecretItem(entry.name, state)]


def _inline(source: Any) -> bytes:
    which = source.WhichOneof("specifier")
    if which == "inline_bytes":
        return bytes(source.inline_bytes)
    if which == "inline_string":
        return str(source.inline_string).encode()
    return b""


def _item(
    name: str, state: str, pem: bytes, trust_domain: str, now: datetime.datetime
) -> SecretItem:
    """The facts of the first certificate in `pem` (an unreadable one: not valid, no facts)."""
    if not pem:
        return SecretItem(name, state, trust_domain=trust_domain)
    try:
        cert = x509.load_pem_x509_certificates(pem)[0]
    except ValueError:
        return SecretItem(name, state, trust_domain=trust_domain)
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    return SecretItem(
        name=name,
        state=state,
        type="CA" if _is_ca(cert) else "Cert Chain",
        valid=not_before < now < not_after,
        serial=f"{cert.serial_number:032x}",
        not_after=_rfc3339(not_after),
        not_before=_rfc3339(not_before),
        trust_domain=trust_domain or spiffe_trust_domain(cert),
    )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return bool(constraints.ca)


def spiffe_trust_domain(cert: x509.Certificate) -> str:
    """The trust domain of the certificate's (last) `spiffe://` URI SAN, or ``."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return ""
    found = ""
    for uri in sans.get_values_for_type(x509.UniformResourceIdentifier):
        scheme, sep, rest = uri.partition("://")
        if sep and scheme.lower() == "spiffe":
            found = rest.split("/", 1)[0]
    return found


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
