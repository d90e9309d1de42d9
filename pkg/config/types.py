"""Value types shared by the spec modules.

- `Duration`: `google.protobuf.Duration`, parsed from the Go duration strings Istio accepts
  (`1.5s`, `100ms`, `5m`, `1h30m`) and printed in protobuf JSON form (`1.500s`).
- The messages of `istio.type.v1beta1` (type/v1beta1/selector.proto): `WorkloadSelector`
  (`matchLabels`), `PortSelector`, `PolicyTargetReference` and the `WorkloadMode` enum. They are
  used by the security, telemetry and extensions kinds, and by `ProxyConfig` and
  `DestinationRule.workloadSelector`. Note that the *networking* `WorkloadSelector` (with
  `labels`, used by Sidecar, ServiceEntry and EnvoyFilter) is a different message; it lives in
  `pkg.config.specs.networking`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pkg.config.fields import (
    NO_CROSS_NAMESPACE,
    NO_EMPTY_LABEL_KEY,
    NO_WILDCARD_LABEL_KEY,
    NO_WILDCARD_LABEL_VALUE,
    C,
    mapping,
    string,
    uint32,
)

_NANOS_PER_SECOND = 1_000_000_000
# Go's time.Duration is an int64 of nanoseconds; Istio parses with Go, so this is the range.
_MAX_NANOS = (1 << 63) - 1

_UNIT_NANOS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": _NANOS_PER_SECOND,
    "m": 60 * _NANOS_PER_SECOND,
    "h": 3600 * _NANOS_PER_SECOND,
}
_COMPONENT = re.compile(r"([0-9]*)(?:\.([0-9]*))?([a-zµμ]+)")


@dataclass(frozen=True, slots=True, order=True)
class Duration:
    """A signed span of time; `seconds` and `nanos` carry the same sign, as in protobuf."""

    seconds: int = 0
    nanos: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse a Go duration string (`300ms`, `1.5s`, `1h30m`, `-2s`, `0`).

        Raises `ValueError` with a short reason for anything Go's `time.ParseDuration` rejects.
        """
        return cls.from_nanoseconds(_parse_go_duration(text))

    @classmethod
    def from_nanoseconds(cls, total: int) -> Duration:
        sign = -1 if total < 0 else 1
        seconds, nanos = divmod(abs(total), _NANOS_PER_SECOND)
        return cls(sign * seconds, sign * nanos)

    @classmethod
    def from_seconds(cls, value: float) -> Duration:
        return cls.from_nanoseconds(round(value * _NANOS_PER_SECOND))

    def total_nanoseconds(self) -> int:
        return self.seconds * _NANOS_PER_SECOND + self.nanos

    def total_seconds(self) -> float:
        return self.seconds + self.nanos / _NANOS_PER_SECOND

    def __str__(self) -> str:
        """Protobuf JSON form: whole seconds, or 3, 6 or 9 fractional digits (`0.100s`)."""
        total = self.total_nanoseconds()
        sign = "-" if total < 0 else ""
        seconds, nanos = divmod(abs(total), _NANOS_PER_SECOND)
        if nanos == 0:
            return f"{sign}{seconds}s"
        if nanos % 1_000_000 == 0:
            frac = f"{nanos // 1_000_000:03d}"
        elif nanos % 1_000 == 0:
            frac = f"{nanos // 1_000:06d}"
        else:
            frac = f"{nanos:09d}"
        return f"{sign}{seconds}.{frac}s"


def _parse_go_duration(text: str) -> int:
    """Nanoseconds of a Go duration string, following `time.ParseDuration`."""
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    total = 0
    pos = 0
    while pos < len(rest):
        match = _COMPONENT.match(rest, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r}")
        whole, frac, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not frac:
            raise ValueError(f"invalid duration {text!r}")
        scale = _UNIT_NANOS.get(unit)
        if scale is None:
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        value = int(whole or "0") * scale
        if frac:
            value += int(frac) * scale // 10 ** len(frac)
        total += value
        if total > _MAX_NANOS:
            raise ValueError(f"invalid duration {text!r}: out of range")
        pos = match.end()
    return -total if negative else total


class WorkloadMode(StrEnum):
    """istio.type.v1beta1.WorkloadMode."""

    UNDEFINED = "UNDEFINED"
    CLIENT = "CLIENT"
    SERVER = "SERVER"
    CLIENT_AND_SERVER = "CLIENT_AND_SERVER"


@dataclass(frozen=True, slots=True)
class WorkloadSelector:
    """istio.type.v1beta1.WorkloadSelector: `matchLabels` select workloads by their labels."""

    match_labels: Mapping[str, str] = mapping(
        max_props=4096,
        rules=(NO_WILDCARD_LABEL_KEY, NO_EMPTY_LABEL_KEY),
        items=C(max_len=63, rules=(NO_WILDCARD_LABEL_VALUE,)),
    )


@dataclass(frozen=True, slots=True)
class PortSelector:
    """istio.type.v1beta1.PortSelector."""

    number: int = uint32(required=True, minimum=1, maximum=65535)


_GROUP_PATTERN = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_KIND_PATTERN = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"


@dataclass(frozen=True, slots=True)
class PolicyTargetReference:
    """istio.type.v1beta1.PolicyTargetReference (`targetRef` / `targetRefs`)."""

    group: str = string(max_len=253, pattern=_GROUP_PATTERN)
    kind: str = string(required=True, min_len=1, max_len=63, pattern=_KIND_PATTERN)
    name: str = string(required=True, min_len=1, max_len=253)
    namespace: str = string(rules=(NO_CROSS_NAMESPACE,))
