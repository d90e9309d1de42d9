"""Last-known-good: a rejected object version is replaced by the object's last accepted one
(or removed when it never had one) until the object changes again; nothing else is touched."""

from __future__ import annotations

from typing import Any

from pilot.config.last_good import LastGood, Rejection, object_version, with_status
from pilot.config.store import ConfigStore, EventType
from pkg.config.model import Config, ConfigKey, Kind
from tests.helpers.ads import parse_all

KEY = ConfigKey(Kind.VIRTUAL_SERVICE, "reviews", "default")


def vs(subset: str, name: str = "reviews", resource_version: str = "") -> Config[Any]:
    rv = f", resourceVersion: '{resource_version}'" if resource_version else ""
    (config,) = parse_all(f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default{rv}}}
spec:
  hosts: [{name}]
  http:
  - route:
    - destination: {{host: {name}, subset: {subset}}}
""")
    return config


def rejection(config: Config[Any], message: str = "bad regex") -> Rejection:
    return Rejection(
        config.key, object_version(config), message, "app.default", "t/Route", 1_700_000_000.0
    )


def served(good: LastGood, key: ConfigKey = KEY) -> Config[Any] | None:
    return next((c for c in good.by_kind().get(key.kind, ()) if c.key == key), None)


class Harness:
    """A store whose events go through LastGood (as the Environment wires it)."""

    def __init__(self, *configs: Config[Any]) -> None:
        self.store = ConfigStore()
        self.store.replace_all(configs)
        self.good = LastGood(self.store)
        self.events: list[Any] = []
        self.store.add_handler(lambda events: self.events.extend(self.good.observe(events)))

    def upsert(self, config: Config[Any]) -> None:
        self.store.upsert(config)


def test_rejected_version_is_replaced_by_the_previous_one() -> None:
    h = Harness(vs("v1"), vs("v1", name="ratings"))
    unrelated = served(h.good, ConfigKey(Kind.VIRTUAL_SERVICE, "ratings", "default"))
    h.upsert(vs("v2"))
    assert served(h.good) == vs("v2")

    events = h.good.reject(vs("v2"), rejection(vs("v2")))

    assert [(e.type, e.old, e.new) for e in events] == [(EventType.UPDATE, vs("v2"), vs("v1"))]
    assert served(h.good) == vs("v1")
    assert h.good.get(KEY) == vs("v1")
    assert h.store.get(KEY) == vs("v2")  # the store keeps what the source says
    # Unrelated objects are untouched (the very same objects).
    assert served(h.good, ConfigKey(Kind.VIRTUAL_SERVICE, "ratings", "default")) is unrelated
    status = h.good.status(KEY)
    assert status == {
        "rejected": {
            "message": "bad regex",
            "proxy": "app.default",
            "typeUrl": "t/Route",
            "version": object_version(vs("v2")),
            "at": "2023-11-14T22:13:20Z",
            "serving": object_version(vs("v1")),
        }
    }
    assert h.good.status(unrelated.key if unrelated else KEY) is None
    # Rejected twice (another proxy): nothing changes again.
    assert h.good.reject(vs("v2"), rejection(vs("v2"), "again")) == []
    assert h.good.rejection(KEY) is not None and h.good.rejection(KEY).message == "bad regex"


def test_nothing_rejected_means_the_store_view_itself() -> None:
    h = Harness(vs("v1"))
    assert h.good.by_kind() is h.store.by_kind()
    h.upsert(vs("v2"))
    assert h.good.by_kind() is h.store.by_kind()
    assert [e.type for e in h.events] == [EventType.UPDATE]


def test_never_accepted_object_is_not_served() -> None:
    h = Harness(vs("v1", name="ratings"))
    h.upsert(vs("v2"))  # a new object, rejected in its first version

    events = h.good.reject(vs("v2"), rejection(vs("v2")))

    assert [(e.type, e.old, e.new) for e in events] == [(EventType.DELETE, vs("v2"), None)]
    assert served(h.good) is None
    assert h.good.status(KEY)["rejected"]["serving"] == ""  # type: ignore[index]
    assert [c.name for c in h.good.by_kind()[Kind.VIRTUAL_SERVICE]] == ["ratings"]


def test_new_version_is_tried_afresh_and_reverted_again_if_rejected() -> None:
    h = Harness(vs("v1"))
    h.upsert(vs("v2"))
    h.good.reject(vs("v2"), rejection(vs("v2")))
    h.events.clear()

    h.upsert(vs("v3"))  # tried afresh
    assert served(h.good) == vs("v3") and h.good.rejection(KEY) is None
    # The change is seen as v1 (what was served) → v3.
    assert [(e.type, e.old, e.new) for e in h.events] == [(EventType.UPDATE, vs("v1"), vs("v3"))]

    events = h.good.reject(vs("v3"), rejection(vs("v3")))  # bad again: back to v1, not v2
    assert [(e.old, e.new) for e in events] == [(vs("v3"), vs("v1"))]
    assert served(h.good) == vs("v1")

    h.upsert(vs("v4"))  # a good one: accepted, and the next bad one falls back to it
    h.upsert(vs("v5"))
    h.good.reject(vs("v5"), rejection(vs("v5")))
    assert served(h.good) == vs("v4")


def test_a_rejected_fallback_gives_way_to_the_next_older_version() -> None:
    h = Harness(vs("v1"))
    h.upsert(vs("v2"))  # never reached a proxy before v3 came
    h.upsert(vs("v3"))
    h.good.reject(vs("v3"), rejection(vs("v3")))
    assert served(h.good) == vs("v2")

    events = h.good.reject(vs("v2"), rejection(vs("v2")))

    assert [(e.old, e.new) for e in events] == [(vs("v2"), vs("v1"))]
    assert served(h.good) == vs("v1")
    assert h.good.rejection(KEY).version == object_version(vs("v3"))  # type: ignore[union-attr]


def test_stale_rejections_are_ignored() -> None:
    h = Harness(vs("v1"))
    h.upsert(vs("v2"))
    h.upsert(vs("v3"))
    # A NACK of v2 arriving after v3 replaced it: v2 is no fallback any more, v3 is served.
    assert h.good.reject(vs("v2"), rejection(vs("v2"))) == []
    assert served(h.good) == vs("v3") and h.good.rejection(KEY) is None
    h.good.reject(vs("v3"), rejection(vs("v3")))
    assert served(h.good) == vs("v1")  # v2 was dropped from the fallbacks
    # Unknown objects and versions change nothing.
    assert h.good.reject(vs("v9", name="gone"), rejection(vs("v9", name="gone"))) == []


def test_deleting_a_rejected_object_forgets_it() -> None:
    h = Harness(vs("v1"))
    h.upsert(vs("v2"))
    h.good.reject(vs("v2"), rejection(vs("v2")))
    h.events.clear()

    h.store.delete(KEY)

    assert [(e.type, e.old) for e in h.events] == [(EventType.DELETE, vs("v1"))]
    assert h.good.rejections() == [] and served(h.good) is None
    h.upsert(vs("v6"))  # recreated: a new object with no history
    assert served(h.good) == vs("v6")
    assert [e.type for e in h.events][-1] is EventType.ADD


def test_object_version_and_configz_status() -> None:
    assert object_version(vs("v1", resource_version="42")) == "42"
    digest = object_version(vs("v1"))
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 12
    assert digest == object_version(vs("v1")) != object_version(vs("v2"))
    raw = {"kind": "VirtualService", "status": {"other": 1}}
    merged = with_status(raw, {"rejected": {"message": "m"}})
    assert merged == {
        "kind": "VirtualService",
        "status": {"other": 1, "rejected": {"message": "m"}},
    }
    assert with_status(raw, None) == raw and raw == {
        "kind": "VirtualService",
        "status": {"other": 1},
    }
