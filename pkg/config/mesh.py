"""MeshConfig: Istio's mesh-wide settings, loaded from the same YAML istiod reads.

Only the fields pyistio acts on are typed; every other MeshConfig field is accepted and kept in
`raw` (a top-level key that MeshConfig does not have is an error, so a misspelling is caught).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from pkg.config.types import Duration
from pkg.errors import ConfigError

# Every top-level field of istio.mesh.v1alpha1.MeshConfig, in proto JSON form.
_KNOWN_FIELDS = frozenset(
    {
        "proxyListenPort", "proxyInboundListenPort", "proxyHttpPort", "connectTimeout",
        "hboneIdleTimeout", "protocolDetectionTimeout", "tcpKeepalive", "ingressClass",
        "ingressService", "ingressControllerMode", "ingressSelector", "enableTracing",
        "accessLogFile", "accessLogFormat", "accessLogEncoding", "enableEnvoyAccessLogService",
        "disableEnvoyListenerLog", "defaultConfig", "outboundTrafficPolicy",
        "inboundTrafficPolicy", "configSources", "enableAutoMtls", "trustDomain",
        "trustDomainAliases", "caCertificates", "defaultServiceExportTo",
        "defaultVirtualServiceExportTo", "defaultDestinationRuleExportTo", "rootNamespace",
        "localityLbSetting", "zoneAwareLbSetting", "dnsRefreshRate", "h2UpgradePolicy",
        "inboundClusterStatName", "outboundClusterStatName", "certificates", "serviceSettings",
        "serviceScopeConfigs", "enablePrometheusMerge", "verifyCertificateAtClient", "ca",
        "extensionProviders", "defaultProviders", "discoverySelectors", "pathNormalization",
        "defaultHttpRetryPolicy", "tlsDefaults", "defaultTrafficPolicy", "serviceEntryVisibility",
        "meshMTLS",
    }
)  # fmt: skip


_TEN_SECONDS = Duration(10, 0)
_ZERO = Duration(0, 0)


class OutboundTrafficPolicyMode(StrEnum):
    REGISTRY_ONLY = "REGISTRY_ONLY"
    ALLOW_ANY = "ALLOW_ANY"


@dataclass(frozen=True, slots=True)
class MeshConfig:
    trust_domain: str = "cluster.local"
    trust_domain_aliases: tuple[str, ...] = ()
    root_namespace: str = "istio-system"
    connect_timeout: Duration = _TEN_SECONDS
    protocol_detection_timeout: Duration = _ZERO
    proxy_listen_port: int = 15001
    proxy_inbound_listen_port: int = 15006
    enable_auto_mtls: bool = True
    outbound_traffic_policy: OutboundTrafficPolicyMode = OutboundTrafficPolicyMode.ALLOW_ANY
    default_service_export_to: tuple[str, ...] = ("*",)
    default_virtual_service_export_to: tuple[str, ...] = ("*",)
    default_destination_rule_export_to: tuple[str, ...] = ("*",)
    access_log_file: str = ""
    # Raw JSON of fields not typed above (extensionProviders, defaultConfig, ...).
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def extension_providers(self) -> list[Mapping[str, Any]]:
        value = self.raw.get("extensionProviders") or []
        return [p for p in value if isinstance(p, Mapping)]

    @property
    def default_http_retry_policy(self) -> Mapping[str, Any] | None:
        value = self.raw.get("defaultHttpRetryPolicy")
        return value if isinstance(value, Mapping) else None


def _str_list(raw: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"meshConfig.{key}: must be a list of strings")
    return tuple(value)


def _duration(raw: Mapping[str, Any], key: str, default: Duration) -> Duration:
    value = raw.get(key)
    if value is None:
        return default
    try:
        return Duration.parse(value)
    except ValueError as e:
        raise ConfigError(f"meshConfig.{key}: {e}") from None


def _int(raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"meshConfig.{key}: must be an integer")
    return value


def _str(raw: Mapping[str, Any], key: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"meshConfig.{key}: must be a string")
    return value


def mesh_config_from_dict(raw: Mapping[str, Any] | None) -> MeshConfig:
    """Apply a MeshConfig document over Istio's defaults; errors name the field."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - _KNOWN_FIELDS)
    if unknown:
        raise ConfigError(f"meshConfig.{unknown[0]}: unknown field")
    policy = raw.get("outboundTrafficPolicy") or {}
    if not isinstance(policy, Mapping):
        raise ConfigError("meshConfig.outboundTrafficPolicy: must be an object")
    mode_raw = policy.get("mode", "ALLOW_ANY")
    try:
        mode = OutboundTrafficPolicyMode(mode_raw)
    except ValueError:
        raise ConfigError(
            f"meshConfig.outboundTrafficPolicy.mode: unsupported value {mode_raw!r}"
        ) from None
    auto_mtls = raw.get("enableAutoMtls", True)
    if not isinstance(auto_mtls, bool):
        raise ConfigError("meshConfig.enableAutoMtls: must be a boolean")
    return MeshConfig(
        trust_domain=_str(raw, "trustDomain", "cluster.local") or "cluster.local",
        trust_domain_aliases=_str_list(raw, "trustDomainAliases", ()),
        root_namespace=_str(raw, "rootNamespace", "istio-system") or "istio-system",
        connect_timeout=_duration(raw, "connectTimeout", Duration(10, 0)),
        protocol_detection_timeout=_duration(raw, "protocolDetectionTimeout", Duration(0, 0)),
        proxy_listen_port=_int(raw, "proxyListenPort", 15001),
        proxy_inbound_listen_port=_int(raw, "proxyInboundListenPort", 15006),
        enable_auto_mtls=auto_mtls,
        outbound_traffic_policy=mode,
        default_service_export_to=_str_list(raw, "defaultServiceExportTo", ("*",)),
        default_virtual_service_export_to=_str_list(raw, "defaultVirtualServiceExportTo", ("*",)),
        default_destination_rule_export_to=_str_list(raw, "defaultDestinationRuleExportTo", ("*",)),
        access_log_file=_str(raw, "accessLogFile", ""),
        raw=raw,
    )


def load_mesh_config(path: Path) -> MeshConfig:
    """Read a MeshConfig YAML file (the `mesh` key of istiod's ConfigMap, or the bare object)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read mesh config {path}: {e.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"mesh config {path}: invalid YAML: {e}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"mesh config {path}: must be a YAML mapping")
    # A ConfigMap document carries the mesh config as a YAML string under data.mesh.
    if doc.get("kind") == "ConfigMap":
        inner = (doc.get("data") or {}).get("mesh", "")
        doc = yaml.safe_load(inner) or {}
        if not isinstance(doc, Mapping):
            raise ConfigError(f"mesh config {path}: data.mesh must be a YAML mapping")
    return mesh_config_from_dict(doc)
