"""A generic decoder from YAML/JSON values into the frozen spec dataclasses.

`decode(cls, value, path)` walks a parsed document guided by the type hints of `cls` and the
`pkg.config.fields` metadata of each field, and applies the CRD's OpenAPI schema on the way:
unknown fields, wrong types, `null` where the schema does not allow it, enum values, required
fields, oneOf groups (`ONEOFS` on a class), lengths, patterns, ranges and the single-field CEL
rules. Classes with `NULL_IS_ABSENT = True` (the Kubernetes types) read `null` as "not set";
with `IGNORE_UNKNOWN = True` (observed state: Pod, Node) they skip fields they do not declare.
It collects every problem with the path of the offending value, written as Kubernetes does
(`spec.http[0].route[1].weight`, `spec.portLevelMtls[80].mode`).

Speed: each class is compiled once into a table of per-field decoder closures keyed by the
JSON name, so decoding a document is a walk over its keys with no reflection.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import sys
import types
import typing
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from pkg.config.decode_values import (
    BAD,
    JSON_TYPES,
    SCALARS,
    Decoder,
    Issues,
    enum_decoder,
    int_or_string,
    passthrough,
    struct,
    type_name,
    type_reason,
    value_checks,
)
from pkg.config.fields import METADATA_KEY, NONE, Constraints, FieldMeta
from pkg.config.types import Duration

T = TypeVar("T")
__all__ = ["DecodeError", "Issue", "Issues", "decode", "decode_into", "json_name", "type_name"]


@dataclass(frozen=True, slots=True)
class Issue:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class DecodeError(ValueError):
    def __init__(self, issues: tuple[Issue, ...]) -> None:
        super().__init__("; ".join(str(i) for i in issues))
        self.issues = issues


def decode(cls: type[T], value: object, path: str = "") -> T:
    """Decode `value` into `cls`, raising `DecodeError` with every issue found."""
    issues: Issues = []
    result = decode_into(cls, value, path, issues)
    if issues or result is None:
        raise DecodeError(tuple(Issue(p, r) for p, r in issues))
    return result


def decode_into(cls: type[T], value: object, path: str, issues: Issues) -> T | None:
    """Decode `value` into `cls`, appending `(path, reason)` issues; None if it failed."""
    result = _message_decoder(cls)(value, path, issues)
    return None if result is BAD else typing.cast(T, result)


def json_name(py_name: str) -> str:
    """The proto JSON name of a snake_case field (`export_to` → `exportTo`, `from_` → `from`)."""
    name = py_name.rstrip("_")
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# ---- compilation ----------------------------------------------------------------------------

_COMPILED: dict[type, Decoder] = {}


@dataclass(frozen=True, slots=True)
class _FieldPlan:
    name: str
    suffix: str  # ".jsonName"
    decoder: Decoder
    required: bool


def _message_decoder(cls: type) -> Decoder:
    decoder = _COMPILED.get(cls)
    if decoder is None:
        # Register a trampoline first so recursive message types terminate.
        plan: list[Decoder] = []
        _COMPILED[cls] = lambda v, p, i: plan[0](v, p, i)
        plan.append(_compile_message(cls))
        decoder = _COMPILED[cls] = plan[0]
    return decoder


def _compile_message(cls: type) -> Decoder:
    module = sys.modules[cls.__module__]
    hints = typing.get_type_hints(cls, globalns=vars(module), localns={})
    by_json: dict[str, _FieldPlan] = {}
    required: list[tuple[str, str]] = []
    json_of: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        meta: FieldMeta | None = f.metadata.get(METADATA_KEY)
        constraints = meta.constraints if meta else NONE
        name = (meta.json if meta and meta.json else None) or json_name(f.name)
        json_of[f.name] = name
        decoder = _compile_value(hints[f.name], constraints)
        plan = _FieldPlan(f.name, "." + name, decoder, constraints.required)
        by_json[name] = plan
        for alias in meta.aliases if meta else ():
            by_json[alias] = _FieldPlan(f.name, "." + alias, decoder, False)
        if constraints.required:
            required.append((f.name, "." + name))
    oneofs = tuple(
        (group, ", ".join(json_of[n] for n in group)) for group in getattr(cls, "ONEOFS", ())
    )
    # Kubernetes' own (Go struct) types read a JSON null as "not set"; CRD schemas refuse it.
    null_is_absent = bool(getattr(cls, "NULL_IS_ABSENT", False))
    # Observed Kubernetes state (Pod, Node) decodes only the fields pyistio reads.
    ignore_unknown = bool(getattr(cls, "IGNORE_UNKNOWN", False))

    def decode_message(value: Any, path: str, issues: Issues) -> Any:
        if type(value) is not dict:
            issues.append((path, type_reason("object", value)))
            return BAD
        kwargs: dict[str, Any] = {}
        seen: set[str] = set()
        bad = False
        for key, raw in value.items():
            plan = by_json.get(key) if type(key) is str else None
            if raw is None and null_is_absent and plan is not None:
                continue
            if plan is None:
                if ignore_unknown:
                    continue
                issues.append((f"{path}.{key}" if path else str(key), f'unknown field "{key}"'))
                bad = True
                continue
            child = path + plan.suffix if path else plan.suffix[1:]
            if plan.name in seen:
                issues.append((child, "duplicate field (set under two names)"))
                bad = True
                continue
            seen.add(plan.name)
            result = plan.decoder(raw, child, issues)
            if result is BAD:
                bad = True
            else:
                kwargs[plan.name] = result
        for name, suffix in required:
            if name not in seen:
                issues.append((path + suffix if path else suffix[1:], "Required value"))
                bad = True
        for group, names in oneofs:
            found = [n for n in group if kwargs.get(n) is not None]
            if len(found) > 1:
                issues.append((path, f"only one of {names} may be set"))
                bad = True
        if bad:
            return BAD
        return cls(**kwargs)

    return decode_message


def _compile_value(hint: Any, c: Constraints) -> Decoder:
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _compile_value(args[0], c)
        if set(args) == {int, str}:
            return _with_constraints(int_or_string, c, "")
        raise TypeError(f"unsupported union {hint!r}")
    if origin is tuple:
        return _compile_list(typing.get_args(hint)[0], c)
    if origin is collections.abc.Mapping or origin is dict:
        return _compile_map(typing.get_args(hint)[1], c)
    if hint is Any:
        return _with_constraints(struct if c.fmt == "struct" else passthrough, c, "")
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint) and hint is not Duration:
            return _with_constraints(_message_decoder(hint), c, "object")
        if issubclass(hint, StrEnum):
            return _with_constraints(enum_decoder(hint), c, "string")
        base = SCALARS.get(hint)
        if base is not None:
            return _with_constraints(base(c), c, JSON_TYPES[hint])
    raise TypeError(f"unsupported field type {hint!r}")


def _with_constraints(base: Decoder, c: Constraints, json_type: str) -> Decoder:
    """Wrap a decoder with null handling and the value-level constraints of `c`."""
    checks = value_checks(c)
    nullable = c.nullable

    def decode_value(value: Any, path: str, issues: Issues) -> Any:
        if value is None:
            if nullable:
                return None
            if json_type:
                issues.append((path, type_reason(json_type, None)))
                return BAD
        result = base(value, path, issues)
        if result is BAD or not checks:
            return result
        ok = True
        for check in checks:
            reason = check(result)
            if reason is not None:
                issues.append((path, reason))
                ok = False
        return result if ok else BAD

    return decode_value


# ---- containers -----------------------------------------------------------------------------


def _compile_list(item_hint: Any, c: Constraints) -> Decoder:
    item = _compile_value(item_hint, c.items or NONE)
    min_items, max_items = c.min_items, c.max_items
    rules = c.rules
    list_key = c.list_key

    def decode_list(value: Any, path: str, issues: Issues) -> Any:
        if type(value) is not list:
            issues.append((path, type_reason("array", value)))
            return BAD
        out = []
        ok = True
        for index, raw in enumerate(value):
            result = item(raw, f"{path}[{index}]", issues)
            if result is BAD:
                ok = False
            else:
                out.append(result)
        if min_items is not None and len(value) < min_items:
            issues.append((path, f"should have at least {min_items} items"))
            ok = False
        if max_items is not None and len(value) > max_items:
            issues.append((path, f"Too many: {len(value)}: must have at most {max_items} items"))
            ok = False
        if not ok:
            return BAD
        if list_key is not None:
            ok = _unique_keys(out, list_key, path, issues)
        result_tuple = tuple(out)
        for rule in rules:
            if not rule.check(result_tuple):
                issues.append((path, rule.message))
                ok = False
        return result_tuple if ok else BAD

    return _with_constraints(decode_list, Constraints(nullable=c.nullable), "array")


def _unique_keys(items: list[Any], attr: str, path: str, issues: Issues) -> bool:
    seen: set[Any] = set()
    ok = True
    for index, item in enumerate(items):
        key = getattr(item, attr)
        if key in seen:
            issues.append((f"{path}[{index}]", f"Duplicate value: {json_name(attr)}={key!r}"))
            ok = False
        seen.add(key)
    return ok


def map_key(key: object) -> str | None:
    """A YAML mapping key as the string Kubernetes would see after YAML→JSON conversion."""
    if type(key) is str:
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float):
        return str(key)
    return None


def _compile_map(value_hint: Any, c: Constraints) -> Decoder:
    item = _compile_value(value_hint, c.items or NONE)
    min_props, max_props = c.min_props, c.max_props
    rules = c.rules

    def decode_map(value: Any, path: str, issues: Issues) -> Any:
        if type(value) is not dict:
            issues.append((path, type_reason("object", value)))
            return BAD
        out: dict[str, Any] = {}
        ok = True
        for raw_key, raw in value.items():
            key = map_key(raw_key)
            if key is None:
                issues.append((path, f"map keys must be strings, found {type_name(raw_key)}"))
                ok = False
                continue
            result = item(raw, f"{path}[{key}]", issues)
            if result is BAD:
                ok = False
            else:
                out[key] = result
        if min_props is not None and len(value) < min_props:
            issues.append((path, f"should have at least {min_props} properties"))
            ok = False
        if max_props is not None and len(value) > max_props:
            issues.append(
                (path, f"Too many: {len(value)}: must have at most {max_props} properties")
            )
            ok = False
        if not ok:
            return BAD
        for rule in rules:
            if not rule.check(out):
                issues.append((path, rule.message))
                ok = False
        return out if ok else BAD

    return _with_constraints(decode_map, Constraints(nullable=c.nullable), "object")
