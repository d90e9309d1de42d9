"""security.istio.io specs: AuthorizationPolicy, PeerAuthentication, RequestAuthentication
(security/v1beta1/*.proto; v1 is the same schema).

Renames: `AuthorizationPolicy.Action` → `Action`, `AuthorizationPolicy.ExtensionProvider` →
`ExtensionProvider`, `Rule.From` → `From`, `Rule.To` → `To`, `PeerAuthentication.MutualTLS`
→ `MutualTLS`, `MutualTLS.Mode` → `Mode`. `Rule.from` is `Rule.from_` in Python.
`PeerAuthentication.port_level_mtls` is a proto map<uint32, MutualTLS>; its keys stay strings as
written in YAML, and validation checks that they are ports. `WorkloadSelector` and
`PolicyTargetReference` are the `istio.type.v1beta1` messages from `pkg.config.types`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from pkg.config import fields
from pkg.config.fields import C, mapping, repeated, string, url_scheme
from pkg.config.types import Duration, PolicyTargetReference, WorkloadSelector

JWKS_URL = fields.Rule(
    lambda uri: url_scheme(uri) in ("http", "https"), "url must have scheme http:// or https://"
)


class Action(StrEnum):
    """AuthorizationPolicy.Action."""

    ALLOW = "ALLOW"
    DENY = "DENY"
    AUDIT = "AUDIT"
    CUSTOM = "CUSTOM"


@dataclass(frozen=True, slots=True)
class ExtensionProvider:
    name: str = ""


@dataclass(frozen=True, slots=True)
class Source:
    principals: tuple[str, ...] = ()
    not_principals: tuple[str, ...] = ()
    request_principals: tuple[str, ...] = ()
    not_request_principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    not_namespaces: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = repeated(max_items=16, items=C(max_len=320))
    not_service_accounts: tuple[str, ...] = repeated(max_items=16, items=C(max_len=320))
    ip_blocks: tuple[str, ...] = ()
    not_ip_blocks: tuple[str, ...] = ()
    remote_ip_blocks: tuple[str, ...] = ()
    not_remote_ip_blocks: tuple[str, ...] = ()
    trust_domains: tuple[str, ...] = ()
    not_trust_domains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    hosts: tuple[str, ...] = ()
    not_hosts: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    not_ports: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    not_methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    not_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Condition:
    key: str = string(required=True)
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class From:
    """Rule.From."""

    source: Source | None = None


@dataclass(frozen=True, slots=True)
class To:
    """Rule.To."""

    operation: Operation | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    from_: tuple[From, ...] = repeated(max_items=512)
    to: tuple[To, ...] = ()
    when: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthorizationPolicy:
    ONEOFS: ClassVar[tuple[tuple[str, ...], ...]] = (("provider",),)

    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = repeated(max_items=16)
    rules: tuple[Rule, ...] = repeated(max_items=512)
    action: Action = Action.ALLOW
    provider: ExtensionProvider | None = None


class Mode(StrEnum):
    """PeerAuthentication.MutualTLS.Mode."""

    UNSET = "UNSET"
    DISABLE = "DISABLE"
    PERMISSIVE = "PERMISSIVE"
    STRICT = "STRICT"


@dataclass(frozen=True, slots=True)
class MutualTLS:
    mode: Mode = Mode.UNSET


@dataclass(frozen=True, slots=True)
class PeerAuthentication:
    selector: WorkloadSelector | None = None
    mtls: MutualTLS | None = None
    port_level_mtls: Mapping[str, MutualTLS] = mapping(min_props=1)


@dataclass(frozen=True, slots=True)
class JWTHeader:
    name: str = string(required=True, min_len=1)
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class ClaimToHeader:
    header: str = string(required=True, min_len=1, pattern=r"^[-_A-Za-z0-9]+$")
    claim: str = string(required=True, min_len=1)


class Presence(StrEnum):
    """JWTRule.presence (newer API, from istio/istio's CRDs of 2026-08; name provisional)."""

    OPTIONAL = "OPTIONAL"
    REQUIRED = "REQUIRED"


@dataclass(frozen=True, slots=True)
class JWTRule:
    issuer: str = string(min_len=1)
    audiences: tuple[str, ...] = repeated(items=C(min_len=1))
    # The CRD also accepts the proto name `jwks_uri`.
    jwks_uri: str = string(min_len=1, max_len=2048, aliases=("jwks_uri",), rules=(JWKS_URL,))
    jwks: str = ""
    from_headers: tuple[JWTHeader, ...] = ()
    from_params: tuple[str, ...] = repeated(items=C(min_len=1))
    output_payload_to_header: str = ""
    from_cookies: tuple[str, ...] = repeated(items=C(min_len=1))
    forward_original_token: bool = False
    output_claim_to_headers: tuple[ClaimToHeader, ...] = ()
    timeout: Duration | None = None
    space_delimited_claims: tuple[str, ...] = repeated(max_items=64, items=C(min_len=1))
    presence: Presence = Presence.OPTIONAL


@dataclass(frozen=True, slots=True)
class RequestAuthentication:
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = repeated(max_items=16)
    jwt_rules: tuple[JWTRule, ...] = repeated(max_items=4096)


__all__ = [
    "Action",
    "AuthorizationPolicy",
    "ClaimToHeader",
    "Condition",
    "ExtensionProvider",
    "From",
    "JWTHeader",
    "JWTRule",
    "Mode",
    "MutualTLS",
    "Operation",
    "PeerAuthentication",
    "PolicyTargetReference",
    "Presence",
    "RequestAuthentication",
    "Rule",
    "Source",
    "To",
    "WorkloadSelector",
]
