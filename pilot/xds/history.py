"""What each proxy was sent, over time: a bounded, content-addressed history (the records
behind `/debug/history`, `istioctl proxy-config … --at` and `istioctl x diff`).

An xDS observer (pilot/xds/observer.py): after every response sent, the stream's record of
what the proxy has for that type (`WatchState.sent`: name → version, kept by the connection
for SotW and Delta alike) becomes the type's map in the proxy's latest snapshot. Everything is
shared, never copied:
- a resource body is stored once, keyed by its version (a content hash of its serialized
  bytes, wire.py), however many proxies and snapshots hold it; SDS private keys are replaced
  by "[redacted]" before they are kept;
- a type's map is interned by its set hash (equal maps, e.g. 1,000 alike sidecars' clusters,
  are one object), and a snapshot reuses its predecessor's map for every type that did not
  change;
- bodies and maps are reference-counted and freed when the last snapshot using them goes.

A snapshot is named by the push that caused it, as the push ledger names pushes (PushContext
version, `+sds` for a credentials-only push), and keeps the push's config keys (a reference to
the request's set). Responses generated from the same PushContext on the same stream, the
push's own and the follow-up answers to the proxy's requests (new route or endpoint names),
are one snapshot. ACKs refresh the latest snapshot when the proxy dropped names (an
unsubscription is answered with nothing).

Memory: every body, map and snapshot is charged an estimate of its size; past `max_bytes`
(PILOT_HISTORY_MAX_BYTES) the oldest snapshots across all proxies are dropped first, a
proxy's latest snapshot only when no older one is left anywhere. A
disconnected proxy's history is kept (at most MAX_DISCONNECTED proxies, oldest dropped first).
A snapshot started with no predecessor (history dropped by the budget) while the stream had
other types lists them as `incomplete` until they are sent again.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pilot.xds.history_model import (
    BODY_OVERHEAD,
    ENTRY_OVERHEAD,
    KEY_OVERHEAD,
    MAP_OVERHEAD,
    SNAPSHOT_OVERHEAD,
    Body,
    HistoryError,
    Snapshot,
    Timeline,
    TypeMap,
    counter,
    rfc3339,
    stored_bytes,
)
from pilot.xds.observer import Acked, Sent
from pilot.xds.wire import BuiltResource, pair_hash
from pkg.config.model import ConfigKey

if TYPE_CHECKING:
    from pilot.xds.connection import Connection

DEFAULT_MAX_BYTES = 64 << 20
MAX_DISCONNECTED = 256
MAX_KEYS = 1024  # config keys kept per snapshot (beyond: `configs_truncated`)


class ProxyHistory:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, clock: Callable[[], float] = time.time):
        self.max_bytes = max_bytes
        self._clock = clock
        self.bytes = 0
        self.evicted = 0
        self._seq = 0
        self._bodies: dict[str, Body] = {}
        self._maps: dict[tuple[str, int], TypeMap] = {}
        # Eviction order: snapshots a newer one followed (oldest first), then, only when they
        # are all gone, each proxy's latest (the oldest first).
        self._older: list[tuple[int, Snapshot]] = []
        self._latest: OrderedDict[int, Snapshot] = OrderedDict()
        self.timelines: dict[str, Timeline] = {}  # node id → timeline
        self._disconnected: OrderedDict[str, None] = OrderedDict()

    # ---- reading -------------------------------------------------------------------------

    @property
    def bodies(self) -> int:
        return len(self._bodies)

    def find(self, proxy: str) -> Timeline | None:
        """A timeline by node id, NAME.NAMESPACE or connection id (a connected one first)."""
        found = self.timelines.get(proxy)
        if found is not None:
            return found
        matches = [
            t
            for t in self.timelines.values()
            if proxy in (t.name, t.conn_id) or (proxy and proxy in t.conn_id)
        ]
        matches.sort(key=lambda t: (t.connected, t.snapshots[-1].seq if t.snapshots else 0))
        return matches[-1] if matches else None

    def at_version(self, timeline: Timeline, version: str) -> Snapshot:
        """The snapshot named `version`, else the latest from a push no later than it (push
        versions end in a counter: `TIME/N`)."""
        exact = [s for s in timeline.snapshots if version in (s.version, s.context)]
        if exact:
            return exact[-1]
        wanted = counter(version)
        if wanted is None:
            raise HistoryError(f"{version!r} is not a push version (TIME/N) of this history")
        before = [s for s in timeline.snapshots if (counter(s.context) or 0) <= wanted]
        if not before:
            raise HistoryError(f"no snapshot of {timeline.name} at or before push {version}")
        return before[-1]

    def at_time(self, timeline: Timeline, when: float) -> Snapshot:
        """The latest snapshot begun at or before `when` (time.time() seconds)."""
        found = None
        for snapshot in timeline.snapshots:
            if snapshot.at > when:
                break
            found = snapshot
        if found is None:
            oldest = timeline.snapshots[0].at if timeline.snapshots else None
            kept = f"the oldest kept is from {rfc3339(oldest)}" if oldest else "none is kept"
            raise HistoryError(f"no snapshot of {timeline.name} at {rfc3339(when)}: {kept}")
        return found

    def latest(self, timeline: Timeline) -> Snapshot:
        if not timeline.snapshots:
            raise HistoryError(f"no snapshot of {timeline.name} is kept")
        return timeline.snapshots[-1]

    def resources(self, snapshot: Snapshot, type_url: str) -> list[BuiltResource]:
        """The type's resources in the snapshot (names whose body is unknown are left out)."""
        out = []
        type_map = snapshot.maps.get(type_url)
        for name, version in type_map.items if type_map is not None else ():
            body = self._bodies.get(version)
            if body is not None:
                out.append(BuiltResource(name, type_url, body.data, version))
        return out

    # ---- xDS observer --------------------------------------------------------------------

    def connected(self, conn: Connection) -> None:
        timeline = self._timeline(conn)
        timeline.conn_id = conn.id
        timeline.connected = True
        self._disconnected.pop(timeline.node_id, None)

    def disconnected(self, conn: Connection) -> None:
        timeline = self.timelines.get(conn.proxy.id)
        if timeline is None or timeline.conn_id != conn.id:
            return  # a newer stream of the same proxy took over
        timeline.connected = False
        timeline.disconnected_at = self._clock()
        self._disconnected[timeline.node_id] = None
        while len(self._disconnected) > MAX_DISCONNECTED:
            node_id, _ = self._disconnected.popitem(last=False)
            self._drop_timeline(node_id)

    def sent(self, conn: Connection, event: Sent) -> None:
        state = conn.watches.get(event.type_url)
        if state is None:
            return
        timeline = self._timeline(conn)
        last = timeline.snapshots[-1] if timeline.snapshots else None
        # The common case, O(1): another proxy (or this one, earlier) already holds exactly
        # this set, so the map and its bodies are stored.
        type_map = self._maps.get((event.type_url, getattr(state.sent, "total", -1)))
        if type_map is not None:
            type_map.refs += 1
        else:
            for r in event.resources:
                if r.version not in self._bodies:
                    self._bodies[r.version] = Body(stored_bytes(r))
                    self.bytes += len(self._bodies[r.version].data) + BODY_OVERHEAD
            type_map = self._map(event.type_url, state.sent, last)
        if event.push is not None:
            push_id = (event.push.push.version if event.push.push else event.context) + (
                "+sds" if event.push.credentials_only else ""
            )
            configs = event.push.configs_updated
        else:
            push_id, configs = event.context, frozenset()
        same = (
            last is not None
            and last.conn_id == conn.id
            and last.context == event.context
            and (event.push is None or last.version == push_id)
        )
        if last is not None and same:
            self._fold(last, event.type_url, type_map, configs, event.at)
        elif last is not None and last.maps.get(event.type_url) is type_map:
            self._release_map(type_map)  # nothing new for this proxy (a re-sent set)
        else:
            self._snapshot(timeline, conn, last, push_id, event, type_map, configs)
        self._unused_bodies(event.resources)
        self._evict()

    def acked(self, conn: Connection, event: Acked) -> None:
        """An ACK may carry an unsubscription (answered with nothing): refresh the map."""
        timeline = self.timelines.get(conn.proxy.id)
        state = conn.watches.get(event.type_url)
        if timeline is None or state is None or not timeline.snapshots:
            return
        last = timeline.snapshots[-1]
        held = last.maps.get(event.type_url)
        if last.conn_id != conn.id or held is None or held.key == state.sent.total:
            return
        type_map = self._map(event.type_url, state.sent, last)
        if type_map is held:
            self._release_map(type_map)
            return
        self._fold(last, event.type_url, type_map, frozenset(), last.updated)
        self._evict()

    # ---- internals -----------------------------------------------------------------------

    def _timeline(self, conn: Connection) -> Timeline:
        timeline = self.timelines.get(conn.proxy.id)
        if timeline is None:
            timeline = Timeline(conn.proxy.id, conn.proxy.name, conn.id)
            self.timelines[conn.proxy.id] = timeline
            self.bytes += SNAPSHOT_OVERHEAD
        return timeline

    def _map(self, type_url: str, sent: dict[str, str], last: Snapshot | None) -> TypeMap:
        """The interned map of what the stream holds (one reference taken for the caller)."""
        previous = last.maps.get(type_url) if last is not None else None
        old = dict(previous.items) if previous is not None else {}
        items: list[tuple[str, str]] = []
        exact = True
        for name, version in sent.items():
            if not version:  # re-sent after a NACK: the proxy still holds what it had
                version = old.get(name, "")
                exact = False
            if version and version in self._bodies:
                items.append((name, version))
            else:
                exact = False
        total = getattr(sent, "total", None)
        if not exact or total is None:
            total = sum(pair_hash(n, v) for n, v in items)
        key = (type_url, total)
        found = self._maps.get(key)
        if found is None:
            size = MAP_OVERHEAD + sum(len(n) + ENTRY_OVERHEAD for n, _ in items)
            found = self._maps[key] = TypeMap(type_url, total, tuple(items), size)
            self.bytes += size
            for _, version in items:
                self._bodies[version].refs += 1
        found.refs += 1
        return found

    def _release_map(self, type_map: TypeMap) -> None:
        type_map.refs -= 1
        if type_map.refs > 0:
            return
        del self._maps[(type_map.type_url, type_map.key)]
        self.bytes -= type_map.size
        for _, version in type_map.items:
            body = self._bodies[version]
            body.refs -= 1
            if body.refs <= 0:
                del self._bodies[version]
                self.bytes -= len(body.data) + BODY_OVERHEAD

    def _unused_bodies(self, resources: Sequence[BuiltResource]) -> None:
        """Bodies just stored that no map took (names the stream no longer holds)."""
        for r in resources:
            body = self._bodies.get(r.version)
            if body is not None and body.refs == 0:
                del self._bodies[r.version]
                self.bytes -= len(body.data) + BODY_OVERHEAD

    def _fold(
        self,
        snapshot: Snapshot,
        type_url: str,
        type_map: TypeMap,
        configs: frozenset[ConfigKey],
        at: float,
    ) -> None:
        held = snapshot.maps.get(type_url)
        snapshot.maps[type_url] = type_map
        if held is not None:
            self._release_map(held)
        else:
            snapshot.size += KEY_OVERHEAD
            self.bytes += KEY_OVERHEAD
        snapshot.incomplete.discard(type_url)
        snapshot.updated = max(snapshot.updated, at)
        if configs and configs is not snapshot.configs:
            self._add_configs(snapshot, configs)

    def _add_configs(self, snapshot: Snapshot, configs: frozenset[ConfigKey]) -> None:
        merged = snapshot.configs | configs if snapshot.configs else configs
        if len(merged) > MAX_KEYS:
            merged = frozenset(sorted(merged, key=str)[:MAX_KEYS])
            snapshot.configs_truncated = True
        charge = KEY_OVERHEAD * (len(merged) - len(snapshot.configs))
        snapshot.configs = merged
        snapshot.size += charge
        self.bytes += charge

    def _snapshot(
        self,
        timeline: Timeline,
        conn: Connection,
        last: Snapshot | None,
        push_id: str,
        event: Sent,
        type_map: TypeMap,
        configs: frozenset[ConfigKey],
    ) -> None:
        self._seq += 1
        maps = dict(last.maps) if last is not None else {}
        for held in maps.values():
            held.refs += 1
        snapshot = Snapshot(
            self._seq,
            timeline,
            conn.id,
            push_id,
            event.context,
            event.at,
            event.at,
            event.reason,
            maps,
        )
        snapshot.size += KEY_OVERHEAD * len(maps)
        self.bytes += snapshot.size
        if last is None:
            snapshot.incomplete = {
                t for t, w in conn.watches.items() if w.sent and t != event.type_url
            }
        else:
            snapshot.incomplete = set(last.incomplete)
        self._fold(snapshot, event.type_url, type_map, configs, event.at)
        timeline.snapshots.append(snapshot)
        if last is not None and self._latest.pop(last.seq, None) is not None:
            heapq.heappush(self._older, (last.seq, last))
        self._latest[snapshot.seq] = snapshot

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and (self._older or self._latest):
            if self._older:
                _, snapshot = heapq.heappop(self._older)
                if snapshot.freed:
                    continue
            else:
                _, snapshot = self._latest.popitem(last=False)
            timeline = snapshot.timeline
            if timeline.snapshots and timeline.snapshots[0] is snapshot:
                timeline.snapshots.popleft()
            timeline.dropped += 1
            self._free(snapshot)
            self.evicted += 1

    def _free(self, snapshot: Snapshot) -> None:
        snapshot.freed = True
        self.bytes -= snapshot.size
        for held in snapshot.maps.values():
            self._release_map(held)
        snapshot.maps = {}

    def _drop_timeline(self, node_id: str) -> None:
        timeline = self.timelines.pop(node_id, None)
        if timeline is None:
            return
        for snapshot in timeline.snapshots:
            self._latest.pop(snapshot.seq, None)
            self._free(snapshot)  # left in the heap, skipped when it comes up
        timeline.snapshots.clear()
        self.bytes -= SNAPSHOT_OVERHEAD
