"""The Kubernetes config source against the fake API server, through the real client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from pilot.config.file import Problem
from pilot.config.kube import KubeConfigSource
from pilot.config.kube_watch import KindWatcher, Target
from pilot.config.store import ConfigEvent, ConfigStore
from pkg.config.model import ConfigKey, Kind
from pkg.config.schema import schema_for
from pkg.kube.client import KubeClient, Watch
from tests.helpers.aio import eventually
from tests.helpers.kube.conftest import NET, fake_apiserver, kube, virtual_service  # noqa: F401
from tests.helpers.kube.fake_apiserver import FakeApiServer

VS = "virtualservices"


@dataclass(frozen=True)
class GatedClient(KubeClient):
    """A client whose new watches wait while `online` is clear (the client "away")."""

    online: threading.Event = field(default_factory=threading.Event)

    def watch(self) -> Any:
        assert self.online.wait(5), "gate left closed"
        return KubeClient.watch(self)


def vs_key(name: str, ns: str = "default") -> ConfigKey:
    return ConfigKey(Kind.VIRTUAL_SERVICE, name, ns)


class Recorder:
    def __init__(self, store: ConfigStore) -> None:
        self.events: list[tuple[str, str, str]] = []  # (type, key, resourceVersion)
        self.problems: list[Problem] = []
        store.add_handler(self.on_events)

    def on_events(self, events: list[ConfigEvent]) -> None:
        for e in events:
            config = e.new or e.old
            assert config is not None
            self.events.append((e.type.value, str(e.key), config.meta.resource_version))


async def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    await eventually(predicate, timeout=timeout, message=what)


def create(client: KubeClient, name: str, host: str, ns: str = "default") -> str:
    body = {
        **virtual_service(name, host),
        "metadata": {"name": name, "namespace": ns},
        "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": host}}]}]},
    }
    obj = client.custom().create_namespaced_custom_object(*NET, ns, VS, body)
    return str(obj["metadata"]["resourceVersion"])


def patch(client: KubeClient, name: str, spec: dict[str, Any], ns: str = "default") -> str:
    obj = client.custom().patch_namespaced_custom_object(*NET, ns, VS, name, {"spec": spec})
    return str(obj["metadata"]["resourceVersion"])


def delete(client: KubeClient, name: str, ns: str = "default") -> None:
    client.custom().delete_namespaced_custom_object(*NET, ns, VS, name)


@pytest.fixture
async def source_of(
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> AsyncIterator[Callable[..., tuple[KubeConfigSource, ConfigStore, Recorder]]]:
    started: list[KubeConfigSource] = []
    clients: list[KubeClient] = []

    def make(**kwargs: Any) -> tuple[KubeConfigSource, ConfigStore, Recorder]:
        store = ConfigStore()
        recorder = Recorder(store)
        client = kwargs.pop("client", None) or fake_apiserver.client()
        clients.append(client)
        source = KubeConfigSource(
            client, store, on_problems=recorder.problems.extend, backoff_max=0.2, **kwargs
        )
        source.start()
        started.append(source)
        return source, store, recorder

    yield make
    for source in started:
        assert await source.stop(timeout=10.0), "watch threads did not stop"
    for client in clients:
        client.close()


async def test_changes_reach_the_store_in_order_and_synced_fires_once(
    kube: KubeClient,  # noqa: F811
    fake_apiserver: FakeApiServer,  # noqa: F811
    source_of: Callable[..., tuple[KubeConfigSource, ConfigStore, Recorder]],
) -> None:
    rv_a = create(kube, "a", "a.example.com")
    source, store, rec = source_of()
    await asyncio.wait_for(source.synced.wait(), 5)
    assert rec.events == [("add", str(vs_key("a")), rv_a)]
    assert len(source.targets) == len({t.schema.kind for t in source.targets})  # one per kind
    assert all(t.schema.versions[0] == "v1" for t in source.targets if "networking" in str(t))
    fake_apiserver.wait_for_watches(len(source.targets))

    rv_b = create(kube, "b", "b.example.com")
    rv_a2 = patch(kube, "a", {"hosts": ["a2.example.com"]})
    delete(kube, "b")
    await until(lambda: len(rec.events) == 4, "three watch events")
    assert rec.events[1:] == [
        ("add", str(vs_key("b")), rv_b),
        ("update", str(vs_key("a")), rv_a2),
        ("delete", str(vs_key("b")), rv_b),
    ]
    a = store.get(vs_key("a"))
    assert a is not None and a.spec.hosts == ("a2.example.com",) and a.meta.generation == 2
    synced_once = source.synced.is_set() and len(source._listed) == len(source.targets)
    assert synced_once


async def test_drop_and_410_lose_and_duplicate_nothing(
    kube: KubeClient,  # noqa: F811
    fake_apiserver: FakeApiServer,  # noqa: F811
    source_of: Callable[..., tuple[KubeConfigSource, ConfigStore, Recorder]],
) -> None:
    create(kube, "a", "a.example.com")
    rv_b = create(kube, "b", "b.example.com")
    gate = threading.Event()
    gate.set()
    source, store, rec = source_of(client=GatedClient(fake_apiserver.client().api_client, gate))
    await asyncio.wait_for(source.synced.wait(), 5)
    n = len(source.targets)
    fake_apiserver.wait_for_watches(n)
    watcher = next(w for w in source.watchers if w.target.schema.kind == Kind.VIRTUAL_SERVICE)

    # A clean drop: the watch resumes from the last resourceVersion, nothing replayed.
    fake_apiserver.drop_watches()
    rv_c = create(kube, "c", "c.example.com")
    await until(lambda: len(rec.events) == 3, "event made during the drop")
    # An abrupt drop (broken connection): retried after a backoff, nothing lost.
    fake_apiserver.wait_for_watches(n)
    fake_apiserver.drop_watches(abrupt=True)
    rv_d = create(kube, "d", "d.example.com")
    await until(lambda: len(rec.events) == 4, "event made during the abrupt drop")
    assert watcher.lists == 1

    # Changes then compaction while no watch is open: 410 Gone → relist, diffed against the cache.
    fake_apiserver.wait_for_watches(n)
    gate.clear()
    ended = watcher.watches
    fake_apiserver.drop_watches()
    await until(lambda: watcher.watches > ended, "the VirtualService watch away")
    rv_a2 = patch(kube, "a", {"hosts": ["a2.example.com"]})
    delete(kube, "b")
    rv_e = create(kube, "e", "e.example.com")
    fake_apiserver.compact()
    gate.set()
    await until(lambda: watcher.lists == 2, "relist after 410")
    fake_apiserver.wait_for_watches(n)
    rv_f = create(kube, "f", "f.example.com")
    await until(lambda: str(vs_key("f")) in [k for _, k, _ in rec.events], "event after relist")

    assert rec.events[2:4] == [
        ("add", str(vs_key("c")), rv_c),
        ("add", str(vs_key("d")), rv_d),
    ]
    assert sorted(rec.events[4:7]) == sorted(
        [
            ("delete", str(vs_key("b")), rv_b),
            ("update", str(vs_key("a")), rv_a2),
            ("add", str(vs_key("e")), rv_e),
        ]
    )
    assert rec.events[7:] == [("add", str(vs_key("f")), rv_f)]
    server = kube.custom().list_cluster_custom_object(*NET, VS)["items"]
    assert {c.name: c.meta.resource_version for c in store.list(Kind.VIRTUAL_SERVICE)} == {
        o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in server
    }


async def test_invalid_object_is_reported_and_last_good_kept(
    kube: KubeClient,  # noqa: F811
    fake_apiserver: FakeApiServer,  # noqa: F811
    source_of: Callable[..., tuple[KubeConfigSource, ConfigStore, Recorder]],
) -> None:
    rv_a = create(kube, "a", "a.example.com")
    source, store, rec = source_of()
    await asyncio.wait_for(source.synced.wait(), 5)
    fake_apiserver.wait_for_watches(len(source.targets))
    patch(kube, "a", {"http": [{"route": [{"destination": {"host": "x"}, "weight": -5}]}]})
    await until(lambda: bool(rec.problems), "the invalid object reported")
    [problem] = rec.problems
    assert (problem.kind, problem.namespace, problem.name) == ("VirtualService", "default", "a")
    assert "weight" in problem.message and f"resourceVersion {rv_a}" in problem.message
    assert source.problems == [problem]
    kept = store.get(vs_key("a"))
    assert kept is not None and kept.meta.resource_version == rv_a
    # Valid again: served, and the problem is gone.
    rv_a3 = patch(kube, "a", {"http": [{"route": [{"destination": {"host": "a3.example.com"}}]}]})
    await until(lambda: len(rec.events) == 2, "the fixed object")
    assert rec.events[1] == ("update", str(vs_key("a")), rv_a3)
    assert source.problems == [] and len(rec.problems) == 1


async def test_namespace_scoped_source_ignores_other_namespaces(
    kube: KubeClient,  # noqa: F811
    fake_apiserver: FakeApiServer,  # noqa: F811
    source_of: Callable[..., tuple[KubeConfigSource, ConfigStore, Recorder]],
) -> None:
    create(kube, "in", "in.example.com", ns="team-a")
    create(kube, "out", "out.example.com", ns="team-b")
    source, store, rec = source_of(namespaces=("team-a", "team-c"))
    await asyncio.wait_for(source.synced.wait(), 5)
    fake_apiserver.wait_for_watches(len(source.targets))
    create(kube, "out2", "out2.example.com", ns="team-b")
    create(kube, "in2", "in2.example.com", ns="team-c")
    await until(lambda: len(rec.events) == 2, "the event in team-c")
    assert sorted(str(c.key) for c in store.list(Kind.VIRTUAL_SERVICE)) == [
        str(vs_key("in", "team-a")),
        str(vs_key("in2", "team-c")),
    ]


async def test_synced_waits_for_every_initial_list(
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    store = ConfigStore()
    client = fake_apiserver.client()
    source = KubeConfigSource(client, store)
    source._loop = asyncio.get_running_loop()
    from pilot.config.kube_watch import Listed

    for target in source.targets[:-1]:
        source.apply(Listed(target, (), "1"))
    assert not source.synced.is_set()
    source.apply(Listed(source.targets[-1], (), "1"))
    assert source.synced.is_set()
    client.close()


async def test_kubernetes_kinds_reach_the_store_and_token_secrets_are_not_watched(
    kube: KubeClient,  # noqa: F811
    source_of: Callable[..., tuple[KubeConfigSource, ConfigStore, Recorder]],
) -> None:
    core = kube.core()
    core.create_namespace({"metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}})
    core.create_namespaced_service(
        "shop",
        {
            "metadata": {"name": "cart"},
            "spec": {"selector": {"app": "cart"}, "ports": [{"name": "http", "port": 80}]},
        },
    )
    tls = {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}
    core.create_namespaced_secret(
        "shop", {"metadata": {"name": "cert"}, "type": "kubernetes.io/tls", "data": tls}
    )
    token = {"metadata": {"name": "tok"}, "type": "kubernetes.io/service-account-token"}
    core.create_namespaced_secret("shop", token)
    source, store, rec = source_of()
    await asyncio.wait_for(source.synced.wait(), 5)
    assert store.get(ConfigKey(Kind.NAMESPACE, "shop", "")) is not None
    cart = store.get(ConfigKey(Kind.SERVICE, "cart", "shop"))
    assert cart is not None and cart.spec.ports[0].port == 80
    assert store.get(ConfigKey(Kind.SECRET, "cert", "shop")) is not None
    assert store.get(ConfigKey(Kind.SECRET, "tok", "shop")) is None  # field selector
    assert rec.problems == []

    kube.discovery().create_namespaced_endpoint_slice(
        "shop",
        {
            "metadata": {"name": "cart-1", "labels": {"kubernetes.io/service-name": "cart"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.9.1"], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 8080}],
        },
    )
    core.delete_namespaced_service("cart", "shop")
    slice_key = ConfigKey(Kind.ENDPOINT_SLICE, "cart-1", "shop")
    await until(
        lambda: (
            store.get(slice_key) is not None
            and store.get(ConfigKey(Kind.SERVICE, "cart", "shop")) is None
        ),
        "the slice added and the Service deleted",
    )


class _SlowStart(Watch):  # type: ignore[misc]
    """A watch whose stream pauses before it opens (the request still in flight)."""

    entered = threading.Event()
    release = threading.Event()

    def stream(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        _SlowStart.entered.set()
        assert _SlowStart.release.wait(5), "never released"
        yield from super().stream(func, *args, **kwargs)


@dataclass(frozen=True)
class SlowStartClient(KubeClient):
    def watch(self) -> Any:
        return _SlowStart()


def test_stop_while_a_watch_is_being_opened_still_ends_the_thread(
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    # stop() lands after the watch exists but before its request is answered: the client's
    # stream() then forgets the stop and would block until the kind's next event.
    client = SlowStartClient(fake_apiserver.client().api_client)
    target = Target(schema_for(Kind.VIRTUAL_SERVICE))
    watcher = KindWatcher(client, target, lambda message: None)
    _SlowStart.entered.clear()
    _SlowStart.release.clear()
    try:
        watcher.start()
        assert _SlowStart.entered.wait(5), "the watch never started"
        watcher.stop()
        _SlowStart.release.set()
        assert watcher.join(3.0), "the watch thread outlived stop()"
    finally:
        _SlowStart.release.set()
        client.close()
