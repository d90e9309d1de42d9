"""The fake API server's object store: etcd-like revisions, an event log, selectors, patches.

One cluster-wide revision counter; every write gets the next revision, which becomes the
object's `metadata.resourceVersion` and the revision of its event. The event log keeps every
event since the last `compact()`; a watch from an older revision is told 410 Gone.
Objects are stored once per (group, plural) and served in any of the resource's versions.
"""

from __future__ import annotations

import base64
import copy
import re
import threading
import uuid
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.helpers.kube.resources import Resource

Obj = dict[str, Any]


class ApiError(Exception):
    """Becomes a `Status` response (code, reason as the real server spells them)."""

    def __init__(self, code: int, reason: str, message: str, name: str = "", kind: str = ""):
        super().__init__(message)
        self.code, self.reason, self.message, self.name, self.kind = (
            code,
            reason,
            message,
            name,
            kind,
        )

    def status(self, group: str = "") -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": {"name": self.name, "group": group, "kind": self.kind},
            "code": self.code,
        }


# ---- selectors ---------------------------------------------------------------------------

_REQ = re.compile(
    r"^\s*(?:(?P<not>!)\s*(?P<nkey>[\w./-]+)"
    r"|(?P<key>[\w./-]+)\s*(?:(?P<op>==|!=|=)\s*(?P<val>[\w.-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<set>[^)]*)\))?)\s*$"
)


