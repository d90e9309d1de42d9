"""Istio's tunables, read once from the environment with Istio's names and meanings.

Read in bootstrap and passed down as settings, never read at import time elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from pkg.config.types import Duration
from pkg.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Features:
    # PILOT_DEBOUNCE_AFTER: quiet period before a push (default 100ms).
    debounce_after: float = 0.1
    # PILOT_DEBOUNCE_MAX: longest a push waits while events keep coming (default 10s).
    debounce_max: float = 10.0
    # PILOT_ENABLE_EDS_DEBOUNCE: debounce endpoint-only changes too (default true).
    enable_eds_debounce: bool = True
    # PILOT_PUSH_THROTTLE: concurrent per-proxy pushes; 0 = min(15 + 5 * cores, 100).
    push_throttle: int = 0

    @property
    def effective_push_throttle(self) -> int:
        if self.push_throttle > 0:
            return self.push_throttle
        return min(15 + 5 * (os.cpu_count() or 1), 100)


def _duration(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return Duration.parse(raw).total_seconds()
    except ValueError as e:
        raise ConfigError(f"{name}={raw!r}: {e}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "t", "yes"):
        return True
    if lowered in ("0", "false", "f", "no"):
        return False
    raise ConfigError(f"{name}={raw!r}: must be true or false")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: must be an integer") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r}: must not be negative")
    return value


def from_env(env: Mapping[str, str] | None = None) -> Features:
    env = os.environ if env is None else env
    return Features(
        debounce_after=_duration(env, "PILOT_DEBOUNCE_AFTER", 0.1),
        debounce_max=_duration(env, "PILOT_DEBOUNCE_MAX", 10.0),
        enable_eds_debounce=_bool(env, "PILOT_ENABLE_EDS_DEBOUNCE", True),
        push_throttle=_int(env, "PILOT_PUSH_THROTTLE", 0),
    )
