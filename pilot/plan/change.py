"""A planned change: the documents of a change file, validated, and the config they would make.

The documents are validated exactly as `istioctl validate` does (`load_documents` +
`parse_object`, `kind: List` expanded, Kubernetes kinds pyistio does not read skipped); any
error makes the change invalid and nothing is planned. A document annotated
`plan.pyistio.io/delete: "true"` stands for deleting that object (kind, namespace and name
are what count; the document must still be valid, e.g. the file it was applied from).

`apply_change` is pure: it returns a new kind → objects mapping, leaving the given one (the
live store's) untouched. An updated object keeps its creation time, as the store keeps it
(Istio orders competing objects by creation time); a new one is stamped `now`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pkg.config.model import Config, ConfigKey, Kind
from pkg.config.schema import parse_object
from pkg.config.yamldocs import list_items, load_documents

DELETE_ANNOTATION = "plan.pyistio.io/delete"


@dataclass(frozen=True, slots=True)
class Change:
    """What a change file asks for: objects to create or replace, objects to delete."""

    upserts: tuple[Config[Any], ...] = ()
    deletes: tuple[ConfigKey, ...] = ()
    errors: tuple[str, ...] = ()  # validation errors: the change is invalid
    warnings: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def keys(self) -> tuple[ConfigKey, ...]:
        return tuple(c.key for c in self.upserts) + self.deletes


def parse_change(data: str | bytes, source: str = "change", namespace: str = "default") -> Change:
    """The change a file describes (see the module docstring), with istioctl validate's
    messages (`<kind>/<ns>/<name>: <field path>: <reason>`) when it is invalid."""
    upserts: dict[ConfigKey, Config[Any]] = {}
    deletes: dict[ConfigKey, None] = {}
    errors: list[str] = []
    warnings: list[str] = []
    for document in load_documents(data, source):
        if document.error is not None:
            errors.append(
                f"{source}: document {document.index}: failed to decode: {document.error}"
            )
            continue
        for obj in list_items(document.obj):
            parsed = parse_object(obj, default_namespace=namespace)
            errors.extend(str(e) for e in parsed.errors)
            warnings.extend(str(w) for w in parsed.warnings)
            config = parsed.config
            if config is None:
                continue
            if config.meta.annotations.get(DELETE_ANNOTATION, "").lower() == "true":
                deletes[config.key] = None
                upserts.pop(config.key, None)
            else:
                upserts[config.key] = config
                deletes.pop(config.key, None)
    if not errors and not upserts and not deletes:
        errors.append(f"{source}: no Istio object to plan (the change is empty)")
    return Change(tuple(upserts.values()), tuple(deletes), tuple(errors), tuple(warnings))


def apply_change(
    configs: Mapping[Kind, tuple[Config[Any], ...]], change: Change, now: float | None = None
) -> dict[Kind, tuple[Config[Any], ...]]:
    """`configs` with the change applied (a new mapping; `configs` is not modified)."""
    stamp = time.time() if now is None else now
    current: dict[ConfigKey, Config[Any]] = {c.key: c for cs in configs.values() for c in cs}
    for key in change.deletes:
        current.pop(key, None)
    for config in change.upserts:
        old = current.get(config.key)
        created = old.meta.creation_timestamp if old is not None else stamp
        if not config.meta.creation_timestamp:
            meta = dataclasses.replace(config.meta, creation_timestamp=created)
            config = dataclasses.replace(config, meta=meta)
        current[config.key] = config
    out: dict[Kind, list[Config[Any]]] = {}
    for key in sorted(current):
        out.setdefault(key.kind, []).append(current[key])
    return {kind: tuple(items) for kind, items in out.items()}
