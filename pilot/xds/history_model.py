"""The records of the proxy history (history.py): resource maps, snapshots, timelines, the
size estimates the byte budget charges, and the helpers its readers share."""

from __future__ import annotations

import datetime
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf import any_pb2

from pilot.xds.wire import BuiltResource
from pkg.config.model import ConfigKey
from pkg.xds import typeurls

REDACTED = "[redacted]"
# Estimated bytes of Python objects around the payloads (dict slots, tuples, headers).
BODY_OVERHEAD = 160
ENTRY_OVERHEAD = 120
MAP_OVERHEAD = 200
SNAPSHOT_OVERHEAD = 400
KEY_OVERHEAD = 16

_COUNTER = re.compile(r"/(\d+)(?:\+sds)?$")


@dataclass(slots=True, eq=False)
class Body:
    data: bytes
    refs: int = 0


@dataclass(slots=True, eq=False)
class TypeMap:
    """One type's resources as a proxy held them: (name, version) in the order sent."""

    type_url: str
    key: int  # the set hash (sum of pair hashes)
    items: tuple[tuple[str, str], ...]
    size: int
    refs: int = 0

    def versions(self) -> dict[str, str]:
        return dict(self.items)


@dataclass(slots=True, eq=False)
class Snapshot:
    seq: int
    timeline: Timeline
    conn_id: str
    version: str  # push id (ledger naming), or the PushContext version of request answers
    context: str  # the PushContext version the resources were generated from
    at: float  # first response of the snapshot
    updated: float  # last response folded into it
    reason: str  # "push" | "request"
    maps: dict[str, TypeMap]
    configs: frozenset[ConfigKey] = frozenset()
    configs_truncated: bool = False
    incomplete: set[str] = field(default_factory=set)
    size: int = SNAPSHOT_OVERHEAD
    freed: bool = False


@dataclass(slots=True, eq=False)
class Timeline:
    node_id: str
    name: str  # NAME.NAMESPACE
    conn_id: str
    connected: bool = True
    disconnected_at: float = 0.0
    snapshots: deque[Snapshot] = field(default_factory=deque)
    dropped: int = 0  # snapshots evicted from this timeline


class HistoryError(LookupError):
    """No snapshot answers the question; the message says why, for the user."""


def counter(version: str) -> int | None:
    match = _COUNTER.search(version)
    return int(match.group(1)) if match else None


def stored_bytes(resource: BuiltResource) -> bytes:
    """The body to keep: as sent, but a TLS certificate's private key never is."""
    if resource.type_url != typeurls.SECRET:
        return resource.any_bytes
    packed = resource.unpack()
    secret = secret_pb2.Secret()
    if not packed.Unpack(secret) or not secret.HasField("tls_certificate"):
        return resource.any_bytes
    secret.tls_certificate.private_key.Clear()
    secret.tls_certificate.private_key.inline_string = REDACTED
    out = any_pb2.Any()
    out.Pack(secret, deterministic=True)
    return out.SerializeToString(deterministic=True)


def rfc3339(ts: float) -> str:
    """UTC with microseconds, e.g. 2026-11-22T11:40:00.123456Z."""
    moment = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def type_changes(before: TypeMap | None, after: TypeMap | None) -> dict[str, int]:
    """Counts of resources added, removed and changed from `before` to `after`."""
    if before is after:
        return {"added": 0, "removed": 0, "changed": 0}
    old = before.versions() if before is not None else {}
    new = after.versions() if after is not None else {}
    return {
        "added": sum(1 for n in new if n not in old),
        "removed": sum(1 for n in old if n not in new),
        "changed": sum(1 for n, v in new.items() if n in old and old[n] != v),
    }


def known_types(maps: Iterable[str]) -> list[str]:
    """Type URLs in push order (CDS, EDS, LDS, RDS, SDS, ...), others after."""
    order = {t: i for i, t in enumerate(typeurls.PUSH_ORDER)}
    return sorted(maps, key=lambda t: (order.get(t, len(order)), t))
