""" "Is my change live everywhere?": one object's reach, from the push ledger (ledger.py).

The answer is about the object's latest version (from its config event). The pushes that
carried it are those whose snapshot held that version. For each connected proxy:
- a delivery of such a push (or a later one its queue merged it into) gives its status:
  NACKED if any response carrying the change was rejected, else PENDING while one is
  unanswered, else ACKED; UP TO DATE when the push concerned it but changed nothing it has;
  NOT CONCERNED when the push skipped it (proxy_dependencies.py);
- a proxy that connected after the change was built into a snapshot received it with its first
  config: its status is that of the responses to its own requests;
- otherwise the push has not reached it yet (QUEUED), or the ledger has forgotten (UNKNOWN).
"Event to last ACK" runs from the time istiod saw the change to the last ACK of a response of
a push carrying it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pilot.xds.ledger import (
    MAX_OBJECTS,
    Delivery,
    ObjectRecord,
    ObjectVersion,
    Outcome,
    ProxyRecord,
    PushLedger,
    SendRecord,
    SendStatus,
)
from pkg.config.model import ConfigKey, Kind
from pkg.xds import typeurls


class ProxyStatus(StrEnum):
    ACKED = "ACKED"
    NACKED = "NACKED"
    PENDING = "PENDING"
    UP_TO_DATE = "UP TO DATE"
    NOT_CONCERNED = "NOT CONCERNED"
    REVERTED = "REVERTED"
    QUEUED = "QUEUED"
    UNKNOWN = "UNKNOWN"


_SUMMARY_KEYS = {
    ProxyStatus.ACKED: "acked",
    ProxyStatus.NACKED: "nacked",
    ProxyStatus.PENDING: "pending",
    ProxyStatus.UP_TO_DATE: "upToDate",
    ProxyStatus.NOT_CONCERNED: "notConcerned",
    ProxyStatus.REVERTED: "reverted",
    ProxyStatus.QUEUED: "queued",
    ProxyStatus.UNKNOWN: "unknown",
}
_SENT = (ProxyStatus.ACKED, ProxyStatus.NACKED, ProxyStatus.PENDING)


def parse_kind(text: str) -> Kind | None:
    """An object kind by its name, case-insensitively (VirtualService, virtualservice)."""
    wanted = text.strip().lower()
    for kind in Kind:
        if kind.value.lower() == wanted and kind not in (Kind.ENDPOINTS, Kind.MESH_CONFIG):
            return kind
    return None


def rfc3339(ts: float) -> str:
    """UTC with milliseconds: 2026-01-02T03:04:05.678Z."""
    millis = round(ts * 1000)
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def _version_json(version: ObjectVersion | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {
        "resourceVersion": version.resource_version,
        "generation": version.generation,
        "deleted": version.deleted,
    }


def _carries(delivery: Delivery, key: ConfigKey, seqs: frozenset[int], first: int) -> bool:
    if delivery.seq in seqs:
        return True
    if delivery.seq < first:
        return False
    return delivery.merged_many or (delivery.merged is not None and key in delivery.merged)


def _combine(deliveries: Iterable[Delivery]) -> tuple[ProxyStatus, list[SendRecord]]:
    """One status for the responses (and non-responses) that carried the change."""
    sends: list[SendRecord] = []
    outcomes: set[Outcome] = set()
    for delivery in deliveries:
        sends.extend(delivery.sends.values())
        outcomes.add(delivery.outcome)
    statuses = {s.status for s in sends}
    if SendStatus.NACKED in statuses:
        return ProxyStatus.NACKED, sends
    if SendStatus.PENDING in statuses:
        return ProxyStatus.PENDING, sends
    if sends:
        return ProxyStatus.ACKED, sends
    if Outcome.UP_TO_DATE in outcomes or Outcome.SENT in outcomes:
        return ProxyStatus.UP_TO_DATE, sends
    return ProxyStatus.NOT_CONCERNED, sends


class _Reach:
    """The per-proxy computation for one object version."""

    def __init__(self, ledger: PushLedger, record: ObjectRecord) -> None:
        self.key = record.key
        self.latest = record.version or (record.pushes[-1][2] if record.pushes else None)
        carried = [
            (seq, push_id)
            for seq, push_id, version in record.pushes
            if self.latest is None or version.same(self.latest)
        ]
        self.seqs = frozenset(seq for seq, _ in carried)
        first_push = ledger.pushes.get(carried[0][1]) if carried else None
        self.event_at = record.event_at or (first_push.event_at if first_push else 0.0)
        # Every push built after the event holds the change in its snapshot: a proxy whose
        # queue merged the push naming it into a later one got it there, and a proxy that
        # connected after one was built got it with its first config.
        after = [p for p in ledger.pushes.values() if p.built_at >= self.event_at]
        self.first = min(self.seqs) if self.seqs else min((p.seq for p in after), default=0)
        built = [p.built_at for p in after]
        if first_push is not None:
            built.append(first_push.built_at)
        elif carried and record.event_at:
            built.append(record.event_at)  # the push carrying it was built after the event
        if record.event_at and record.event_at <= ledger.serving_since:
            built.append(ledger.serving_since)  # loaded before the first snapshot
        self.cutoff = min(built) if built else None
        # Pushes after those that carried it, with an older version: the object was reverted
        # (last known good after a rejection, pilot/config/last_good.py).
        last = max(self.seqs, default=0)
        self.revert_seqs = frozenset(
            seq
            for seq, _, version in record.pushes
            if last and seq > last and self.latest is not None and not version.same(self.latest)
        )
        reverts = [p.built_at for p in after if p.seq in self.revert_seqs]
        self.revert_at = min(reverts) if reverts else None

    def status(self, proxy: ProxyRecord) -> tuple[ProxyStatus, str, list[SendRecord]]:
        """(status, the push that brought it or "connect" or "", the responses involved)."""
        carrying = [
            d
            for d in proxy.deliveries.values()
            if self.first and _carries(d, self.key, self.seqs, self.first)
        ]
        if carrying:
            status, sends = _combine(carrying)
            if status is not ProxyStatus.NACKED and self._reverted(proxy, carrying[-1].seq):
                return ProxyStatus.REVERTED, carrying[-1].push, sends
            return status, carrying[-1].push, sends
        if self.cutoff is not None and proxy.connected_at >= self.cutoff:
            if self.revert_at is not None and proxy.connected_at >= self.revert_at:
                return ProxyStatus.REVERTED, "connect", []
            if proxy.connect is None or not proxy.connect.sends:
                return ProxyStatus.QUEUED, "connect", []
            status, sends = _combine([proxy.connect])
            return status, "connect", sends
        if self.seqs and proxy.forgotten_seq >= self.first:
            return ProxyStatus.UNKNOWN, "", []
        return ProxyStatus.QUEUED, "", []

    def _reverted(self, proxy: ProxyRecord, after: int) -> bool:
        """Did a later push send this proxy an older version of the object?"""
        return any(
            d.seq > after and d.outcome is Outcome.SENT
            for d in proxy.deliveries.values()
            if d.seq in self.revert_seqs
        )


def _proxy_json(
    proxy: ProxyRecord, status: ProxyStatus, via: str, sends: list[SendRecord]
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "proxy": proxy.name,
        "node": proxy.node_id,
        "connection": proxy.conn_id,
        "status": status.value,
        "push": via,
        "types": sorted({typeurls.short_name(s.type_url) for s in sends}),
    }
    acked = [s.resolved_at for s in sends if s.status is SendStatus.ACKED]
    if acked:
        entry["ackedAt"] = rfc3339(max(acked))
    nacks = [s for s in sends if s.status is SendStatus.NACKED]
    if nacks:
        last = max(nacks, key=lambda s: s.resolved_at)
        entry["nack"] = {
            "type": typeurls.short_name(last.type_url),
            "nonce": last.nonce,
            "message": last.message,
            "at": rfc3339(last.resolved_at),
        }
    return entry


def _push_counts(ledger: PushLedger, push_id: str) -> dict[str, int]:
    counts = dict.fromkeys(("pushed", "acked", "nacked", "pending", "upToDate", "notConcerned"), 0)
    for proxy in ledger.proxies.values():
        delivery = proxy.deliveries.get(push_id)
        if delivery is None:
            continue
        status, _ = _combine([delivery])
        counts[_SUMMARY_KEYS[status]] += 1
        if status in _SENT:
            counts["pushed"] += 1
    return counts


def trace(ledger: PushLedger, key: ConfigKey) -> dict[str, Any] | None:
    """The report served at /debug/trace; None when the ledger has no record of `key`."""
    record = ledger.objects.get(key)
    if record is None:
        return None
    reach = _Reach(ledger, record)
    summary = dict.fromkeys(("proxies", "pushed", *_SUMMARY_KEYS.values(), "connectedLater"), 0)
    proxies = []
    last_ack = 0.0
    for proxy in sorted(ledger.proxies.values(), key=lambda p: (p.name, p.conn_id)):
        status, via, sends = reach.status(proxy)
        summary["proxies"] += 1
        summary[_SUMMARY_KEYS[status]] += 1
        if status in _SENT:
            summary["pushed"] += 1
        if via == "connect":
            summary["connectedLater"] += 1
        elif via:
            acks = [s.resolved_at for s in sends if s.status is SendStatus.ACKED]
            last_ack = max([last_ack, *acks])
        proxies.append(_proxy_json(proxy, status, via, sends))
    pushes = []
    for seq, push_id, version in reversed(record.pushes):
        push = ledger.pushes.get(push_id)
        entry: dict[str, Any] = {
            "id": push_id,
            "seq": seq,
            "version": _version_json(version),
            "current": reach.latest is not None and version.same(reach.latest),
        }
        if push is not None:
            entry.update(
                reasons={str(r): n for r, n in push.reasons.items()},
                forced=push.forced,
                eventTime=rfc3339(push.event_at) if push.event_at else "",
                builtTime=rfc3339(push.built_at),
                configs=len(push.configs),
                concerned=push.concerned,
                skipped=push.skipped,
                proxies=_push_counts(ledger, push_id),
            )
        pushes.append(entry)
    in_flight = summary["pending"] + summary["queued"]
    converged = in_flight == 0
    return {
        "kind": key.kind.value,
        "namespace": key.namespace,
        "name": key.name,
        "version": _version_json(record.shown if record.version is not None else reach.latest),
        "deleted": reach.latest is not None and reach.latest.deleted,
        "change": record.change,
        "eventTime": rfc3339(reach.event_at) if reach.event_at else "",
        "lastPushedVersion": _version_json(record.pushes[-1][2]) if record.pushes else None,
        "pushes": pushes,
        "summary": summary,
        "converged": converged,
        "live": converged and summary["nacked"] == 0 and summary["reverted"] == 0,
        "lastAckTime": rfc3339(last_ack) if last_ack else "",
        "eventToLastAckSeconds": (
            round(last_ack - reach.event_at, 6) if last_ack and reach.event_at else None
        ),
        "proxies": proxies,
    }


def trace_query(ledger: PushLedger, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    """`GET /debug/trace?kind=&namespace=&name=` → (HTTP status, JSON body)."""
    kind_text = query.get("kind", "")
    name = query.get("name", "")
    namespace = query.get("namespace", "default")
    kind = parse_kind(kind_text)
    if kind is None:
        kinds = ", ".join(k.value for k in Kind if k not in (Kind.ENDPOINTS, Kind.MESH_CONFIG))
        return 400, {"error": f"unknown kind {kind_text!r}: one of {kinds}"}
    if not name:
        return 400, {"error": "name is required (?kind=KIND&namespace=NS&name=NAME)"}
    key = ConfigKey(kind, name, namespace)
    report = trace(ledger, key)
    if report is None:
        return 404, {
            "error": f"istiod has no record of {kind.value} {namespace}/{name}: it was never "
            f"loaded, or is not among the last {MAX_OBJECTS} objects changed or pushed"
        }
    return 200, report
