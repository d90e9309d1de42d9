"""VirtualServices by the gateway they bind to, with hosts resolved, as Istio indexes them.

A VirtualService binds to `mesh` (sidecars) when it names no gateways; gateway names are
resolved to `namespace/name` (a bare name is in the VirtualService's namespace). Visibility
follows exportTo: private (own namespace), exported to named namespaces, or public. Within each
list, the oldest object comes first — the order Istio uses to pick a winner when two
VirtualServices claim the same host.

Specs are stored as proxies should see them: short names resolved and delegates merged into
their root VirtualServices (`pilot.model.virtual_service_merge`); what went wrong while merging
is kept in `problems` (shown by /debug/push_status).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pilot.model.service import EXPORT_NONE, EXPORT_PRIVATE, EXPORT_PUBLIC
from pilot.model.service_index import effective_export_to
from pilot.model.virtual_service_merge import (
    MESH_GATEWAY,
    merge_delegates,
    resolve_gateway_name,
    resolve_short_names,
)
from pkg.config.host import resolve_short_name
from pkg.config.model import Config

__all__ = ["MESH_GATEWAY", "BoundVirtualService", "VirtualServiceIndex", "resolve_gateway_name"]


@dataclass(frozen=True, slots=True)
class BoundVirtualService:
    """A VirtualService with its hosts, gateways and short names resolved and, for a root
    VirtualService, its delegates merged in (`spec`; `config.spec` is the object as written)."""

    config: Config[Any]
    hosts: tuple[str, ...]
    gateways: tuple[str, ...]
    spec: Any

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
    return BoundVirtualService(
        config, hosts, gateways, resolve_short_names(spec, ns, domain_suffix)
    )


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
    # Every (namespace, name) a root VirtualService delegates to, whether or not it exists: a
    # change to one of them concerns the root's proxies wherever the delegate lives.
    delegate_refs: frozenset[tuple[str, str]] = frozenset()
    problems: tuple[str, ...] = ()

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
        ordered = [bind(config, domain_suffix) for config in sorted(configs, key=_order)]
        for bound in ordered:
            if not bound.hosts:
                delegates[(bound.namespace, bound.name)] = bound

        def lookup(ns: str, name: str) -> tuple[Any, frozenset[str] | None] | None:
            found = delegates.get((ns, name))
            if found is None:
                return None
            export_to = effective_export_to(found.spec.export_to, defaults)
            if EXPORT_PUBLIC in export_to:
                return found.spec, None
            return found.spec, frozenset(ns if e == EXPORT_PRIVATE else e for e in export_to)

        problems: list[str] = []
        refs: set[tuple[str, str]] = set()
        for bound in ordered:
            if not bound.hosts:
                continue
            config = bound.config
            for http in config.spec.http:
                if http.delegate is not None:
                    refs.add((http.delegate.namespace or config.namespace, http.delegate.name))
            merged = merge_delegates(config, bound.spec, lookup, problems)
            if merged is not bound.spec:
                bound = dataclasses.replace(bound, spec=merged)
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
            delegate_refs=frozenset(refs),
            problems=tuple(problems),
        )

    def for_gateway(self, namespace: str, gateway: str) -> tuple[BoundVirtualService, ...]:
        """VirtualServices bound to `gateway` that a proxy in `namespace` may use, in Istio's
        order: private, exported, then public."""
        key = (namespace, gateway)
        return self.private.get(key, ()) + self.exported.get(key, ()) + self.public.get(gateway, ())

    def delegate(self, namespace: str, name: str) -> BoundVirtualService | None:
        return self.delegates.get((namespace, name))
