"""Render messages as istioctl does (istioctl/pkg/util/formatting): `log` lines (optionally
coloured), `json` (a tab-indented array, Go's HTML-safe escaping) or `yaml`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum

import yaml

from pkg.analysis.messages import Level, Message

DOC_REF = "istioctl-analyze"
_COLORS = {Level.INFO: "", Level.WARNING: "\033[33m", Level.ERROR: "\033[1;31m"}
_RESET = "\033[0m"


class Format(StrEnum):
    LOG = "log"
    JSON = "json"
    YAML = "yaml"


def render(messages: Sequence[Message], fmt: Format, *, colorize: bool = False) -> str:
    if fmt is Format.LOG:
        return "\n".join(_log_line(msg, colorize) for msg in messages)
    data = [msg.as_dict(DOC_REF) for msg in messages]
    if fmt is Format.JSON:
        text = json.dumps(data, indent="\t", ensure_ascii=False)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=True, allow_unicode=True)


def _log_line(msg: Message, colorize: bool) -> str:
    """`<Level> [<Code>] (<origin>) <text>`; with colour, the level is wrapped as istioctl
    does (Info uncoloured but still followed by the reset sequence)."""
    if not colorize:
        return str(msg)
    head = msg.type.level.label
    return f"{_COLORS[msg.type.level]}{head}{_RESET}{str(msg)[len(head) :]}"
