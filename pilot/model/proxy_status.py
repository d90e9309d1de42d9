"""Per-push proxy problems found while generating config (Istio's PushContext.AddMetric /
ProxyStatus), shown under `ProxyStatus` by /debug/push_status.

Generation is pure, so this is the one thing it records on the snapshot: a metric name (e.g.
`pilot_vservice_dup_domain`) → key (e.g. a virtual host name) → the proxy and a message, the
shape Istio's push status shows. It lives in the PushContext memo, so every push starts empty.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pilot.model.push_context import PushContext

# Istio's metric names.
DUPLICATED_DOMAINS = "pilot_vservice_dup_domain"

_MEMO_KEY = ("proxy-status",)


@dataclass
class ProxyStatus:
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _entries: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def add(self, metric: str, key: str, proxy: str, message: str) -> None:
        with self._lock:
            self._entries.setdefault(metric, {})[key] = {"proxy": proxy, "message": message}

    def as_json(self) -> dict[str, dict[str, dict[str, str]]]:
        with self._lock:
            return {m: {k: dict(v) for k, v in e.items()} for m, e in self._entries.items()}


def proxy_status(push: PushContext) -> ProxyStatus:
    """The ProxyStatus of a PushContext (created on first use)."""
    status: ProxyStatus = push.memo(_MEMO_KEY, ProxyStatus)
    return status
