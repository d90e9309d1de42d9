"""The push ledger: which config change went into which xDS responses, and whether each proxy
took them (the records behind `/debug/trace` and `istioctl x trace`; reports in trace.py).

Two feeds, both on the event loop:
- the config store's events (`config_events`): an object's new version (resourceVersion,
  generation, or deleted) and the time istiod saw the change;
- the xDS server's observer events (pilot/xds/observer.py): a response sent for a push (or for
  a proxy's own request), its ACK or NACK by nonce, a push that skipped a proxy (not concerned)
  or found it up to date, connects and disconnects.

A push is named by its PushContext version (a credentials-only push reuses the snapshot, so it
gets `+sds` appended). When a push is first seen, the version of each object it names is read
from its snapshot, so a later edit is never credited to an earlier push. A proxy whose queue
merged two pushes gets one response for both: its delivery keeps a reference to the merged
request's keys. Every observer call does O(1) work: dictionary updates and references to
existing objects (the push's key set, nonces), never a copy of a list of names.

State and its caps (memory stays bounded whatever the churn):
- pushes: the last MAX_PUSHES push records (keys carried, first event and build times, how
  many proxies each concerned or skipped);
- objects: the last MAX_OBJECTS objects changed or pushed (least recently used first out),
  each with its latest version, event time and the last OBJECT_PUSHES pushes that carried it
  (with the version each carried);
- per connected proxy (forgotten on disconnect): its last PROXY_DELIVERIES deliveries (what one
  push did to it: skipped, up to date, or the responses sent, the latest per type with its
  status), its responses to its own requests (latest per type), and its unanswered responses
  per type (at most PENDING_PER_TYPE each);
- a merged request's keys are kept only up to MERGED_KEYS keys (beyond, the delivery counts as
  carrying every object); NACK messages are cut at MESSAGE_CHARS characters.

SotW requests with an older nonce are ignored by the server (as Istio does), so a response that
was superseded before its ACK arrived takes the outcome of the newer response of its type.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from pilot.config.store import ConfigEvent
from pilot.model.push_request import PushRequest, TriggerReason
from pilot.xds.observer import Acked, Nacked, Sent
from pkg.config.model import ConfigKey, Kind, Meta

if TYPE_CHECKING:
    from pilot.model.push_context import PushContext
    from pilot.xds.connection import Connection

MAX_PUSHES = 64
MAX_OBJECTS = 4096
OBJECT_PUSHES = 8
PROXY_DELIVERIES = 32
PENDING_PER_TYPE = 16
MERGED_KEYS = 1024
MESSAGE_CHARS = 4096

# Pseudo-kinds name no object: a service's endpoints, the mesh config.
_UNTRACKED = frozenset({Kind.ENDPOINTS, Kind.MESH_CONFIG})


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    resource_version: str
    generation: int
    deleted: bool = False

    @classmethod
    def of(cls, meta: Meta) -> ObjectVersion:
        return cls(meta.resource_version, meta.generation)

    def same(self, other: ObjectVersion) -> bool:
        if self.deleted or other.deleted:
            return self.deleted and other.deleted
        return (self.resource_version, self.generation) == (
            other.resource_version,
            other.generation,
        )


DELETED = ObjectVersion("", 0, deleted=True)


class SendStatus(StrEnum):
    PENDING = "pending"
    ACKED = "acked"
    NACKED = "nacked"


class Outcome(StrEnum):
    SENT = "sent"  # one or more responses
    UP_TO_DATE = "up_to_date"  # concerned, but nothing it has changed
    SKIPPED = "skipped"  # not concerned (proxy_dependencies.py)


@dataclass(slots=True, eq=False)
class SendRecord:
    nonce: str
    type_url: str
    version: str
    sent_at: float
    status: SendStatus = SendStatus.PENDING
    resolved_at: float = 0.0
    message: str = ""


@dataclass(slots=True, eq=False)
class Delivery:
    """What one push did to one proxy; `push` "" holds the responses to its own requests."""

    push: str
    seq: int
    outcome: Outcome
    # The request's keys when they are not the push's own (the proxy's queue merged pushes).
    merged: frozenset[ConfigKey] | None = None
    merged_many: bool = False
    sends: dict[str, SendRecord] = field(default_factory=dict)  # type URL → latest


@dataclass(slots=True, eq=False)
class PushRecord:
    id: str
    seq: int
    configs: frozenset[ConfigKey]
    reasons: Mapping[TriggerReason, int]
    forced: bool
    event_at: float  # wall time of the first event merged into it (0: unknown)
    built_at: float  # wall time its PushContext was built
    concerned: int = 0
    skipped: int = 0


@dataclass(slots=True, eq=False)
class ObjectRecord:
    key: ConfigKey
    version: ObjectVersion | None = None  # latest, from its config event (None: not seen)
    shown: ObjectVersion | None = None  # the latest version that existed (for a deletion)
    change: str = ""  # add | update | delete
    event_at: float = 0.0
    # (push seq, push id, version carried), oldest first.
    pushes: deque[tuple[int, str, ObjectVersion]] = field(
        default_factory=lambda: deque(maxlen=OBJECT_PUSHES)
    )


@dataclass(slots=True, eq=False)
class ProxyRecord:
    conn_id: str
    node_id: str
    name: str  # NAME.NAMESPACE
    connected_at: float
    deliveries: dict[str, Delivery] = field(default_factory=dict)  # push id → delivery
    connect: Delivery | None = None
    pending: dict[str, list[SendRecord]] = field(default_factory=dict)  # type URL → oldest first
    forgotten_seq: int = 0  # deliveries of pushes up to this seq were dropped


class PushLedger:
    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self.pushes: OrderedDict[str, PushRecord] = OrderedDict()
        self.objects: OrderedDict[ConfigKey, ObjectRecord] = OrderedDict()
        self.proxies: dict[str, ProxyRecord] = {}
        # When the first snapshot was served: objects changed before it are in every proxy's
        # first config, with no push of their own.
        self.serving_since = 0.0
        self._seq = 0
        self._last_request: PushRequest | None = None
        self._last_push: PushRecord | None = None

    def serving(self) -> None:
        self.serving_since = self._clock()

    # ---- config events -------------------------------------------------------------------

    def config_events(self, events: list[ConfigEvent]) -> None:
        now = self._clock()
        for event in events:
            if event.key.kind in _UNTRACKED:
                continue
            record = self._object(event.key)
            if event.new is not None:
                record.version = record.shown = ObjectVersion.of(event.new.meta)
            else:
                record.version = DELETED
                record.shown = ObjectVersion.of(event.old.meta) if event.old else None
            record.change = event.type.value
            record.event_at = now

    def _object(self, key: ConfigKey) -> ObjectRecord:
        record = self.objects.get(key)
        if record is None:
            record = self.objects[key] = ObjectRecord(key)
            if len(self.objects) > MAX_OBJECTS:
                self.objects.popitem(last=False)
        else:
            self.objects.move_to_end(key)
        return record

    # ---- xDS observer --------------------------------------------------------------------

    def connected(self, conn: Connection) -> None:
        self._proxy(conn)

    def disconnected(self, conn: Connection) -> None:
        self.proxies.pop(conn.id, None)

    def sent(self, conn: Connection, event: Sent) -> None:
        proxy = self._proxy(conn)
        delivery = None
        if event.push is not None:
            delivery = self._delivery(proxy, event.push, Outcome.SENT)
        if delivery is None:
            if proxy.connect is None:
                proxy.connect = Delivery("", 0, Outcome.SENT)
            delivery = proxy.connect
        record = SendRecord(event.nonce, event.type_url, event.version, event.at)
        delivery.sends[event.type_url] = record
        pending = proxy.pending.get(event.type_url)
        if pending is None:
            proxy.pending[event.type_url] = [record]
        else:
            pending.append(record)
            if len(pending) > PENDING_PER_TYPE:
                del pending[0]

    def acked(self, conn: Connection, event: Acked) -> None:
        self._resolve(conn, event.type_url, event.nonce, SendStatus.ACKED, event.at, "")

    def nacked(self, conn: Connection, event: Nacked) -> None:
        message = event.message[:MESSAGE_CHARS]
        self._resolve(conn, event.type_url, event.nonce, SendStatus.NACKED, event.at, message)

    def skipped(self, conn: Connection, push: PushRequest) -> None:
        self._delivery(self._proxy(conn), push, Outcome.SKIPPED)

    def up_to_date(self, conn: Connection, push: PushRequest) -> None:
        self._delivery(self._proxy(conn), push, Outcome.UP_TO_DATE)

    # ---- internals -----------------------------------------------------------------------

    def _proxy(self, conn: Connection) -> ProxyRecord:
        proxy = self.proxies.get(conn.id)
        if proxy is None:
            proxy = ProxyRecord(conn.id, conn.proxy.id, conn.proxy.name, conn.stats.connected_at)
            self.proxies[conn.id] = proxy
        return proxy

    def _resolve(
        self,
        conn: Connection,
        type_url: str,
        nonce: str,
        status: SendStatus,
        at: float,
        message: str,
    ) -> None:
        proxy = self.proxies.get(conn.id)
        pending = proxy.pending.get(type_url) if proxy is not None else None
        if not pending:
            return
        last = next((i for i, record in enumerate(pending) if record.nonce == nonce), -1)
        if last < 0:
            return  # not ours, or forgotten
        for record in pending[: last + 1]:  # older ones were superseded by this response
            record.status = status
            record.resolved_at = at
            record.message = message
        del pending[: last + 1]

    def _delivery(
        self, proxy: ProxyRecord, request: PushRequest, outcome: Outcome
    ) -> Delivery | None:
        push = self._push(request)
        if push is None:
            return None
        delivery = proxy.deliveries.get(push.id)
        if delivery is None:
            delivery = Delivery(push.id, push.seq, outcome)
            configs = request.configs_updated
            if configs is not push.configs:
                if len(configs) <= MERGED_KEYS:
                    delivery.merged = configs
                else:
                    delivery.merged_many = True
            proxy.deliveries[push.id] = delivery
            if len(proxy.deliveries) > PROXY_DELIVERIES:
                dropped = proxy.deliveries.pop(next(iter(proxy.deliveries)))
                proxy.forgotten_seq = max(proxy.forgotten_seq, dropped.seq)
            if outcome is Outcome.SKIPPED:
                push.skipped += 1
            else:
                push.concerned += 1
        elif outcome is Outcome.SENT and delivery.outcome is not Outcome.SENT:
            if delivery.outcome is Outcome.SKIPPED:  # a forced re-push of the same snapshot
                push.skipped -= 1
                push.concerned += 1
            delivery.outcome = Outcome.SENT
        return delivery

    def _push(self, request: PushRequest) -> PushRecord | None:
        if request is self._last_request:
            return self._last_push  # the same request object goes to every proxy
        context = request.push
        if context is None:
            return None
        push_id = context.version + ("+sds" if request.credentials_only else "")
        push = self.pushes.get(push_id)
        if push is None:
            push = self._new_push(push_id, request, context)
        self._last_request, self._last_push = request, push
        return push

    def _new_push(self, push_id: str, request: PushRequest, context: PushContext) -> PushRecord:
        self._seq += 1
        now = self._clock()
        offset = now - self._monotonic()  # monotonic → wall clock
        push = PushRecord(
            push_id,
            self._seq,
            request.configs_updated,
            request.reasons,
            request.forced,
            event_at=request.start + offset if request.start else 0.0,
            built_at=context.created + offset if context.created else now,
        )
        self.pushes[push_id] = push
        if len(self.pushes) > MAX_PUSHES:
            self.pushes.popitem(last=False)
        # Once per push: which version of each named object its snapshot holds.
        index: dict[Kind, dict[tuple[str, str], Meta]] = {}
        for key in request.configs_updated:
            if key.kind in _UNTRACKED or (key.kind is Kind.SECRET and not key.namespace):
                continue  # not an object (a credential is keyed by its SPIFFE id)
            by_name = index.get(key.kind)
            if by_name is None:
                configs = context.configs.get(key.kind, ())
                by_name = index[key.kind] = {(c.namespace, c.name): c.meta for c in configs}
            meta = by_name.get((key.namespace, key.name))
            version = DELETED if meta is None else ObjectVersion.of(meta)
            self._object(key).pushes.append((push.seq, push.id, version))
        return push
