"""PeerAuthentication: the inbound mTLS mode of a workload's port (Istio's authn policies).

Precedence, as Istio: a workload policy (selector matching the workload's labels; the oldest
wins) over the namespace policy (no selector) over the mesh policy (no selector, in the root
namespace); UNSET inherits from the next level; with no policy at all the mode is PERMISSIVE.
A workload policy's `portLevelMtls` overrides the mode for that (target) port.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pkg.config.labels import selector_matches
from pkg.config.model import Config


class MTLSMode(StrEnum):
    UNSET = "UNSET"
    DISABLE = "DISABLE"
    PERMISSIVE = "PERMISSIVE"
    STRICT = "STRICT"


def _mode(mtls: Any) -> MTLSMode:
    if mtls is None:
        return MTLSMode.UNSET
    try:
        return MTLSMode(str(mtls.mode))
    except ValueError:
        return MTLSMode.UNSET


def _order(c: Config[Any]) -> tuple[float, str]:
    return (c.meta.creation_timestamp, c.name)


@dataclass(frozen=True, slots=True)
class PeerAuthenticationIndex:
    root_namespace: str = "istio-system"
    # namespace → policies with a selector (oldest first), and the namespace-wide one
    by_selector: Mapping[str, tuple[Config[Any], ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    namespace_wide: Mapping[str, Config[Any]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def build(cls, configs: Sequence[Config[Any]], root_namespace: str) -> PeerAuthenticationIndex:
        selected: dict[str, list[Config[Any]]] = {}
        wide: dict[str, Config[Any]] = {}
        for config in sorted(configs, key=_order):
            selector = config.spec.selector
            if selector is not None and selector.match_labels:
                selected.setdefault(config.namespace, []).append(config)
            else:
                wide.setdefault(config.namespace, config)
        return cls(
            root_namespace,
            MappingProxyType({k: tuple(v) for k, v in selected.items()}),
            MappingProxyType(wide),
        )

    def _workload_policy(self, namespace: str, labels: Mapping[str, str]) -> Config[Any] | None:
        for config in self.by_selector.get(namespace, ()):
            if selector_matches(config.spec.selector.match_labels, labels):
                return config
        return None

    def mode(self, namespace: str, labels: Mapping[str, str], port: int = 0) -> MTLSMode:
        """The effective mode for a workload's (target) port; port 0 = the workload default."""
        workload = self._workload_policy(namespace, labels)
        if workload is not None and port:
            override = workload.spec.port_level_mtls.get(str(port))
            mode = _mode(override)
            if mode is not MTLSMode.UNSET:
                return mode
        for config in (
            workload,
            self.namespace_wide.get(namespace),
            self.namespace_wide.get(self.root_namespace),
        ):
            if config is None:
                continue
            mode = _mode(config.spec.mtls)
            if mode is not MTLSMode.UNSET:
                return mode
        return MTLSMode.PERMISSIVE

    def namespace_mode(self, namespace: str) -> MTLSMode:
        """The mode a client infers for a service in `namespace` (Istio's
        BestEffortInferServiceMTLSMode): namespace then mesh policy, else PERMISSIVE."""
        wide = self.namespace_wide
        for config in (wide.get(namespace), wide.get(self.root_namespace)):
            if config is None:
                continue
            mode = _mode(config.spec.mtls)
            if mode is not MTLSMode.UNSET:
                return mode
        return MTLSMode.PERMISSIVE

    def sources(self, namespace: str, labels: Mapping[str, str]) -> tuple[Config[Any], ...]:
        """The policies that can decide this workload's modes (for provenance and caching)."""
        found = (
            self._workload_policy(namespace, labels),
            self.namespace_wide.get(namespace),
            self.namespace_wide.get(self.root_namespace),
        )
        return tuple(c for c in found if c is not None)
