"""The difference between two sets of xDS resources of one type: added, removed, changed, with a
readable unified diff of their Envoy JSON (proto JSON, `@type` on Anys, keys sorted) and the
change in serialized bytes.

Resources are compared by their serialized bytes (istiod sends exactly those bytes); the JSON is
only for people. Private keys in secrets are shown as "[redacted]", as in config dumps.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from google.protobuf import any_pb2, json_format

from pilot.xds.wire import BuiltResource

REDACTED = "[redacted]"
DIFF_CONTEXT = 3


class ChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class ResourceChange:
    name: str
    kind: ChangeKind
    before_bytes: int
    after_bytes: int
    diff: str  # unified diff of the JSON (a/TYPE/NAME → b/TYPE/NAME)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "change": self.kind.value,
            "bytesBefore": self.before_bytes,
            "bytesAfter": self.after_bytes,
            "diff": self.diff,
        }


@dataclass(frozen=True, slots=True)
class TypeDiff:
    """One xDS type (CDS, EDS, LDS, RDS, SDS) of one class of proxies."""

    type: str
    before_bytes: int
    after_bytes: int
    changes: tuple[ResourceChange, ...]

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def names(self, kind: ChangeKind) -> list[str]:
        return [c.name for c in self.changes if c.kind is kind]

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "added": self.names(ChangeKind.ADDED),
            "removed": self.names(ChangeKind.REMOVED),
            "changed": self.names(ChangeKind.CHANGED),
            "bytesBefore": self.before_bytes,
            "bytesAfter": self.after_bytes,
            "sizeChange": self.after_bytes - self.before_bytes,
            "resources": [c.as_json() for c in self.changes],
        }


def resource_json(resource: BuiltResource) -> dict[str, Any]:
    """A resource as Envoy's proto JSON (with its `@type`), private keys redacted."""
    value = any_pb2.Any.FromString(resource.any_bytes)
    out: dict[str, Any] = json_format.MessageToDict(value)
    _redact(out)
    return out


def _redact(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "privateKey" and isinstance(value, dict):
                node[key] = {"inlineString": REDACTED}
            else:
                _redact(value)
    elif isinstance(node, list):
        for item in node:
            _redact(item)


def _lines(resource: BuiltResource | None) -> list[str]:
    if resource is None:
        return []
    return json.dumps(resource_json(resource), indent=2, sort_keys=True).splitlines(keepends=True)


def unified_diff(
    type_name: str, name: str, before: BuiltResource | None, after: BuiltResource | None
) -> str:
    lines = difflib.unified_diff(
        _lines(before),
        _lines(after),
        fromfile=f"a/{type_name}/{name}" if before is not None else "/dev/null",
        tofile=f"b/{type_name}/{name}" if after is not None else "/dev/null",
        n=DIFF_CONTEXT,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def diff_type(
    type_name: str,
    before: Mapping[str, BuiltResource],
    after: Mapping[str, BuiltResource],
) -> TypeDiff:
    """Added, removed and changed resources of one type (sorted by name)."""
    changes: list[ResourceChange] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old is not None and new is not None and old.any_bytes == new.any_bytes:
            continue
        kind = (
            ChangeKind.ADDED
            if old is None
            else ChangeKind.REMOVED
            if new is None
            else ChangeKind.CHANGED
        )
        changes.append(
            ResourceChange(
                name,
                kind,
                len(old.any_bytes) if old is not None else 0,
                len(new.any_bytes) if new is not None else 0,
                unified_diff(type_name, name, old, new),
            )
        )
    return TypeDiff(
        type_name,
        sum(len(r.any_bytes) for r in before.values()),
        sum(len(r.any_bytes) for r in after.values()),
        tuple(changes),
    )
