"""The answers of `/debug/history` (history.py's records, as JSON):

- no `proxyID`: the store (bytes used, budget, bodies, snapshots dropped) and its proxies;
- `?proxyID=P`: P's timeline, oldest first: each snapshot's push version, time, reason, the
  resources added / removed / changed per xDS type and the config keys the push carried (the
  same keys the push ledger, `/debug/trace`, names);
- `?proxyID=P&dump` with one of `version=V` (a push version), `time=T` (RFC 3339, or seconds
  since the epoch), `ago=SECONDS` (istiod's clock) or none (the latest): the config dump of
  what P held then, in exactly `/debug/config_dump?proxyID=`'s format (with its `types` and
  `include_eds`), every resource stamped with its snapshot's time; the snapshot chosen is
  named in the `x-history-version` and `x-history-time` headers.

Errors are (status, {"error": message}): 400 bad input, 404 unknown proxy or no such snapshot.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from google.protobuf import timestamp_pb2

from pilot.xds.config_dump import assemble_config_dump, to_json
from pilot.xds.history import ProxyHistory
from pilot.xds.history_model import (
    HistoryError,
    Snapshot,
    Timeline,
    known_types,
    rfc3339,
    type_changes,
)
from pkg.xds import typeurls

# (HTTP status, JSON body, extra headers: the snapshot a dump is of).
Answer = tuple[int, Any, dict[str, str]]


def history_query(history: ProxyHistory, query: Mapping[str, str], now: float) -> Answer:
    proxy = query.get("proxyID", "")
    if not proxy:
        return 200, _store(history), {}
    timeline = history.find(proxy)
    if timeline is None:
        return 404, {"error": f"istiod has no history of proxy {proxy!r}"}, {}
    if "dump" not in query:
        return 200, _timeline(history, timeline), {}
    try:
        snapshot = _select(history, timeline, query, now)
    except ValueError as err:
        return 400, {"error": str(err)}, {}
    except HistoryError as err:
        return 404, {"error": str(err)}, {}
    headers = {"x-history-version": snapshot.version, "x-history-time": rfc3339(snapshot.at)}
    return 200, dump_at(history, snapshot, query), headers


def dump_at(history: ProxyHistory, snapshot: Snapshot, query: Mapping[str, str]) -> Any:
    types = [t for t in query.get("types", "").split(",") if t] or None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromSeconds(int(snapshot.updated))
    dump = assemble_config_dump(
        lambda type_url: history.resources(snapshot, type_url),
        types,
        include_eds="include_eds" in query,
        now=stamp,
    )
    return to_json(dump)


def _select(
    history: ProxyHistory, timeline: Timeline, query: Mapping[str, str], now: float
) -> Snapshot:
    given = [k for k in ("version", "time", "ago") if query.get(k)]
    if len(given) > 1:
        raise ValueError(f"give one of version, time and ago, not {' and '.join(given)}")
    if "version" in given:
        return history.at_version(timeline, query["version"])
    if "time" in given:
        return history.at_time(timeline, parse_time(query["time"]))
    if "ago" in given:
        try:
            ago = float(query["ago"])
        except ValueError:
            raise ValueError(f"ago: expected seconds, got {query['ago']!r}") from None
        if ago < 0:
            raise ValueError(f"ago: must not be negative, got {query['ago']!r}")
        return history.at_time(timeline, now - ago)
    return history.latest(timeline)


def parse_time(text: str) -> float:
    """RFC 3339 (`2026-11-22T11:40:00Z`, fractions and offsets allowed) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"time: expected RFC 3339 such as 2026-11-22T11:40:00Z, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _store(history: ProxyHistory) -> dict[str, Any]:
    return {
        "bytes": history.bytes,
        "maxBytes": history.max_bytes,
        "bodies": history.bodies,
        "evicted": history.evicted,
        "proxies": [
            {
                "proxy": t.node_id,
                "name": t.name,
                "connected": t.connected,
                "snapshots": len(t.snapshots),
            }
            for t in history.timelines.values()
        ],
    }


def _timeline(history: ProxyHistory, timeline: Timeline) -> dict[str, Any]:
    entries = []
    previous: Snapshot | None = None
    for snapshot in timeline.snapshots:
        entries.append(_entry(snapshot, previous))
        previous = snapshot
    return {
        "proxy": timeline.node_id,
        "name": timeline.name,
        "connected": timeline.connected,
        "disconnectedAt": rfc3339(timeline.disconnected_at) if timeline.disconnected_at else "",
        "dropped": timeline.dropped,
        "snapshots": entries,
    }


def _entry(snapshot: Snapshot, previous: Snapshot | None) -> dict[str, Any]:
    changes = {}
    types = set(snapshot.maps) | (set(previous.maps) if previous is not None else set())
    for type_url in known_types(types):
        before = previous.maps.get(type_url) if previous is not None else None
        counts = type_changes(before, snapshot.maps.get(type_url))
        if any(counts.values()):
            changes[typeurls.short_name(type_url)] = counts
    return {
        "version": snapshot.version,
        "time": rfc3339(snapshot.at),
        "timestamp": snapshot.at,
        "reason": snapshot.reason,
        "changed": changes,
        "resources": {
            typeurls.short_name(t): len(snapshot.maps[t].items) for t in known_types(snapshot.maps)
        },
        "configs": sorted(str(k) for k in snapshot.configs),
        "configsTruncated": snapshot.configs_truncated,
        "incomplete": sorted(typeurls.short_name(t) for t in snapshot.incomplete),
    }
