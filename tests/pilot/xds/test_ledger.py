"""The push ledger as a pure object: fed config events and the xDS server's observer events
(sends, ACKs, NACKs, skipped and up-to-date pushes), it answers "is my change live
everywhere?" with the right counts, and its memory stays within its caps under a flood."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from pilot.config.store import ConfigEvent, EventType
from pilot.model.push_request import PushRequest, TriggerReason
from pilot.xds import ledger as ledger_mod
from pilot.xds.ledger import PushLedger
from pilot.xds.observer import Acked, Nacked, Sent
from pilot.xds.trace import trace, trace_query
from pkg.config.model import Config, ConfigKey, Kind, Meta
from pkg.xds import typeurls

RDS = typeurls.ROUTE
CDS = typeurls.CLUSTER
VS = ConfigKey(Kind.VIRTUAL_SERVICE, "reviews", "default")
DR = ConfigKey(Kind.DESTINATION_RULE, "reviews", "default")
OFFSET = 1_000_000.0  # wall clock = monotonic + OFFSET


@dataclass
class Clock:
    now: float = 100.0  # monotonic

    def wall(self) -> float:
        return self.now + OFFSET

    def mono(self) -> float:
        return self.now


def config(key: ConfigKey, rv: int, generation: int = 1) -> Config[Any]:
    meta = Meta(key.kind, key.name, key.namespace, resource_version=str(rv), generation=generation)
    return Config(meta, None)


def conn(name: str, connected_at: float, conn_id: str | None = None) -> Any:
    proxy = SimpleNamespace(id=f"sidecar~127.0.0.1~{name}~x.svc.cluster.local", name=name)
    return SimpleNamespace(
        id=conn_id or f"{name}-1", proxy=proxy, stats=SimpleNamespace(connected_at=connected_at)
    )


@dataclass
class Env:
    clock: Clock = field(default_factory=Clock)
    ledger: PushLedger = field(init=False)
    objects: dict[ConfigKey, Config[Any]] = field(default_factory=dict)
    versions: int = 0

    def __post_init__(self) -> None:
        self.ledger = PushLedger(self.clock.wall, self.clock.mono)

    def change(self, key: ConfigKey, rv: int, generation: int = 1) -> None:
        old = self.objects.get(key)
        new = self.objects[key] = config(key, rv, generation)
        kind = EventType.ADD if old is None else EventType.UPDATE
        self.ledger.config_events([ConfigEvent(kind, key, old, new)])

    def delete(self, key: ConfigKey) -> None:
        old = self.objects.pop(key)
        self.ledger.config_events([ConfigEvent(EventType.DELETE, key, old, None)])

    def push(self, *keys: ConfigKey, start: float | None = None) -> PushRequest:
        """A push built now from the current objects, for changes that happened at `start`."""
        self.versions += 1
        by_kind: dict[Kind, tuple[Config[Any], ...]] = {}
        for key, cfg in self.objects.items():
            by_kind[key.kind] = (*by_kind.get(key.kind, ()), cfg)
        context = SimpleNamespace(
            version=f"v{self.versions}", created=self.clock.now, configs=by_kind
        )
        request = PushRequest.of(
            keys, TriggerReason.CONFIG, start=self.clock.now if start is None else start
        )
        return request.with_push(context)  # type: ignore[arg-type]

    def send(self, c: Any, request: PushRequest | None, nonce: str, type_url: str = RDS) -> None:
        reason = "push" if request is not None else "request"
        event = Sent(type_url, nonce, "ver", (), (), 10, reason, request, self.clock.wall())
        self.ledger.sent(c, event)

    def ack(self, c: Any, nonce: str, type_url: str = RDS) -> None:
        self.ledger.acked(c, Acked(type_url, nonce, "ver", self.clock.wall()))

    def nack(self, c: Any, nonce: str, message: str, type_url: str = RDS) -> None:
        event = Nacked(type_url, nonce, "ver", message, 13, (), self.clock.wall())
        self.ledger.nacked(c, event)

    def report(self, key: ConfigKey = VS) -> dict[str, Any]:
        report = trace(self.ledger, key)
        assert report is not None
        return report


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {p["proxy"]: p["status"] for p in report["proxies"]}


def connect(env: Env, *names: str) -> list[Any]:
    out = [conn(name, env.clock.wall()) for name in names]
    for c in out:
        env.ledger.connected(c)
    return out


def test_counts_acks_skips_and_event_to_last_ack() -> None:
    env = Env()
    env.change(VS, 5)
    env.ledger.serving()
    a, b, c, d = connect(env, "a.default", "b.default", "c.scoped", "d.default")
    env.clock.now += 1
    env.change(VS, 6, 2)  # the event
    event_at = env.clock.wall()
    env.clock.now += 0.1
    push = env.push(VS, start=env.clock.now - 0.1)
    env.send(a, push, "n1")
    env.send(b, push, "n2")
    env.send(b, push, "n3", CDS)
    env.ledger.skipped(c, push)
    env.ledger.up_to_date(d, push)

    report = env.report()
    assert report["summary"] == {
        "proxies": 4,
        "pushed": 2,
        "acked": 0,
        "nacked": 0,
        "pending": 2,
        "upToDate": 1,
        "notConcerned": 1,
        "reverted": 0,
        "queued": 0,
        "unknown": 0,
        "connectedLater": 0,
    }
    assert not report["converged"] and not report["live"]
    assert report["version"] == {"resourceVersion": "6", "generation": 2, "deleted": False}

    env.clock.now += 0.2
    env.ack(a, "n1")
    env.ack(b, "n2")
    assert statuses(env.report())["b.default"] == "PENDING"  # its CDS is not ACKed yet
    env.clock.now += 0.3
    env.ack(b, "n3", CDS)
    report = env.report()
    assert statuses(report) == {
        "a.default": "ACKED",
        "b.default": "ACKED",
        "c.scoped": "NOT CONCERNED",
        "d.default": "UP TO DATE",
    }
    assert report["summary"]["acked"] == 2 and report["summary"]["pending"] == 0
    assert report["converged"] and report["live"]
    assert abs(report["eventToLastAckSeconds"] - (env.clock.wall() - event_at)) < 1e-6
    [entry] = report["pushes"]
    assert entry["id"] == "v1" and entry["current"] and entry["concerned"] == 3
    assert entry["skipped"] == 1
    assert entry["proxies"] == {
        "pushed": 2,
        "acked": 2,
        "nacked": 0,
        "pending": 0,
        "upToDate": 1,
        "notConcerned": 1,
    }
    b_entry = next(p for p in report["proxies"] if p["proxy"] == "b.default")
    assert b_entry["types"] == ["CDS", "RDS"] and b_entry["push"] == "v1"


def test_nack_is_reported_with_envoys_message_and_sticks() -> None:
    env = Env()
    env.change(VS, 1)
    env.ledger.serving()
    a, b = connect(env, "a.default", "b.default")
    env.change(VS, 2)
    bad = env.push(VS)
    env.send(a, bad, "n1")
    env.send(b, bad, "n2")
    env.ack(a, "n1")
    env.nack(b, "n2", "regex 'a{1000}' RE2 program size of 1004 > max program size of 100")
    report = env.report()
    assert report["summary"]["nacked"] == 1 and report["summary"]["acked"] == 1
    assert report["converged"] and not report["live"]
    entry = next(p for p in report["proxies"] if p["proxy"] == "b.default")
    assert entry["status"] == "NACKED"
    assert entry["nack"]["type"] == "RDS" and entry["nack"]["nonce"] == "n2"
    assert "RE2 program size" in entry["nack"]["message"]

    # Last known good: the object is served at its older version again, to everyone.
    env.objects[VS] = config(VS, 1)  # the effective view, not a store event
    env.clock.now += 0.1
    revert = env.push(VS)
    env.send(a, revert, "n3")
    env.send(b, revert, "n4")
    env.ack(a, "n3")
    env.ack(b, "n4")
    env.clock.now += 0.1
    (c,) = connect(env, "c.default")  # connects later: gets the older version too
    env.send(c, None, "n5")
    env.ack(c, "n5")
    report = env.report()
    # Version 2 never went live on B, and is no longer on A or C.
    assert statuses(report) == {
        "a.default": "REVERTED",
        "b.default": "NACKED",
        "c.default": "REVERTED",
    }
    assert report["summary"]["reverted"] == 2 and not report["live"]
    assert report["lastPushedVersion"]["resourceVersion"] == "1"
    assert report["version"]["resourceVersion"] == "2"
    assert [p["current"] for p in report["pushes"]] == [False, True]


def test_a_later_edit_is_not_credited_to_an_earlier_push() -> None:
    env = Env()
    env.change(VS, 1)
    env.ledger.serving()
    (a,) = connect(env, "a.default")
    env.change(VS, 2)
    first = env.push(VS)
    env.change(VS, 3)  # edited again before the first push reached anyone
    env.send(a, first, "n1")
    env.ack(a, "n1")
    report = env.report()
    # The push's snapshot held version 2: version 3 has not been pushed yet.
    assert report["version"]["resourceVersion"] == "3"
    assert statuses(report) == {"a.default": "QUEUED"}
    assert [p["current"] for p in report["pushes"]] == [False]
    assert not report["converged"]
    second = env.push(VS)
    env.send(a, second, "n2")
    env.ack(a, "n2")
    report = env.report()
    assert statuses(report) == {"a.default": "ACKED"} and report["live"]


def test_a_push_merged_in_a_proxys_queue_counts() -> None:
    env = Env()
    env.change(VS, 1)
    env.change(DR, 1)
    env.ledger.serving()
    a, b = connect(env, "a.default", "b.default")
    env.change(VS, 2)
    first = env.push(VS)
    env.send(a, first, "n1")  # A gets the VS push on its own
    env.ack(a, "n1")
    env.change(DR, 2)
    second = env.push(DR)
    # B was still busy: its queue merged both pushes into one request (the newer snapshot).
    merged = first.merge(second)
    assert merged.push is second.push
    env.send(b, merged, "n2", CDS)
    report = env.report()
    assert statuses(report) == {"a.default": "ACKED", "b.default": "PENDING"}
    env.ack(b, "n2", CDS)
    report = env.report()
    assert statuses(report) == {"a.default": "ACKED", "b.default": "ACKED"}
    assert next(p for p in report["proxies"] if p["proxy"] == "b.default")["push"] == "v2"


def test_a_superseded_response_takes_the_outcome_of_the_newer_one() -> None:
    env = Env()
    env.change(VS, 1)
    env.ledger.serving()
    (a,) = connect(env, "a.default")
    env.change(VS, 2)
    first = env.push(VS)
    env.send(a, first, "n1")
    env.change(DR, 1)
    second = env.push(DR)
    env.send(a, second, "n2")
    env.ack(a, "n2")  # Envoy's ACK of n1 came with an older nonce: the server ignored it
    assert statuses(env.report()) == {"a.default": "ACKED"}


def test_proxies_connected_after_the_change_got_it_with_their_first_config() -> None:
    env = Env()
    env.change(VS, 1)  # loaded at start: no push of its own, ever
    env.ledger.serving()
    env.clock.now += 5
    a, b = connect(env, "a.default", "b.default")
    assert statuses(env.report()) == {"a.default": "QUEUED", "b.default": "QUEUED"}
    env.send(a, None, "n1")
    env.send(b, None, "n2")
    env.ack(a, "n1")
    report = env.report()
    assert statuses(report) == {"a.default": "ACKED", "b.default": "PENDING"}
    assert report["summary"]["connectedLater"] == 2
    assert report["eventToLastAckSeconds"] is None  # no push carried it

    # A change made while running: a proxy that connects before its push waits for the push.
    env.change(VS, 2)
    env.clock.now += 0.01
    (c,) = connect(env, "c.default")
    env.send(c, None, "n3")
    env.ack(c, "n3")
    assert statuses(env.report())["c.default"] == "QUEUED"


def test_deletion_is_traced() -> None:
    env = Env()
    env.change(VS, 4)
    env.ledger.serving()
    (a,) = connect(env, "a.default")
    env.delete(VS)
    push = env.push(VS)
    env.send(a, push, "n1")
    env.ack(a, "n1")
    report = env.report()
    assert report["deleted"] and report["change"] == "delete"
    assert report["version"]["resourceVersion"] == "4"  # the last version that existed
    assert report["live"] and statuses(report) == {"a.default": "ACKED"}


def test_credential_pushes_reusing_a_snapshot_are_kept_apart() -> None:
    env = Env()
    env.change(VS, 1)
    env.ledger.serving()
    (a,) = connect(env, "a.default")
    env.change(VS, 2)
    push = env.push(VS)
    env.send(a, push, "n1")
    env.ack(a, "n1")
    credentials = PushRequest.of(
        [ConfigKey(Kind.SECRET, "spiffe://cluster.local/ns/default/sa/a")], TriggerReason.SECRET
    ).with_push(push.push)  # type: ignore[arg-type]
    env.send(a, credentials, "n2", typeurls.SECRET)
    report = env.report()
    assert statuses(report) == {"a.default": "ACKED"}  # the pending SDS is another push
    assert "v1+sds" in env.ledger.pushes


def test_disconnected_proxies_are_forgotten() -> None:
    env = Env()
    env.change(VS, 1)
    env.ledger.serving()
    a, _b = connect(env, "a.default", "b.default")
    env.ledger.disconnected(a)
    assert statuses(env.report()) == {"b.default": "QUEUED"}


def test_the_debug_query_names_bad_input() -> None:
    env = Env()
    env.change(VS, 1)
    status, body = trace_query(
        env.ledger, {"kind": "virtualservice", "namespace": "default", "name": "reviews"}
    )
    assert status == 200 and body["kind"] == "VirtualService"
    status, body = trace_query(env.ledger, {"kind": "Virtual", "name": "reviews"})
    assert status == 400 and "unknown kind 'Virtual'" in body["error"]
    assert "VirtualService" in body["error"]
    status, body = trace_query(env.ledger, {"kind": "VirtualService"})
    assert status == 400 and "name is required" in body["error"]
    status, body = trace_query(env.ledger, {"kind": "Gateway", "namespace": "x", "name": "gw"})
    assert status == 404 and "no record of Gateway x/gw" in body["error"]


def test_memory_stays_within_the_caps_under_a_flood() -> None:
    env = Env()
    env.ledger.serving()
    proxies = connect(env, *(f"p{i}.default" for i in range(20)))
    keys = [ConfigKey(Kind.VIRTUAL_SERVICE, f"vs{i}", "default") for i in range(50)]
    nonce = 0
    rounds = ledger_mod.MAX_PUSHES * 3
    for round_ in range(rounds):
        changed = keys[round_ % len(keys)]
        env.change(changed, round_ + 1)
        extra = [ConfigKey(Kind.DESTINATION_RULE, f"dr{round_}-{i}", "default") for i in range(40)]
        push = env.push(changed, VS, *extra)
        for c in proxies:
            nonce += 1
            env.send(c, push, f"n{nonce}")  # never ACKed: every send stays pending
            env.send(c, push, f"c{nonce}", CDS)
        env.clock.now += 0.01
    env.nack(proxies[0], f"n{nonce - 19}", "x" * 100_000)  # its last RDS (and 15 older)
    ledger = env.ledger
    assert len(ledger.pushes) == ledger_mod.MAX_PUSHES
    assert len(ledger.objects) == ledger_mod.MAX_OBJECTS
    assert all(len(o.pushes) <= ledger_mod.OBJECT_PUSHES for o in ledger.objects.values())
    for proxy in ledger.proxies.values():
        assert len(proxy.deliveries) == ledger_mod.PROXY_DELIVERIES
        assert all(len(p) <= ledger_mod.PENDING_PER_TYPE for p in proxy.pending.values())
        assert proxy.forgotten_seq == rounds - ledger_mod.PROXY_DELIVERIES
    nacked = [
        s.message
        for d in ledger.proxies[proxies[0].id].deliveries.values()
        for s in d.sends.values()
        if s.message
    ]
    assert nacked and all(len(m) == ledger_mod.MESSAGE_CHARS for m in nacked)
    # Still answers: VS was in every push (the latest ones pending), vs0 long ago.
    summary = env.report()["summary"]
    assert (summary["pending"], summary["nacked"]) == (19, 1)
    old = trace(ledger, keys[0])
    assert old is not None  # vs0 changed in round 150: its push is still remembered
    first = ConfigKey(Kind.DESTINATION_RULE, "dr0-0", "default")
    assert trace(ledger, first) is None  # evicted (least recently used)


def test_a_huge_merged_request_is_not_kept() -> None:
    env = Env()
    env.change(VS, 1)
    env.ledger.serving()
    a, b = connect(env, "a.default", "b.default")
    many = [ConfigKey(Kind.DESTINATION_RULE, f"dr{i}", "x") for i in range(2000)]
    first = env.push(VS)
    second = env.push(*many)
    env.send(b, second, "n0")  # B was idle: it got the second push on its own
    merged = first.merge(second)
    env.send(a, merged, "n1")
    delivery = env.ledger.proxies[a.id].deliveries["v2"]
    assert delivery.merged is None and delivery.merged_many
    env.ack(a, "n1")
    assert statuses(env.report()) == {"a.default": "ACKED", "b.default": "QUEUED"}
