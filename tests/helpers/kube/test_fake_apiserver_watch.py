"""Watch streams of the fake API server, and the list+watch loop a config store needs."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from pkg.kube.client import GONE, ApiException, KubeClient, models, status_of
from tests.helpers.kube.conftest import NET, secret, virtual_service
from tests.helpers.kube.fake_apiserver import FakeApiServer


def test_watch_sees_events_in_order_with_bookmarks(
    kube: KubeClient, fake_apiserver: FakeApiServer
) -> None:
    custom = kube.custom()
    start = custom.list_namespaced_custom_object(*NET, "default", "virtualservices")
    rv0 = start["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(
        *NET, "default", "virtualservices", virtual_service("r", "a")
    )
    custom.patch_namespaced_custom_object(
        *NET, "default", "virtualservices", "r", {"spec": {"hosts": ["b"]}}
    )
    custom.delete_namespaced_custom_object(*NET, "default", "virtualservices", "r")
    seen: list[tuple[str, int]] = []
    watch = kube.watch()
    for event in watch.stream(
        custom.list_namespaced_custom_object,
        *NET,
        "default",
        "virtualservices",
        resource_version=rv0,
        allow_watch_bookmarks=True,
        timeout_seconds=5,
    ):
        seen.append((event["type"], int(event["raw_object"]["metadata"]["resourceVersion"])))
        if len(seen) == 3:
            fake_apiserver.bookmark()
        if event["type"] == "BOOKMARK":
            fake_apiserver.drop_watches()
    assert [t for t, _ in seen] == ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    rvs = [rv for _, rv in seen]
    assert rvs[0] > int(rv0) and rvs[:3] == sorted(set(rvs[:3])) and rvs[3] == rvs[2]
    assert watch.resource_version == str(rvs[3])


def test_label_selector_watch_moves_objects_in_and_out(
    kube: KubeClient, fake_apiserver: FakeApiServer
) -> None:
    core = kube.core()
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    cm = models.V1ConfigMap(metadata=models.V1ObjectMeta(name="c", labels={"app": "x"}))
    core.create_namespaced_config_map("default", cm)
    core.patch_namespaced_config_map("c", "default", {"metadata": {"labels": {"app": "y"}}})
    core.patch_namespaced_config_map("c", "default", {"data": {"k": "v"}})
    seen = []
    for event in kube.watch().stream(
        core.list_namespaced_config_map,
        "default",
        label_selector="app=x",
        resource_version=rv,
        timeout_seconds=5,
    ):
        seen.append((event["type"], event["object"].metadata.labels["app"]))
        if len(seen) == 2:
            fake_apiserver.drop_watches()
    assert seen == [("ADDED", "x"), ("DELETED", "y")]


def test_server_side_drop_and_timeout_end_the_stream(
    kube: KubeClient, fake_apiserver: FakeApiServer
) -> None:
    ended = threading.Event()
    events: list[str] = []

    def consume() -> None:
        for event in kube.watch().stream(
            kube.core().list_secret_for_all_namespaces, timeout_seconds=30
        ):
            events.append(event["type"])
        ended.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    fake_apiserver.wait_for_watches(1)
    kube.core().create_namespaced_secret("default", secret("s", "default"))
    fake_apiserver.drop_watches()
    assert ended.wait(5), "the client did not see the server end the watch"
    thread.join(5)
    assert events == ["ADDED"]

    began = time.monotonic()
    kinds = [
        e["type"]
        for e in kube.watch().stream(
            kube.core().list_secret_for_all_namespaces,
            resource_version=kube.core().list_secret_for_all_namespaces().metadata.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=1,
        )
    ]
    assert kinds == ["BOOKMARK"]  # the server's bookmark just before timeoutSeconds
    assert 0.9 <= time.monotonic() - began < 4


def test_abrupt_drop_breaks_the_connection(kube: KubeClient, fake_apiserver: FakeApiServer) -> None:
    failure: list[BaseException] = []
    done = threading.Event()

    def consume() -> None:
        try:
            for _ in kube.watch().stream(kube.core().list_node, timeout_seconds=30):
                pass
        except Exception as e:  # whatever urllib3 raises for a broken chunked body
            failure.append(e)
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    fake_apiserver.wait_for_watches(1)
    fake_apiserver.drop_watches(abrupt=True)
    assert done.wait(5)
    assert failure, "an abrupt drop must not look like a clean end of the stream"
    assert type(failure[0]).__name__ == "ProtocolError"  # urllib3: "Response ended prematurely"


def test_periodic_bookmarks() -> None:
    with FakeApiServer(bookmark_interval=0.1) as api:
        kube = api.client()
        rv = kube.core().list_node().metadata.resource_version
        seen = []
        for event in kube.watch().stream(
            kube.core().list_node,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=5,
        ):
            seen.append(event["type"])
            if len(seen) == 2:
                api.drop_watches()
        kube.close()
    assert seen == ["BOOKMARK", "BOOKMARK"]


def test_expired_resource_version_gets_410(kube: KubeClient, fake_apiserver: FakeApiServer) -> None:
    core = kube.core()
    core.create_namespaced_secret("default", secret("a", "default"))
    old = core.list_namespaced_secret("default").metadata.resource_version
    core.create_namespaced_secret("default", secret("b", "default"))
    fake_apiserver.compact()
    with pytest.raises(ApiException) as gone:
        for _ in kube.watch().stream(
            core.list_namespaced_secret, "default", resource_version=old, timeout_seconds=5
        ):
            pass
    assert status_of(gone.value) == GONE
    # a revision at or after the compaction is still watchable
    current = core.list_namespaced_secret("default").metadata.resource_version
    core.create_namespaced_secret("default", secret("c", "default"))
    seen = []
    for event in kube.watch().stream(
        core.list_namespaced_secret, "default", resource_version=current, timeout_seconds=5
    ):
        seen.append((event["type"], event["object"].metadata.name))
        fake_apiserver.drop_watches()
    assert seen == [("ADDED", "c")]


# ---- the list+watch loop a Kubernetes config store needs --------------------------------


@dataclass
class Informer:
    """Client side of list+watch: relist on 410, rewatch from the last revision otherwise."""

    kube: KubeClient
    cache: dict[str, int] = field(default_factory=dict)  # name -> resourceVersion
    deltas: list[tuple[str, str, int]] = field(default_factory=list)
    relists: int = 0
    watches: int = 0
    stop: bool = False
    online: threading.Event = field(default_factory=threading.Event)  # cleared: "away"
    changed: threading.Condition = field(default_factory=threading.Condition)

    def _apply(self, kind: str, name: str, rv: int) -> None:
        with self.changed:
            if kind == "DELETED":
                self.cache.pop(name, None)
            else:
                self.cache[name] = rv
            self.deltas.append((kind, name, rv))
            self.changed.notify_all()

    def _relist(self) -> str:
        listed = self.kube.custom().list_cluster_custom_object(*NET, "virtualservices")
        fresh = {
            o["metadata"]["name"]: int(o["metadata"]["resourceVersion"]) for o in listed["items"]
        }
        for name, rv in sorted(self.cache.items()):
            if name not in fresh:
                self._apply("DELETED", name, rv)
        for name, rv in sorted(fresh.items()):
            if self.cache.get(name) != rv:
                self._apply("MODIFIED" if name in self.cache else "ADDED", name, rv)
        with self.changed:
            self.relists += 1
            self.changed.notify_all()
        return str(listed["metadata"]["resourceVersion"])

    def run(self) -> None:
        rv = ""
        for _ in range(20):  # bounded reconnects
            if self.stop:
                return
            if not rv:
                rv = self._relist()
            try:
                watch = self.kube.watch()
                for event in watch.stream(
                    self.kube.custom().list_cluster_custom_object,
                    *NET,
                    "virtualservices",
                    resource_version=rv,
                    allow_watch_bookmarks=True,
                    timeout_seconds=10,
                ):
                    meta = event["raw_object"]["metadata"]
                    if event["type"] != "BOOKMARK":
                        self._apply(event["type"], meta["name"], int(meta["resourceVersion"]))
                    rv = meta["resourceVersion"]
            except ApiException as e:
                if status_of(e) != GONE:
                    raise
                rv = ""  # expired: relist
            with self.changed:
                self.watches += 1
                self.changed.notify_all()
            assert self.online.wait(5)

    def wait(self, predicate: Any, what: str) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self), 5), f"timed out: {what}"


def test_relist_and_rewatch_lose_and_duplicate_nothing(
    kube: KubeClient, fake_apiserver: FakeApiServer
) -> None:
    custom = kube.custom()

    def create(name: str) -> int:
        o = custom.create_namespaced_custom_object(
            *NET, "default", "virtualservices", virtual_service(name, name)
        )
        return int(o["metadata"]["resourceVersion"])

    create("a")
    create("b")
    informer = Informer(kube)
    informer.online.set()
    thread = threading.Thread(target=informer.run, daemon=True)
    thread.start()
    informer.wait(lambda i: set(i.cache) == {"a", "b"}, "initial list")
    fake_apiserver.wait_for_watches(1)
    c_rv = create("c")
    informer.wait(lambda i: i.cache.get("c") == c_rv, "watch event")

    fake_apiserver.drop_watches()  # reconnect from the last revision: nothing replayed
    informer.wait(lambda i: i.watches == 1, "stream end")
    fake_apiserver.wait_for_watches(1)
    d_rv = create("d")
    informer.wait(lambda i: i.cache.get("d") == d_rv, "event after rewatch")
    assert informer.relists == 1

    # changes while the client is away, then compacted: the rewatch gets 410 -> relist
    informer.online.clear()
    fake_apiserver.drop_watches()
    informer.wait(lambda i: i.watches == 2, "second stream end")
    a_rv = int(
        custom.patch_namespaced_custom_object(
            *NET, "default", "virtualservices", "a", {"spec": {"hosts": ["a2"]}}
        )["metadata"]["resourceVersion"]
    )
    custom.delete_namespaced_custom_object(*NET, "default", "virtualservices", "b")
    e_rv = create("e")
    fake_apiserver.compact()
    informer.online.set()
    informer.wait(lambda i: i.relists == 2, "relist after 410")
    fake_apiserver.wait_for_watches(1)
    f_rv = create("f")
    informer.wait(lambda i: "f" in i.cache, "event after relist")
    informer.stop = True
    fake_apiserver.drop_watches()
    thread.join(5)

    server = custom.list_cluster_custom_object(*NET, "virtualservices")["items"]
    assert informer.cache == {
        o["metadata"]["name"]: int(o["metadata"]["resourceVersion"]) for o in server
    }
    assert informer.deltas[4:] == [
        ("DELETED", "b", informer.deltas[1][2]),
        ("MODIFIED", "a", a_rv),
        ("ADDED", "e", e_rv),
        ("ADDED", "f", f_rv),
    ]
    assert [(k, n) for k, n, _ in informer.deltas[:4]] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("ADDED", "c"),
        ("ADDED", "d"),
    ]
    assert informer.deltas[2][2] == c_rv and informer.deltas[3][2] == d_rv
