"""The effective DestinationRule traffic policy of one cluster (Istio's MergeSubsetTrafficPolicy),
over the MeshConfig defaults.

Istio first resolves the top-level policy for the port: a matching portLevelSettings entry
replaces it wholesale (connectionPool, loadBalancer, outlierDetection and tls from the entry;
every other field unset — port-level settings do not inherit, as Istio documents). The subset's
policy, resolved for the port the same way, then overrides field by field; when the subset has a
matching port-level entry its four fields replace the merged ones even where they are unset.
MeshConfig `defaultTrafficPolicy` fills connectionPool and outlierDetection where the result
leaves them unset (applyDefaultTrafficPolicy).

The MeshConfig fields cluster and endpoint building read are decoded with the DestinationRule
types, once per MeshConfig object: `localityLbSetting` (Istio's default mesh config enables
locality load balancing), `h2UpgradePolicy`, `tcpKeepalive` and `defaultTrafficPolicy`. A
block that does not decode counts as unset (and is logged).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pilot.model.push_context import PushContext
from pkg.config.decode import DecodeError, decode
from pkg.config.mesh import MeshConfig
from pkg.config.specs.destination_rule import (
    ConnectionPoolSettings,
    LocalityLoadBalancerSetting,
    OutlierDetection,
    TcpKeepalive,
)

log = logging.getLogger(__name__)

_PORT_FIELDS = ("connection_pool", "outlier_detection", "load_balancer", "tls")
_OTHER_FIELDS = ("tunnel", "proxy_protocol", "retry_budget")


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """The parts of a TrafficPolicy that apply to one cluster (each may be None)."""

    connection_pool: Any = None
    load_balancer: Any = None
    outlier_detection: Any = None
    tls: Any = None
    proxy_protocol: Any = None
    tunnel: Any = None
    retry_budget: Any = None


def _for_port(policy: Any, port: int) -> tuple[dict[str, Any], bool]:
    """Istio's GetPortLevelTrafficPolicy: the policy's fields, or the matching port-level
    entry's four fields only."""
    if policy is None:
        return {}, False
    for settings in policy.port_level_settings:
        selector = settings.port
        if selector is not None and int(selector.number) == port:
            return {name: getattr(settings, name) for name in _PORT_FIELDS}, True
    fields = {name: getattr(policy, name) for name in (*_PORT_FIELDS, *_OTHER_FIELDS)}
    return fields, False


def effective_policy(
    top_level: Any, subset_policy: Any, port: int, mesh: MeshConfig | None = None
) -> EffectivePolicy:
    values, _ = _for_port(top_level, port)
    if subset_policy is not None:
        subset, has_port_level = _for_port(subset_policy, port)
        for name, value in subset.items():
            if value is not None or (has_port_level and name in _PORT_FIELDS):
                values[name] = value
    out = EffectivePolicy(**{k: v for k, v in values.items() if v is not None})
    return _with_mesh_defaults(out, mesh) if mesh is not None else out


def cluster_policy(push: PushContext, dr: Any, subset: str, port: int) -> EffectivePolicy:
    """destination_policy for the push's mesh, computed once per push (a rule object lives as
    long as its push, so its identity is a sound key)."""
    key = ("dr-policy", id(dr), subset, port)
    return push.memo(key, lambda: destination_policy(dr, subset, port, push.mesh))


def destination_policy(dr: Any, subset: str, port: int, mesh: MeshConfig | None) -> EffectivePolicy:
    """The policy of cluster `outbound|port|subset|host` under the merged rule `dr`."""
    if dr is None:
        return effective_policy(None, None, port, mesh)
    subset_policy = None
    if subset:
        found = dr.subset(subset)
        subset_policy = found.traffic_policy if found is not None else None
    return effective_policy(dr.spec.traffic_policy, subset_policy, port, mesh)


def _with_mesh_defaults(policy: EffectivePolicy, mesh: MeshConfig) -> EffectivePolicy:
    defaults = mesh_defaults(mesh)
    if policy.connection_pool is None and defaults.connection_pool is not None:
        policy = replace(policy, connection_pool=defaults.connection_pool)
    if policy.outlier_detection is None and defaults.outlier_detection is not None:
        policy = replace(policy, outlier_detection=defaults.outlier_detection)
    return policy


@dataclass(frozen=True, slots=True)
class MeshDefaults:
    # None: locality load balancing disabled (`localityLbSetting: {enabled: false}`).
    locality_lb: LocalityLoadBalancerSetting | None = field(
        default_factory=LocalityLoadBalancerSetting
    )
    h2_upgrade: bool = False
    tcp_keepalive: TcpKeepalive | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None


# The last MeshConfig decoded and its result (one tuple, replaced atomically).
_last: tuple[MeshConfig, MeshDefaults] | None = None


def mesh_defaults(mesh: MeshConfig) -> MeshDefaults:
    global _last
    last = _last
    if last is not None and last[0] is mesh:
        return last[1]
    out = _decode_all(mesh.raw)
    _last = (mesh, out)
    return out


def _decode_all(raw: Mapping[str, Any]) -> MeshDefaults:
    locality: LocalityLoadBalancerSetting | None = LocalityLoadBalancerSetting()
    if "localityLbSetting" in raw:
        value = raw["localityLbSetting"]
        locality = _decode(LocalityLoadBalancerSetting, value, "localityLbSetting")
        if locality is not None and locality.enabled is False:
            locality = None
    policy = raw.get("defaultTrafficPolicy")
    policy = policy if isinstance(policy, Mapping) else {}
    return MeshDefaults(
        locality_lb=locality,
        h2_upgrade=raw.get("h2UpgradePolicy") == "UPGRADE",
        tcp_keepalive=_decode(TcpKeepalive, raw.get("tcpKeepalive"), "tcpKeepalive"),
        connection_pool=_decode(
            ConnectionPoolSettings,
            policy.get("connectionPool"),
            "defaultTrafficPolicy.connectionPool",
        ),
        outlier_detection=_decode(
            OutlierDetection,
            policy.get("outlierDetection"),
            "defaultTrafficPolicy.outlierDetection",
        ),
    )


def _decode(cls: type[Any], value: object, path: str) -> Any:
    if value is None:
        return None
    try:
        return decode(cls, value, f"meshConfig.{path}")
    except DecodeError as err:
        log.warning("ignoring invalid meshConfig.%s: %s", path, err)
        return None
