"""What each push reports: one structured log line when it starts, one when it has reached
every proxy it concerned, and its per-push and per-proxy metrics.

    XDS: Pushing version=2026-01-02T03:04:05Z/7 scope=full reasons=config:1
        configs=VirtualService/default/reviews proxies=2 services=3 build_ms=1.2
    XDS: Push complete version=2026-01-02T03:04:05Z/7 scope=full proxies=2 pushed=2
        skipped=0 merged=0 gone=0 responses=2 bytes=5120 duration_ms=3.4 since_change_ms=105.1

(each one line; key=value pairs, values quoted when they hold a space). `scope` is `full` (a new
PushContext: any type may change), `eds` (endpoints only: incremental EDS) or `sds` (istiod-
issued credentials only). A proxy of a push is `pushed` (sent at least one response),
`skipped` (nothing it has changed), `merged` (its push was folded into a later one by the push
queue, which reports the responses) or `gone` (disconnected, or its stream failed, first). A
push that concerned no proxy has no completion line.

The push queue merges the requests of a proxy that is still waiting, so a push's reach is
tracked per proxy: each push started is remembered for each proxy it was queued for, and a
proxy taken off the queue takes every push queued for it until then (`dequeued`).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pilot.model.push_context import PushContext
from pilot.model.push_request import PushRequest
from pilot.xds import monitoring
from pkg.config.model import ConfigKey, Kind

# How many changed configs the start line names before `+N more`.
MAX_CONFIGS_LOGGED = 5

_NOTHING: tuple[PushReach, ...] = ()


class PushScope(StrEnum):
    FULL = "full"
    ENDPOINTS = "eds"
    CREDENTIALS = "sds"


def scope_of(request: PushRequest) -> PushScope:
    if request.credentials_only:
        return PushScope.CREDENTIALS
    if request.endpoints_only:
        return PushScope.ENDPOINTS
    return PushScope.FULL


def describe_configs(keys: Collection[ConfigKey], limit: int = MAX_CONFIGS_LOGGED) -> str:
    """`Kind/ns/name,...` sorted, at most `limit` of them then ` +N more`; `all` for none
    (a push of everything)."""
    if not keys:
        return "all"
    shown = ",".join(heapq.nsmallest(limit, map(str, keys)))
    return shown if len(keys) <= limit else f"{shown} +{len(keys) - limit} more"


def describe_reasons(request: PushRequest) -> str:
    """Istio's `reason:count` pairs (`config:2,endpoint:1`)."""
    if not request.reasons:
        return "unknown"
    return ",".join(f"{r.value}:{n}" for r, n in sorted(request.reasons.items()))


def _value(text: str) -> str:
    return f'"{text}"' if " " in text or not text else text


@dataclass(slots=True)
class PushReach:
    """One push's progress over the proxies it was queued for (mutable, owned by PushLog)."""

    version: str
    scope: PushScope
    proxies: int
    enqueued_at: float  # monotonic
    changed_at: float  # monotonic time of the push's first config event; 0 = unknown
    waiting: int
    pushed: int = 0
    skipped: int = 0
    merged: int = 0
    gone: int = 0
    responses: int = 0
    bytes: int = 0


class PushLog:
    """Called by the DiscoveryServer as a push is started, each proxy is taken off the push
    queue, finishes its push or goes away. Runs on the event loop only."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._clock = clock
        # Connection id → the pushes queued for it since it was last taken off the queue.
        self._awaiting: dict[str, list[PushReach]] = {}

    def started(
        self,
        request: PushRequest,
        push: PushContext,
        conn_ids: Sequence[str],
        build_seconds: float,
        rebuilt: bool,
    ) -> PushReach:
        """A push is about to be queued for `conn_ids`: log it, record its push metrics, and
        follow it to each of them."""
        services = len(push.services.services)
        monitoring.SERVICES.set(services)
        if rebuilt:
            monitoring.PUSHCONTEXT_INIT.observe(build_seconds)
            monitoring.VIRT_SERVICES.set(len(push.list(Kind.VIRTUAL_SERVICE)))
        reach = PushReach(
            push.version, scope_of(request), len(conn_ids), self._clock(), request.start,
            len(conn_ids),
        )  # fmt: skip
        awaiting = self._awaiting
        for conn_id in conn_ids:
            queued = awaiting.get(conn_id)
            if queued is None:
                awaiting[conn_id] = [reach]
            else:
                queued.append(reach)
        self._log.info(
            "XDS: Pushing version=%s scope=%s reasons=%s configs=%s proxies=%d services=%d "
            "build_ms=%.1f",
            push.version,
            reach.scope.value,
            describe_reasons(request),
            _value(describe_configs(request.configs_updated)),
            len(conn_ids),
            services,
            build_seconds * 1000,
        )
        return reach

    def dequeued(self, conn_id: str, request: PushRequest) -> Sequence[PushReach]:
        """The push queue handed this proxy's (merged) request to a worker: the pushes it
        covers, oldest first."""
        covered = self._awaiting.pop(conn_id, _NOTHING)
        if covered:
            monitoring.QUEUE_TIME.observe(self._clock() - covered[0].enqueued_at)
        monitoring.record_triggers(request)
        return covered

    def finished(
        self,
        covered: Sequence[PushReach],
        request: PushRequest | None,
        sent: Sequence[bytes] | None,
    ) -> None:
        """A proxy's push ended, having written `sent` (possibly nothing), or None: it failed."""
        if sent and request is not None and request.start > 0:
            monitoring.CONVERGENCE_TIME.observe(self._clock() - request.start)
        if not covered:
            return
        last = covered[-1]
        for reach in covered:
            if sent is None:
                reach.gone += 1
            elif reach is not last:
                reach.merged += 1
            elif sent:
                reach.pushed += 1
                reach.responses += len(sent)
                reach.bytes += sum(map(len, sent))
            else:
                reach.skipped += 1
            self._settle(reach)

    def forget(self, conn_id: str, covered: Iterable[PushReach] = ()) -> None:
        """The proxy went away: what was still queued or in flight for it will not reach it."""
        for reach in (*self._awaiting.pop(conn_id, _NOTHING), *covered):
            reach.gone += 1
            self._settle(reach)

    def _settle(self, reach: PushReach) -> None:
        reach.waiting -= 1
        if reach.waiting != 0:
            return
        now = self._clock()
        since_change = f"{(now - reach.changed_at) * 1000:.1f}" if reach.changed_at > 0 else "-"
        self._log.info(
            "XDS: Push complete version=%s scope=%s proxies=%d pushed=%d skipped=%d merged=%d "
            "gone=%d responses=%d bytes=%d duration_ms=%.1f since_change_ms=%s",
            reach.version,
            reach.scope.value,
            reach.proxies,
            reach.pushed,
            reach.skipped,
            reach.merged,
            reach.gone,
            reach.responses,
            reach.bytes,
            (now - reach.enqueued_at) * 1000,
            since_change,
        )
