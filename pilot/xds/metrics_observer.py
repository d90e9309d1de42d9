"""The metrics observer: what the xDS streams report (pilot/xds/observer.py) → Istio's
per-response and per-rejection metrics (pilot/xds/monitoring.py).

It runs on the event loop for every response of every push (a thousand calls per push at a
thousand proxies), so each call only looks up children resolved once per type URL and bumps
them: no label sets are built per call, except for the reject gauges' `node`/`err` labels,
which are unbounded in Istio too and only touched on a NACK.

`pilot_xds` counts connected proxies by Istio version. istioctl's debug streams
(`istio.io/debug/...` over xDS) are answered without ever being registered as connections
(pilot/xds/debug_xds.py), so they are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

from pilot.xds import monitoring
from pilot.xds.observer import ExpiredNonce, Nacked, Sent

if TYPE_CHECKING:
    from pilot.xds.connection import Connection


@dataclass(frozen=True, slots=True)
class _TypeMetrics:
    """One type URL's children of the per-response metrics."""

    pushes: Counter
    push_time: Histogram
    config_size: Histogram
    total_rejects: Counter
    expired_nonce: Counter


def _resolve(type_url: str) -> _TypeMetrics:
    short = monitoring.metric_type(type_url)
    return _TypeMetrics(
        pushes=monitoring.XDS_PUSHES.labels(type=short),
        push_time=monitoring.PUSH_TIME.labels(type=short),
        # Istio labels the size with the full type URL, the others with the short type.
        config_size=monitoring.CONFIG_SIZE.labels(type=type_url),
        total_rejects=monitoring.TOTAL_REJECTS.labels(type=short),
        expired_nonce=monitoring.EXPIRED_NONCE.labels(type=short),
    )


class XdsMetrics:
    """Subscribe to `DiscoveryServer.events` (the composition root does)."""

    def __init__(self) -> None:
        # Type URLs come from the server's generators: a small, bounded set.
        self._types: dict[str, _TypeMetrics] = {}
        # Counted in pilot_xds: connection → the `version` label it was counted under.
        self._counted: dict[Connection, str] = {}

    def _type(self, type_url: str) -> _TypeMetrics:
        found = self._types.get(type_url)
        if found is None:
            found = self._types[type_url] = _resolve(type_url)
        return found

    def connected(self, conn: Connection) -> None:
        version = conn.proxy.istio_version
        self._counted[conn] = version
        monitoring.XDS_CLIENTS.labels(version=version).inc()

    def sent(self, conn: Connection, event: Sent) -> None:
        metrics = self._types.get(event.type_url) or self._type(event.type_url)
        metrics.pushes.inc()
        metrics.push_time.observe(event.elapsed)
        metrics.config_size.observe(event.size)

    def nacked(self, conn: Connection, event: Nacked) -> None:
        self._type(event.type_url).total_rejects.inc()
        legacy = monitoring.REJECTS_BY_TYPE.get(event.type_url)
        if legacy is not None:
            err = monitoring.grpc_code_name(event.code)
            legacy.labels(node=conn.proxy.id, err=err).inc()

    def expired_nonce(self, conn: Connection, event: ExpiredNonce) -> None:
        self._type(event.type_url).expired_nonce.inc()

    def disconnected(self, conn: Connection) -> None:
        version = self._counted.pop(conn, None)
        if version is not None:
            monitoring.XDS_CLIENTS.labels(version=version).dec()
