"""`-o json` and `-o yaml`: Envoy's own JSON for the resources.

Resources are printed as proto3 JSON with Envoy's field names (snake_case, as Envoy's admin
`/config_dump` writes them) and `@type` in every `Any`, so the output parses back with
`google.protobuf.json_format` into the same Envoy types: a list of `Cluster`s, `Listener`s,
`RouteConfiguration`s, `ClusterLoadAssignment`s or admin `ClusterStatus`es, or one admin
section (`SecretsConfigDump`, `BootstrapConfigDump`, the whole `ConfigDump`), as istioctl
prints them. YAML is the same document in YAML.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.message import Message


class OutputFormat(enum.Enum):
    SHORT = "short"
    JSON = "json"
    YAML = "yaml"

    @classmethod
    def parse(cls, text: str) -> OutputFormat:
        """`short`, `json` or `yaml`; `table` is accepted for `short`."""
        value = text.strip().lower()
        if value == "table":
            return cls.SHORT
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unsupported output format {text!r} (one of json|yaml|short)"
            ) from None


def to_dict(message: Message) -> dict[str, Any]:
    """Proto3 JSON as plain dicts and lists (integral doubles written as integers, as Envoy
    and istioctl write `google.protobuf.Struct` numbers)."""
    out: dict[str, Any] = _plain(
        json_format.MessageToDict(message, preserving_proto_field_name=True)
    )
    return out


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if isinstance(node, float) and node.is_integer() and abs(node) < 2**53:
        return int(node)
    return node


def messages(items: Iterable[Message], fmt: OutputFormat) -> str:
    """A JSON (or YAML) list of `items`."""
    return document([to_dict(m) for m in items], fmt)


def message(item: Message, fmt: OutputFormat) -> str:
    return document(to_dict(item), fmt)


def document(data: Any, fmt: OutputFormat) -> str:
    if fmt is OutputFormat.YAML:
        text: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        return text
    return json.dumps(data, indent=4, ensure_ascii=False) + "\n"