def parse_label_selector(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """Requirements (key, op, values) with op in =, !=, in, notin, exists, !exists."""
    reqs: list[tuple[str, str, tuple[str, ...]]] = []
    for part in re.split(r",(?![^(]*\))", text):
        if not part.strip():
            continue
        m = _REQ.match(part)
        if m is None:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
        if m["nkey"]:
            reqs.append((m["nkey"], "!exists", ()))
        elif m["op"]:
            reqs.append((m["key"], "!=" if m["op"] == "!=" else "=", (m["val"],)))
        elif m["setop"]:
            values = tuple(v.strip() for v in m["set"].split(",") if v.strip())
            reqs.append((m["key"], m["setop"], values))
        else:
            reqs.append((m["key"], "exists", ()))
    return reqs


def labels_match(reqs: list[tuple[str, str, tuple[str, ...]]], labels: dict[str, str]) -> bool:
    for key, op, values in reqs:
        present, value = key in labels, labels.get(key)
        if op == "=":
            ok = present and value == values[0]
        elif op == "!=":
            ok = value != values[0]
        elif op == "in":
            ok = present and value in values
        elif op == "notin":
            ok = value not in values
        else:
            ok = present == (op == "exists")
        if not ok:
            return False
    return True


def parse_field_selector(
    text: str, extra_fields: tuple[str, ...] = ()
) -> list[tuple[str, bool, str]]:
    """(field, equal, value) for `metadata.name`, `metadata.namespace` and the resource's own
    field labels (`extra_fields`, e.g. a Secret's `type`), as the real server supports."""
    out: list[tuple[str, bool, str]] = []
    supported = ("metadata.name", "metadata.namespace", *extra_fields)
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.match(r"^([\w.]+)\s*(==|!=|=)\s*(.*)$", part)
        if m is None or m[1] not in supported:
            raise ApiError(400, "BadRequest", f'field label not supported: "{part}"')
        out.append((m[1], m[2] != "!=", m[3]))
    return out


@dataclass(frozen=True, slots=True)
class Filter:
    namespace: str = ""  # "" = all namespaces
    labels: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    fields: tuple[tuple[str, bool, str], ...] = ()

    @classmethod
    def parse(
        cls,
        namespace: str,
        label_selector: str,
        field_selector: str,
        extra_fields: tuple[str, ...] = (),
    ) -> Filter:
        return cls(
            namespace,
            tuple(parse_label_selector(label_selector)),
            tuple(parse_field_selector(field_selector, extra_fields)),
        )

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj["metadata"]
        if self.namespace and meta.get("namespace", "") != self.namespace:
            return False
        for name, equal, value in self.fields:
            if name.startswith("metadata."):
                actual = meta.get(name.split(".")[1], "")
            else:
                actual = obj.get(name, "")
            if (actual == value) != equal:
                return False
        return labels_match(list(self.labels), meta.get("labels") or {})


# ---- patches -----------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, test (move/copy are not served)."""
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
    for op in ops:
        parts = _pointer(op.get("path", ""))
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last, kind = parts[-1], op.get("op")
        try:
            if kind == "test":
                cur = parent[int(last)] if isinstance(parent, list) else parent[last]
                if cur != op.get("value"):
                    raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
            elif kind == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            elif kind in ("add", "replace"):
                if isinstance(parent, list):
                    if last == "-":
                        parent.append(op["value"])
                    elif kind == "add":
                        parent.insert(int(last), op["value"])
                    else:
                        parent[int(last)] = op["value"]
                else:
                    if kind == "replace" and last not in parent:
                        raise KeyError(last)
                    parent[last] = op["value"]
            else:
                raise ApiError(422, "Invalid", f"unsupported JSON patch operation {kind!r}")
        except (KeyError, IndexError, ValueError) as e:
            raise ApiError(422, "Invalid", f"JSON patch {kind} {op.get('path')}: {e}") from e
    return doc


# ---- the store ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    rv: int
    resource: Resource
    type: str  # ADDED, MODIFIED or DELETED in the store
    old: Obj | None  # before the write (None for ADDED)
    new: Obj  # after the write; for DELETED the object with the deletion's revision

    def type_for(self, f: Filter) -> str | None:
        """The event a watch with filter `f` sees (selectors move objects in and out)."""
        if self.type == "ADDED":
            return "ADDED" if f.matches(self.new) else None
        if self.type == "DELETED":
            return "DELETED" if f.matches(self.old) else None
        was, now = f.matches(self.old), f.matches(self.new)
        if was and now:
            return "MODIFIED"
        return "ADDED" if now else "DELETED" if was else None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """Thread-safe objects and events; `changed` is notified after every write."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.rv = 1
        self.compacted = 1  # watches from a revision older than this get 410
        self._objects: dict[tuple[str, str], dict[tuple[str, str], Obj]] = {}
        self._events: list[Event] = []

    # -- reads
    def _table(self, r: Resource) -> dict[tuple[str, str], Obj]:
        return self._objects.setdefault((r.group, r.plural), {})

    def snapshot(self, r: Resource, f: Filter) -> tuple[int, list[Obj]]:
        with self.changed:
            objs = [copy.deepcopy(o) for k, o in sorted(self._table(r).items()) if f.matches(o)]
            return self.rv, objs

    def get(self, r: Resource, namespace: str, name: str) -> Obj:
        with self.changed:
            obj = self._table(r).get((namespace, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{r.plural} "{name}" not found', name, r.plural)
            return copy.deepcopy(obj)

    def events_after(self, rv: int) -> list[Event]:
        """Events with a revision above `rv` (caller holds `changed`)."""
        if rv < self.compacted - 1:
            raise ApiError(410, "Expired", f"too old resource version: {rv} ({self.compacted})")
        i = bisect_right([e.rv for e in self._events], rv)
        return self._events[i:]

    # -- writes (each takes the lock, bumps the revision, logs and notifies)
    def _commit(self, r: Resource, old: Obj | None, new: Obj, delete: bool = False) -> Obj:
        if r.kind == "Secret" and "stringData" in new:  # write-only: merged into data
            data = new.setdefault("data", {}) or {}
            for k, v in (new.pop("stringData") or {}).items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            new["data"] = data
        self.rv += 1
        new["metadata"]["resourceVersion"] = str(self.rv)
        key = (new["metadata"].get("namespace", ""), new["metadata"]["name"])
        if delete:
            del self._table(r)[key]
        else:
            self._table(r)[key] = new
        kind = "DELETED" if delete else "ADDED" if old is None else "MODIFIED"
        self._events.append(Event(self.rv, r, kind, copy.deepcopy(old), copy.deepcopy(new)))
        self.changed.notify_all()
        return copy.deepcopy(new)

    def create(self, r: Resource, namespace: str, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{r.kind}: metadata.name: Required value", "", r.plural)
        self._check_namespace(r, namespace, meta)
        with self.changed:
            if (meta.get("namespace", ""), name) in self._table(r):
                raise ApiError(
                    409, "AlreadyExists", f'{r.plural} "{name}" already exists', name, r.plural
                )
            meta.pop("resourceVersion", None)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
            return self._commit(r, None, obj)

    def update(self, r: Resource, namespace: str, name: str, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("name", name)
        if meta["name"] != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        self._check_namespace(r, namespace, meta)
        with self.changed:
            old = self._table(r).get((meta.get("namespace", ""), name))
            if old is None:
                raise ApiError(404, "NotFound", f'{r.plural} "{name}" not found', name, r.plural)
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {r.plural} "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                    name,
                    r.plural,
                )
            for k in ("uid", "creationTimestamp", "generation"):
                meta[k] = old["metadata"][k]
            changed = {k: v for k, v in obj.items() if k not in ("metadata", "status")} != {
                k: v for k, v in old.items() if k not in ("metadata", "status")
            }
            meta["generation"] = old["metadata"]["generation"] + (1 if changed else 0)
            return self._commit(r, old, obj)

    def delete(self, r: Resource, namespace: str, name: str, precondition_rv: str = "") -> Obj:
        with self.changed:
            old = self._table(r).get((namespace, name))
            if old is None:
                raise ApiError(404, "NotFound", f'{r.plural} "{name}" not found', name, r.plural)
            if precondition_rv and precondition_rv != old["metadata"]["resourceVersion"]:
                raise ApiError(
                    409, "Conflict", f"precondition failed: resourceVersion {precondition_rv}"
                )
            return self._commit(r, old, copy.deepcopy(old), delete=True)

    def compact(self) -> int:
        """Forget every event so far: a watch from any earlier revision gets 410 Gone."""
        with self.changed:
            self._events.clear()
            self.compacted = self.rv + 1
            return self.rv

    @staticmethod
    def _check_namespace(r: Resource, namespace: str, meta: Obj) -> None:
        if not r.namespaced:
            meta.pop("namespace", None)
            return
        if meta.setdefault("namespace", namespace) != namespace:
            raise ApiError(
                400, "BadRequest", "the namespace of the provided object does not match the URL"
            )
