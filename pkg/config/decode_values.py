"""The leaf decoders of `pkg.config.decode`: scalars, enums, durations, bytes, and the value
constraints (lengths, patterns, ranges, CEL rules) applied to any decoded value."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pkg.config.fields import Constraints, Rule
from pkg.config.types import Duration

Issues = list[tuple[str, str]]
# A decoder takes (value, path of the value, issues) and returns the decoded value or BAD.
Decoder = Callable[[Any, str, Issues], Any]


class Bad:
    __slots__ = ()


BAD: Any = Bad()
_INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
_ONE_MS = 1_000_000


def type_name(value: object) -> str:
    """The JSON type of a value, as Kubernetes names it in errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def value_checks(c: Constraints) -> list[Callable[[Any], str | None]]:
    checks: list[Callable[[Any], str | None]] = []
    if c.min_len is not None:
        n = c.min_len
        checks.append(lambda v: None if len(v) >= n else f"should be at least {n} chars long")
    if c.max_len is not None:
        m = c.max_len
        checks.append(lambda v: None if len(v) <= m else f"Too long: may not be longer than {m}")
    if c.pattern is not None:
        rx = re.compile(c.pattern)
        pattern = c.pattern
        checks.append(lambda v: None if rx.search(v) else f"should match '{pattern}'")
    if c.minimum is not None:
        lo = c.minimum
        checks.append(lambda v: None if v >= lo else f"should be greater than or equal to {lo:g}")
    if c.maximum is not None:
        hi = c.maximum
        checks.append(lambda v: None if v <= hi else f"should be less than or equal to {hi:g}")
    for rule in c.rules:
        checks.append(_rule_check(rule))
    return checks


def _rule_check(rule: Rule) -> Callable[[Any], str | None]:
    return lambda v: None if rule.check(v) else rule.message


# ---- scalars --------------------------------------------------------------------------------


def type_reason(expected: str, value: object) -> str:
    return f'must be of type {expected}: "{type_name(value)}"'


def _string(_c: Constraints) -> Decoder:
    def decode_string(value: Any, path: str, issues: Issues) -> Any:
        if type(value) is str:
            return value
        issues.append((path, type_reason("string", value)))
        return BAD

    return decode_string


def _boolean(_c: Constraints) -> Decoder:
    def decode_boolean(value: Any, path: str, issues: Issues) -> Any:
        if value is True or value is False:
            return value
        issues.append((path, type_reason("boolean", value)))
        return BAD

    return decode_boolean


def _integer(c: Constraints) -> Decoder:
    fmt = c.fmt if c.fmt in _INT_RANGES else "int32"
    lo, hi = _INT_RANGES[fmt]

    def decode_integer(value: Any, path: str, issues: Issues) -> Any:
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is not int:
            issues.append((path, type_reason("integer", value)))
            return BAD
        if not lo <= value <= hi:
            issues.append((path, f"Invalid value: {value}: out of range for {fmt}"))
            return BAD
        return value

    return decode_integer


def _number(_c: Constraints) -> Decoder:
    def decode_number(value: Any, path: str, issues: Issues) -> Any:
        if type(value) is float or type(value) is int:
            return float(value)
        issues.append((path, type_reason("number", value)))
        return BAD

    return decode_number


def _bytes(_c: Constraints) -> Decoder:
    def decode_bytes(value: Any, path: str, issues: Issues) -> Any:
        if type(value) is not str:
            issues.append((path, type_reason("string", value)))
            return BAD
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            issues.append((path, "illegal base64 data"))
            return BAD

    return decode_bytes


def _duration(c: Constraints) -> Decoder:
    any_duration = c.fmt == "any-duration"

    def decode_duration(value: Any, path: str, issues: Issues) -> Any:
        if type(value) is not str:
            issues.append((path, type_reason("string", value)))
            return BAD
        try:
            result = Duration.parse(value)
        except ValueError as err:
            issues.append((path, f"must be a valid duration: {err}"))
            return BAD
        if not any_duration:
            nanos = result.total_nanoseconds()
            if nanos < _ONE_MS:
                issues.append((path, "must be a valid duration greater than 1ms"))
                return BAD
            if nanos % _ONE_MS:
                issues.append((path, "only durations to ms precision are supported"))
                return BAD
        return result

    return decode_duration


SCALARS: dict[type, Callable[[Constraints], Decoder]] = {
    str: _string,
    bool: _boolean,
    int: _integer,
    float: _number,
    bytes: _bytes,
    Duration: _duration,
}
JSON_TYPES = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    bytes: "string",
    Duration: "string",
}


def enum_decoder(enum_cls: type[StrEnum]) -> Decoder:
    members = {m.value: m for m in enum_cls}
    supported = ", ".join(f'"{v}"' for v in members)

    def decode_enum(value: Any, path: str, issues: Issues) -> Any:
        if type(value) is not str:
            issues.append((path, type_reason("string", value)))
            return BAD
        member = members.get(value)
        if member is None:
            issues.append((path, f'Unsupported value: "{value}": supported values: {supported}'))
            return BAD
        return member

    return decode_enum


def int_or_string(value: Any, path: str, issues: Issues) -> Any:
    if (type(value) is int) or (type(value) is str):
        return value
    issues.append((path, type_reason("integer or string", value)))
    return BAD


def passthrough(value: Any, _path: str, _issues: Issues) -> Any:
    return value


def struct(value: Any, path: str, issues: Issues) -> Any:
    if type(value) is dict:
        return value
    issues.append((path, type_reason("object", value)))
    return BAD
