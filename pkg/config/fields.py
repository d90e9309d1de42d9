"""Field specifiers for the spec dataclasses: defaults plus the CRD schema of each field.

The spec modules declare their fields with these helpers, e.g.

    number: int = uint32(required=True, rules=(PORT_RANGE,))
    hosts: tuple[str, ...] = repeated(min_items=1, items=C(max_len=64))
    port: Port | None = field(default=None, metadata=schema(required=True))

Each helper returns a `dataclasses.field` with the right proto zero value as default and a
`Constraints` record in its metadata (`schema()` gives the metadata alone, for message fields).
Classes may also declare `ONEOFS` (proto oneof groups, by Python field name) and
`NULL_IS_ABSENT` (Kubernetes types, which read `null` as "not set").

`pkg.config.decode` enforces all of this while it decodes a document, which is how the OpenAPI
schema of Istio's CRDs (required, minLength, maxLength, pattern, minimum/maximum,
minItems/maxItems, min/maxProperties, nullable, and the CEL rules that look at one field only)
is applied without an API server. Rules that relate
several fields live in `pkg.config.validation`.

A field declared with a plain default (`host: str = ""`) has no constraints beyond its type;
an `int` field without a format is an int32, a `float` is a double.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any

METADATA_KEY = "pyistio"


@dataclass(frozen=True, slots=True)
class Rule:
    """One CEL rule of a CRD (`x-kubernetes-validations`) on a single value, as a predicate."""

    check: Callable[[Any], bool]
    message: str


@dataclass(frozen=True, slots=True)
class Constraints:
    """The OpenAPI schema of one value. `items` applies to list elements and map values."""

    required: bool = False
    # Integer/number format: int32 (default for int), uint32, int64, uint64, double.
    # "struct": a google.protobuf.Struct (must be an object). "any-duration": a Duration
    # without the CRDs' usual `>= 1ms` rule. "bytes": base64 text decoded to bytes.
    fmt: str = ""
    nullable: bool = False
    min_len: int | None = None
    max_len: int | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_items: int | None = None
    max_items: int | None = None
    min_props: int | None = None
    max_props: int | None = None
    items: Constraints | None = None
    rules: tuple[Rule, ...] = ()
    # x-kubernetes-list-type=map: the (Python) name of the attribute that keys list items.
    list_key: str | None = None


C = Constraints
NONE = Constraints()


@dataclass(frozen=True, slots=True)
class FieldMeta:
    json: str | None
    aliases: tuple[str, ...]
    constraints: Constraints


def _field(
    default: Any = MISSING,
    factory: Any = MISSING,
    *,
    json: str | None,
    aliases: tuple[str, ...],
    c: Mapping[str, Any],
) -> Any:
    meta = {METADATA_KEY: FieldMeta(json, aliases, Constraints(**c))}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def string(*, json: str | None = None, aliases: tuple[str, ...] = (), **c: Any) -> Any:
    """A proto `string` (default "")."""
    return _field("", json=json, aliases=aliases, c=c)


def int32(*, json: str | None = None, aliases: tuple[str, ...] = (), **c: Any) -> Any:
    return _field(0, json=json, aliases=aliases, c={"fmt": "int32", **c})


def uint32(*, json: str | None = None, aliases: tuple[str, ...] = (), **c: Any) -> Any:
    return _field(0, json=json, aliases=aliases, c={"fmt": "uint32", **c})


def int64(*, json: str | None = None, aliases: tuple[str, ...] = (), **c: Any) -> Any:
    return _field(0, json=json, aliases=aliases, c={"fmt": "int64", **c})


def uint64(*, json: str | None = None, aliases: tuple[str, ...] = (), **c: Any) -> Any:
    return _field(0, json=json, aliases=aliases, c={"fmt": "uint64", **c})


def double(*, json: str | None = None, aliases: tuple[str, ...] = (), **c: Any) -> Any:
    return _field(0.0, json=json, aliases=aliases, c=c)


def boolean(*, json: str | None = None, aliases: tuple[str, ...] = (), **c: Any) -> Any:
    return _field(False, json=json, aliases=aliases, c=c)


def schema(*, json: str | None = None, aliases: tuple[str, ...] = (), **c: Any) -> dict[str, Any]:
    """Field metadata alone, for `field(default=None, metadata=schema(...))` on message fields."""
    return {METADATA_KEY: FieldMeta(json, aliases, Constraints(**c))}


def optional(*, json: str | None = None, aliases: tuple[str, ...] = (), **c: Any) -> Any:
    """A scalar oneof member: `None` when absent (messages use `field(metadata=schema(...))`)."""
    return _field(None, json=json, aliases=aliases, c=c)


def wrapper(
    fmt: str = "", *, json: str | None = None, aliases: tuple[str, ...] = (), **c: Any
) -> Any:
    """A google.protobuf wrapper (BoolValue, UInt32Value, ...): nullable, `None` when absent."""
    return _field(None, json=json, aliases=aliases, c={"fmt": fmt, "nullable": True, **c})


def repeated(*, json: str | None = None, aliases: tuple[str, ...] = (), **c: Any) -> Any:
    """A `repeated` field: a tuple, `()` when absent."""
    return _field((), json=json, aliases=aliases, c=c)


def mapping(*, json: str | None = None, aliases: tuple[str, ...] = (), **c: Any) -> Any:
    """A `map<string, V>` field: a dict with string keys, empty when absent."""
    return _field(factory=dict, json=json, aliases=aliases, c=c)


# ---- CEL rules shared by several CRDs -------------------------------------------------------


def _port_in_range(value: Any) -> bool:
    return isinstance(value, int) and 0 < value <= 65535


PORT_RANGE = Rule(_port_in_range, "port must be between 1-65535")
NO_WILDCARD_LABEL_KEY = Rule(
    lambda labels: all("*" not in k for k in labels), "wildcard not allowed in label key match"
)
NO_EMPTY_LABEL_KEY = Rule(lambda labels: all(k != "" for k in labels), "key must not be empty")
NO_WILDCARD_LABEL_VALUE = Rule(lambda v: "*" not in v, "wildcard not allowed in label value match")
NO_WILDCARD_SELECTOR_VALUE = Rule(lambda v: "*" not in v, "wildcard is not supported in selector")
NO_CROSS_NAMESPACE = Rule(
    lambda v: v == "", "cross namespace referencing is not currently supported"
)


# ---- CEL's url()/isURL(), which parse like Go's url.ParseRequestURI -------------------------

_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_HOST_OK = frozenset("-_.~!$&'()*+,;=:[]<>\"")
_USERINFO_OK = frozenset("-._:~!$&'()*+,;=%@")


def url_scheme(text: str) -> str | None:
    """The (lower-cased) scheme of `text` if CEL's `isURL` accepts it, else None."""
    if not text or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return None
    if text == "*":
        return ""
    if text.startswith(":"):
        return None
    match = _URL_SCHEME.match(text)
    scheme, rest = (match.group()[:-1].lower(), text[match.end() :]) if match else ("", text)
    rest = rest.split("?", 1)[0]
    if not rest.startswith("/"):
        return scheme or None
    if scheme and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        if not _valid_authority(authority):
            return None
        rest = slash + path
    return scheme if _valid_escapes(rest) else None


def _valid_escapes(text: str) -> bool:
    i = 0
    while (i := text.find("%", i)) != -1:
        if (
            not all(ch in "0123456789abcdefABCDEF" for ch in text[i + 1 : i + 3])
            or len(text[i + 1 : i + 3]) != 2
        ):
            return False
        i += 3
    return True


def _valid_authority(authority: str) -> bool:
    userinfo, at, host = authority.rpartition("@")
    if at and not (all(ch.isalnum() or ch in _USERINFO_OK for ch in userinfo)):
        return False
    if at and not _valid_escapes(userinfo):
        return False
    if host.startswith("["):
        end = host.rfind("]")
        if end < 0 or not _valid_port(host[end + 1 :]):
            return False
    elif (colon := host.rfind(":")) != -1 and not _valid_port(host[colon:]):
        return False
    if not _valid_escapes(host):
        return False
    return all(ch.isalnum() or ch in _HOST_OK or ch == "%" or ord(ch) >= 0x80 for ch in host)


def _valid_port(colon_port: str) -> bool:
    return (
        colon_port == "" or (colon_port[0] == ":" and colon_port[1:].isdigit()) or colon_port == ":"
    )
