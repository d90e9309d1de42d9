"""ResourceSet: a generator's whole answer, built once and shared by every proxy that asks the
same question.

Within one PushContext, proxies with equal inputs (same Sidecar scope, namespace, and the few
proxy attributes a type depends on) get the very same ResourceSet object from the snapshot's
memo. Everything a response needs is computed once per set, not once per proxy:
- the set version (a hash over every resource's name and version),
- the name → version map a stream records as sent,
- the concatenated `resources` fields of a SotW response.
So the per-proxy cost of a full push is a memo hit, a version comparison and one join of
pre-encoded bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import overload

from pilot.xds.wire import (
    BuiltResource,
    VersionMap,
    delta_response,
    sotw_response_body,
    version_of,
)


class ResourceSet(Sequence[BuiltResource]):
    """Resources unique by name, in the generator's order. Immutable; share freely."""

    __slots__ = ("_body", "_names", "_payloads", "_resources", "_versions", "total", "version")

    def __init__(self, resources: Iterable[BuiltResource]) -> None:
        unique: list[BuiltResource] = []
        versions: dict[str, str] = {}
        total = 0
        for r in resources:
            if r.name not in versions:
                versions[r.name] = r.version
                unique.append(r)
                total += r.pair_hash
        self._resources = tuple(unique)
        self._versions = versions
        self.total = total  # the sum of the pair hashes: the set version, see wire.set_version
        self.version = version_of(total)
        self._body: bytes | None = None
        self._names: tuple[str, ...] | None = None
        self._payloads: dict[tuple[str, str, str], bytes] = {}

    @classmethod
    def join(cls, *parts: ResourceSet) -> ResourceSet:
        """Parts in order as one set (its version is the union's, computed from the parts'
        sums); names repeated across parts fall back to building the set resource by
        resource."""
        parts = tuple(p for p in parts if p)
        if not parts:
            return EMPTY
        if len(parts) == 1:
            return parts[0]
        total = sum(len(p) for p in parts)
        names = set().union(*(p._versions for p in parts))
        if len(names) != total:
            return cls(r for p in parts for r in p)
        out = cls.__new__(cls)
        out._resources = tuple(r for p in parts for r in p._resources)
        out._versions = {k: v for p in parts for k, v in p._versions.items()}
        out.total = sum(p.total for p in parts)
        out.version = version_of(out.total)
        out._body = None
        out._names = None
        out._payloads = {}
        return out

    @property
    def versions(self) -> Mapping[str, str]:
        """name → version, read-only (copy it to keep as a stream's state)."""
        return MappingProxyType(self._versions)

    def names(self) -> tuple[str, ...]:
        """The resource names in order (computed once per set)."""
        if self._names is None:
            self._names = tuple(self._versions)
        return self._names

    def versions_copy(self) -> VersionMap:
        """What a stream records as sent after receiving the whole set."""
        return VersionMap(self._versions, self.total)  # from a dict: a C-level copy

    def sotw_body(self) -> bytes:
        """The `resources` fields of a DiscoveryResponse carrying the whole set."""
        if self._body is None:
            self._body = b"".join(r.sotw_chunk() for r in self._resources)
        return self._body

    def sotw_payload(self, type_url: str, nonce: str) -> bytes:
        """A whole DiscoveryResponse carrying the set, with `nonce`. Streams given the same
        nonce for the same set (one push, one set: see Connection) share the very same bytes
        object, so a push to a thousand proxies holds one copy in memory, not a thousand."""
        key = ("sotw", type_url, nonce)
        payload = self._payloads.get(key)
        if payload is None:
            payload = sotw_response_body(type_url, self.version, nonce, self.sotw_body())
            if len(self._payloads) >= 4:
                self._payloads.clear()
            self._payloads[key] = payload
        return payload

    def delta_payload(self, type_url: str, nonce: str) -> bytes:
        """A whole DeltaDiscoveryResponse carrying the set (nothing removed), shared likewise."""
        key = ("delta", type_url, nonce)
        payload = self._payloads.get(key)
        if payload is None:
            payload = delta_response(type_url, self.version, nonce, self._resources)
            if len(self._payloads) >= 4:
                self._payloads.clear()
            self._payloads[key] = payload
        return payload

    def has(self, name: str) -> bool:
        return name in self._versions

    def __len__(self) -> int:
        return len(self._resources)

    def __iter__(self) -> Iterator[BuiltResource]:
        return iter(self._resources)

    @overload
    def __getitem__(self, index: int) -> BuiltResource: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[BuiltResource]: ...

    def __getitem__(self, index: int | slice) -> BuiltResource | Sequence[BuiltResource]:
        return self._resources[index]

    def __repr__(self) -> str:
        return f"ResourceSet({len(self._resources)} resources, {self.version})"


EMPTY = ResourceSet(())


def as_set(resources: Sequence[BuiltResource]) -> ResourceSet:
    return resources if isinstance(resources, ResourceSet) else ResourceSet(resources)


def versions_of(resources: Sequence[BuiltResource]) -> VersionMap:
    """name → version of `resources`, as a stream records what it was sent."""
    if isinstance(resources, ResourceSet):
        return resources.versions_copy()
    return VersionMap((r.name, r.version) for r in resources)
