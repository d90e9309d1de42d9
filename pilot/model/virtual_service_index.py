"""VirtualServices by the gateway they bind to, with hosts resolved, as Istio indexes them.

A VirtualService binds to `mesh` (sidecars) when it names no gateways; gateway names are
resolved to `namespace/name` (a bare name is in the VirtualService's namespace). Visibility
follows exportTo: private (own namespace), exported to named namespaces, or public. Within each
list, the oldest object comes first — the order Istio uses to pick a winner when two
VirtualServices claim the same host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pilot.model.service import EXPORT_NONE, EXPORT_PRIVATE, EXPORT_PUBLIC
from pilot.model.service_index import effective_export_to
from pkg.config.host import resolve_short_name
from pkg.config.model import Config

MESH_GATEWAY = "mesh"


def resolve_gateway_name(name: str, namespace: str) -> str:
    if name == MESH_GATEWAY or "/" in name:
        return name
    return f"{namespace}/{name}"


@dataclass(frozen=True, slots=True)
class BoundVirtualService:
    """A VirtualService with its hosts and gateways resolved."""

    config: Config[Any]
    hosts: tuple[str, ...]
    gateways: tuple[str, ...]

    @property
    def spec(self) -> Any:
        return self.config.spec

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def namespace(self) -> str:
        return self.config.namespace


def bind(config: Config[Any], domain_suffix: str) -> BoundVirtualService:
    spec = config.spec
    ns = config.namespace
    hosts = tuple(resolve_short_name(h, ns, domain_suffix) for h in spec.hosts)
    gateways = tuple(resolve_gateway_name(g, ns) for g in spec.gateways) or (MESH_GATEWAY,)
    return BoundVirtualService(config, hosts, gateways)


def _order(c: Config[Any]) -> tuple[float, str, str]:
    return (c.meta.creation_timestamp, c.namespace, c.name)


@dataclass(frozen=True, slots=True)
class VirtualServiceIndex:
    # (namespace, gateway) → VirtualServices private to that namespace
    private: Mapping[tuple[str, str], tuple[BoundVirtualService, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # (namespace, gateway) → VirtualServices exported to that namespace
    exported: Mapping[tuple[str, str], tuple[BoundVirtualService, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    public: Mapping[str, tuple[BoundVirtualService, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # Delegate VirtualServices (no hosts) by (namespace, name).
    delegates: Mapping[tuple[str, str], BoundVirtualService] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def build(
        cls,
        configs: Sequence[Config[Any]],
        default_export_to: Iterable[str],
        domain_suffix: str,
    ) -> VirtualServiceIndex:
        private: dict[tuple[str, str], list[BoundVirtualService]] = {}
        exported: dict[tuple[str, str], list[BoundVirtualService]] = {}
        public: dict[str, list[BoundVirtualService]] = {}
        delegates: dict[tuple[str, str], BoundVirtualService] = {}
        defaults = frozenset(default_export_to)
        for config in sorted(configs, key=_order):
            bound = bind(config, domain_suffix)
            if not bound.hosts:
                delegates[(config.namespace, config.name)] = bound
                continue
            export_to = effective_export_to(config.spec.export_to, defaults)
            if EXPORT_PUBLIC in export_to:
                for gw in bound.gateways:
                    public.setdefault(gw, []).append(bound)
                continue
            if export_to == frozenset({EXPORT_NONE}):
                continue
            for target in sorted(export_to - {EXPORT_NONE}):
                if target in (EXPORT_PRIVATE, config.namespace):
                    for gw in bound.gateways:
                        private.setdefault((config.namespace, gw), []).append(bound)
                else:
                    for gw in bound.gateways:
                        exported.setdefault((target, gw), []).append(bound)
        return cls(
            private=MappingProxyType({k: tuple(v) for k, v in private.items()}),
            exported=MappingProxyType({k: tuple(v) for k, v in exported.items()}),
            public=MappingProxyType({k: tuple(v) for k, v in public.items()}),
            delegates=MappingProxyType(delegates),
        )

    def for_gateway(self, namespace: str, gateway: str) -> tuple[BoundVirtualService, ...]:
        """VirtualServices bound to `gateway` that a proxy in `namespace` may use, in Istio's
        order: private, exported, then public."""
        key = (namespace, gateway)
        return self.private.get(key, ()) + self.exported.get(key, ()) + self.public.get(gateway, ())

    def delegate(self, namespace: str, name: str) -> BoundVirtualService | None:
        return self.delegates.get((namespace, name))
