"""Built resources and the bytes of xDS responses, composed without re-serializing.

Every resource is serialized once into a `google.protobuf.Any`; its version is a hash of those
bytes, so equal content has the same version on every replica and after every restart. A
response is the concatenation of pre-encoded fields (protobuf messages are just a sequence of
fields, and repeated fields append), so sending the same resource to a thousand proxies costs
one serialization and a thousand joins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf import any_pb2
from google.protobuf.message import Message

_WIRE_LEN = 2  # length-delimited wire type


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | _WIRE_LEN) + _varint(len(payload)) + payload


def _str_field(number: int, value: str) -> bytes:
    return _len_field(number, value.encode()) if value else b""


def content_version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class BuiltResource:
    """One named resource, packed and versioned. Immutable by convention; shared freely."""

    __slots__ = ("_delta", "_hash", "_sotw", "any_bytes", "name", "type_url", "version")

    def __init__(self, name: str, type_url: str, any_bytes: bytes, version: str = "") -> None:
        self.name = name
        self.type_url = type_url
        self.any_bytes = any_bytes
        self.version = version or content_version(any_bytes)
        self._sotw: bytes | None = None
        self._delta: bytes | None = None
        self._hash: int | None = None

    @property
    def pair_hash(self) -> int:
        if self._hash is None:
            self._hash = pair_hash(self.name, self.version)
        return self._hash

    @classmethod
    def pack(cls, name: str, message: Message) -> BuiltResource:
        type_url = "type.googleapis.com/" + message.DESCRIPTOR.full_name
        value = message.SerializeToString(deterministic=True)
        any_bytes = _str_field(1, type_url) + _len_field(2, value)
        return cls(name, type_url, any_bytes)

    def sotw_chunk(self) -> bytes:
        """`resources` field (2) of a DiscoveryResponse holding this Any."""
        if self._sotw is None:
            self._sotw = _len_field(2, self.any_bytes)
        return self._sotw

    def delta_chunk(self) -> bytes:
        """`resources` field (2) of a DeltaDiscoveryResponse holding a Resource."""
        if self._delta is None:
            resource = (
                _str_field(1, self.version)
                + _len_field(2, self.any_bytes)
                + _str_field(3, self.name)
            )
            self._delta = _len_field(2, resource)
        return self._delta

    def unpack(self) -> any_pb2.Any:
        out = any_pb2.Any()
        out.ParseFromString(self.any_bytes)
        return out

    def __repr__(self) -> str:
        return f"BuiltResource({self.name!r}, {self.version})"


def sotw_response(
    type_url: str,
    version_info: str,
    nonce: str,
    resources: Iterable[BuiltResource],
    control_plane: bytes = b"",
) -> bytes:
    """A serialized DiscoveryResponse."""
    parts = [_str_field(1, version_info)]
    parts.extend(r.sotw_chunk() for r in resources)
    parts.append(_str_field(4, type_url))
    parts.append(_str_field(5, nonce))
    if control_plane:
        parts.append(_len_field(6, control_plane))
    return b"".join(parts)


def sotw_response_body(type_url: str, version_info: str, nonce: str, body: bytes) -> bytes:
    """A serialized DiscoveryResponse whose `resources` fields are already joined (`body`)."""
    return b"".join(
        (_str_field(1, version_info), body, _str_field(4, type_url), _str_field(5, nonce))
    )


def delta_response(
    type_url: str,
    system_version_info: str,
    nonce: str,
    resources: Iterable[BuiltResource],
    removed: Sequence[str] = (),
    control_plane: bytes = b"",
) -> bytes:
    """A serialized DeltaDiscoveryResponse."""
    parts = [_str_field(1, system_version_info)]
    parts.extend(r.delta_chunk() for r in resources)
    parts.append(_str_field(4, type_url))
    parts.append(_str_field(5, nonce))
    parts.extend(_str_field(6, name) for name in removed)
    if control_plane:
        parts.append(_len_field(7, control_plane))
    return b"".join(parts)


_MASK = (1 << 64) - 1


def pair_hash(name: str, version: str) -> int:
    """A 64-bit hash of one (name, version) pair. Set versions are the sum of these, so they
    do not depend on order, and adding, removing or changing one resource updates a set's
    version in O(1) (a stream tracks the sum of what it has; see `VersionMap`)."""
    digest = hashlib.blake2b(f"{name}\0{version}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def version_of(total: int) -> str:
    return format(total & _MASK, "016x")


def set_version(resources: Iterable[tuple[str, str]]) -> str:
    """A version for a set of (name, version) pairs: equal sets give equal versions, on every
    replica and after restarts (a pure function of the content)."""
    return version_of(sum(pair_hash(name, version) for name, version in resources))


class VersionMap(dict[str, str]):
    """name → version, keeping the sum of its pair hashes as it changes (so the version of
    the whole map, `version`, costs nothing to read)."""

    __slots__ = ("total",)

    def __init__(
        self,
        items: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        total: int | None = None,
    ):
        super().__init__(items or ())
        self.total = (
            total if total is not None else sum(pair_hash(k, v) for k, v in dict.items(self))
        )

    @property
    def version(self) -> str:
        return version_of(self.total)

    def __setitem__(self, name: str, version: str) -> None:
        old = dict.get(self, name)
        if old is not None:
            self.total -= pair_hash(name, old)
        self.total += pair_hash(name, version)
        dict.__setitem__(self, name, version)

    def __delitem__(self, name: str) -> None:
        self.total -= pair_hash(name, dict.__getitem__(self, name))
        dict.__delitem__(self, name)

    def pop(self, name: str, *default: str | None) -> str | None:  # type: ignore[override]
        if name in self:
            version = dict.pop(self, name)
            self.total -= pair_hash(name, version)
            return version
        if default:
            return default[0]
        raise KeyError(name)

    def update(self, *args: Any, **kwargs: str) -> None:
        for name, version in dict(*args, **kwargs).items():
            self[name] = version

    def clear(self) -> None:
        dict.clear(self)
        self.total = 0

    def popitem(self) -> tuple[str, str]:
        name, version = dict.popitem(self)
        self.total -= pair_hash(name, version)
        return name, version


def updated_version(sent: VersionMap, resources: Iterable[BuiltResource]) -> str:
    """The version of `sent` with `resources` replacing their names (O(len(resources)))."""
    total = sent.total
    for r in resources:
        old = sent.get(r.name)
        if old is not None:
            total -= pair_hash(r.name, old)
        total += r.pair_hash
    return version_of(total)
