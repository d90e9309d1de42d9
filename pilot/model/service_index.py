"""Which services each namespace sees (exportTo), and the service behind each hostname.

Istio's rules: a service with exportTo `*` (the mesh default) is public; `~` hides it; `.` or
its own namespace makes it private to that namespace; other entries export it to those
namespaces. When several services share a hostname, each namespace sees one per owning
namespace; the oldest wins, except that a Kubernetes Service beats a ServiceEntry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from pilot.model.service import EXPORT_NONE, EXPORT_PRIVATE, EXPORT_PUBLIC, Registry, Service


def effective_export_to(export_to: Iterable[str], default: Iterable[str]) -> frozenset[str]:
    values = frozenset(export_to)
    return values if values else frozenset(default)


def is_visible(export_to: frozenset[str], owner_namespace: str, namespace: str) -> bool:
    return (
        EXPORT_PUBLIC in export_to
        or (EXPORT_PRIVATE in export_to and owner_namespace == namespace)
        or namespace in export_to
    )


def _sort_key(s: Service) -> tuple[float, str, str]:
    return (s.creation_timestamp, s.namespace, s.hostname)


@dataclass(frozen=True, slots=True)
class ServiceIndex:
    services: tuple[Service, ...] = ()  # all, oldest first
    public: tuple[Service, ...] = ()
    exported_to: Mapping[str, tuple[Service, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    by_host: Mapping[str, Mapping[str, Service]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # (hostname, namespace) of public services, and per namespace of the exported ones.
    _public_keys: frozenset[tuple[str, str]] = frozenset()
    _exported_keys: Mapping[str, frozenset[tuple[str, str]]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def build(cls, services: Sequence[Service], default_export_to: Iterable[str]) -> ServiceIndex:
        ordered = sorted(services, key=_sort_key)
        by_host: dict[str, dict[str, Service]] = {}
        public: list[Service] = []
        exported: dict[str, list[Service]] = {}
        kept: list[Service] = []
        defaults = frozenset(default_export_to)
        for svc in ordered:
            owners = by_host.setdefault(svc.hostname, {})
            existing = owners.get(svc.namespace)
            if existing is not None and not (
                existing.registry is not Registry.KUBERNETES and svc.registry is Registry.KUBERNETES
            ):
                continue  # the older service (or the Kubernetes one) owns the hostname
            if existing is not None:
                _remove(kept, existing)
                _remove(public, existing)
                for lst in exported.values():
                    _remove(lst, existing)
            owners[svc.namespace] = svc
            kept.append(svc)
            export_to = effective_export_to(svc.export_to, defaults)
            if EXPORT_PUBLIC in export_to:
                public.append(svc)
                continue
            if export_to == frozenset({EXPORT_NONE}):
                continue
            targets = {
                svc.namespace if e in (EXPORT_PRIVATE, svc.namespace) else e
                for e in export_to
                if e != EXPORT_NONE
            }
            for ns in sorted(targets):
                exported.setdefault(ns, []).append(svc)
        return cls(
            services=tuple(kept),
            public=tuple(public),
            exported_to=MappingProxyType({k: tuple(v) for k, v in exported.items()}),
            by_host=MappingProxyType({h: MappingProxyType(m) for h, m in by_host.items()}),
            _public_keys=frozenset((s.hostname, s.namespace) for s in public),
            _exported_keys=MappingProxyType(
                {ns: frozenset((s.hostname, s.namespace) for s in v) for ns, v in exported.items()}
            ),
        )

    def visible_to(self, namespace: str) -> tuple[Service, ...]:
        """Services a proxy in `namespace` may see: its own/exported first, then public."""
        return self.exported_to.get(namespace, ()) + self.public

    def for_host(self, hostname: str, namespace: str) -> Service | None:
        """The service a proxy in `namespace` reaches for `hostname` (its own namespace's first,
        then the oldest visible one)."""
        owners = self.by_host.get(hostname)
        if not owners:
            return None
        own = owners.get(namespace)
        if own is not None and self.is_visible(own, namespace):
            return own
        for svc in self.visible_to(namespace):
            if svc.hostname == hostname:
                return svc
        return None

    def is_visible(self, svc: Service, namespace: str) -> bool:
        key = (svc.hostname, svc.namespace)
        return key in self._public_keys or key in self._exported_keys.get(namespace, ())


def _remove(items: list[Service], svc: Service) -> None:
    for i, item in enumerate(items):
        if item is svc:
            del items[i]
            return
