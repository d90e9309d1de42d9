"""WasmPlugin (extensions/v1alpha1/wasm.proto).

Renames: `WasmPlugin.TrafficSelector` → `TrafficSelector`. `TrafficSelector.mode` uses
`pkg.config.types.WorkloadMode` and `ports` the `istio.type.v1beta1` PortSelector
(`pkg.config.types.PortSelector`). `plugin_config` (a google.protobuf.Struct) holds the raw
JSON object. TrafficExtension (also in extensions.istio.io) is not supported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pkg.config.fields import Rule, repeated, schema, string, url_scheme, wrapper
from pkg.config.types import PolicyTargetReference, PortSelector, WorkloadMode, WorkloadSelector

_WASM_SCHEMES = ("", "http", "https", "oci", "file")


def _url_scheme_ok(url: str) -> bool:
    """The CRD rule: the URL (or else `http://` + the text) has scheme http(s), oci or file."""
    scheme = url_scheme(url)
    if scheme is None:
        scheme = url_scheme("http://" + url)
    return scheme is not None and scheme in _WASM_SCHEMES


WASM_URL = Rule(_url_scheme_ok, "url must have schema one of [http, https, file, oci]")


class PluginType(StrEnum):
    UNSPECIFIED_PLUGIN_TYPE = "UNSPECIFIED_PLUGIN_TYPE"
    HTTP = "HTTP"
    NETWORK = "NETWORK"


class PluginPhase(StrEnum):
    UNSPECIFIED_PHASE = "UNSPECIFIED_PHASE"
    AUTHN = "AUTHN"
    AUTHZ = "AUTHZ"
    STATS = "STATS"


class PullPolicy(StrEnum):
    UNSPECIFIED_POLICY = "UNSPECIFIED_POLICY"
    IfNotPresent = "IfNotPresent"
    Always = "Always"


class EnvValueSource(StrEnum):
    INLINE = "INLINE"
    HOST = "HOST"


class FailStrategy(StrEnum):
    FAIL_CLOSE = "FAIL_CLOSE"
    FAIL_OPEN = "FAIL_OPEN"
    FAIL_RELOAD = "FAIL_RELOAD"


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str = string(required=True, min_len=1, max_len=256)
    value_from: EnvValueSource = EnvValueSource.INLINE
    value: str = string(max_len=2048)


@dataclass(frozen=True, slots=True)
class VmConfig:
    env: tuple[EnvVar, ...] = repeated(max_items=256, list_key="name")


@dataclass(frozen=True, slots=True)
class TrafficSelector:
    """WasmPlugin.TrafficSelector."""

    mode: WorkloadMode = WorkloadMode.UNDEFINED
    ports: tuple[PortSelector, ...] = repeated(list_key="number")


@dataclass(frozen=True, slots=True)
class WasmPlugin:
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = repeated(max_items=16)
    url: str = string(required=True, min_len=1, rules=(WASM_URL,))
    sha256: str = string(pattern=r"(^$|^[a-f0-9]{64}$)")
    image_pull_policy: PullPolicy = PullPolicy.UNSPECIFIED_POLICY
    image_pull_secret: str = string(min_len=1, max_len=253)
    verification_key: str = ""
    plugin_config: Any = field(default=None, metadata=schema(fmt="struct"))
    plugin_name: str = string(min_len=1, max_len=256)
    phase: PluginPhase = PluginPhase.UNSPECIFIED_PHASE
    priority: int | None = wrapper("int32")
    fail_strategy: FailStrategy = FailStrategy.FAIL_CLOSE
    vm_config: VmConfig | None = None
    match: tuple[TrafficSelector, ...] = ()
    type: PluginType = PluginType.UNSPECIFIED_PLUGIN_TYPE


__all__ = [
    "EnvValueSource",
    "EnvVar",
    "FailStrategy",
    "PluginPhase",
    "PluginType",
    "PolicyTargetReference",
    "PortSelector",
    "PullPolicy",
    "TrafficSelector",
    "VmConfig",
    "WasmPlugin",
    "WorkloadMode",
    "WorkloadSelector",
]
