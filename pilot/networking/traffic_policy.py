"""The effective DestinationRule traffic policy of one cluster (Istio's MergeTrafficPolicy).

A subset's policy replaces the top-level policy field by field (connectionPool, loadBalancer,
outlierDetection, tls, proxyProtocol, tunnel, retryBudget); a matching portLevelSettings entry
then replaces connectionPool, outlierDetection, loadBalancer and tls together — port-level
settings do not inherit, as Istio documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_FIELDS = (
    "connection_pool",
    "load_balancer",
    "outlier_detection",
    "tls",
    "proxy_protocol",
    "tunnel",
    "retry_budget",
)
_PORT_FIELDS = ("connection_pool", "outlier_detection", "load_balancer", "tls")


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


def _getattr(obj: Any, name: str) -> Any:
    return getattr(obj, name, None) if obj is not None else None


def _apply(base: dict[str, Any], policy: Any, port: int) -> None:
    if policy is None:
        return
    for name in _FIELDS:
        value = _getattr(policy, name)
        if value is not None:
            base[name] = value
    for settings in _getattr(policy, "port_level_settings") or ():
        selector = settings.port
        if selector is not None and int(selector.number) == port:
            for name in _PORT_FIELDS:
                base[name] = _getattr(settings, name)
            break


def effective_policy(top_level: Any, subset_policy: Any, port: int) -> EffectivePolicy:
    values: dict[str, Any] = {}
    _apply(values, top_level, port)
    _apply(values, subset_policy, port)
    return EffectivePolicy(**values)
