"""Lease leader election (pkg/kube/leader.py) against the fake API server, real client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from pkg.kube.client import KubeClient
from pkg.kube.leader import LeaderElector, LeaseTiming
from tests.helpers.kube.fake_apiserver import FakeApiServer

NS, NAME = "istio-system", "test-leader"


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def client(api: FakeApiServer) -> Iterator[KubeClient]:
    kube_client = api.client()
    yield kube_client
    kube_client.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(
    client: KubeClient, identity: str, clock: Clock | None = None, **kw: Any
) -> LeaderElector:
    return LeaderElector(
        client, NS, NAME, identity, timing=LeaseTiming(4.0), clock=clock or Clock(), **kw
    )


def lease(client: KubeClient) -> Any:
    return client.coordination().read_namespaced_lease(NAME, NS)


async def test_of_two_racing_replicas_exactly_one_leads(client: KubeClient) -> None:
    for _ in range(5):  # bounded: the race resolves the same way every time
        a, b = elector(client, "a"), elector(client, "b")
        results = await asyncio.gather(a.step(), b.step())
        assert sorted(results) == [False, True]
        holder = "a" if a.is_leader else "b"
        assert lease(client).spec.holder_identity == holder
        client.coordination().delete_namespaced_lease(NAME, NS)


async def test_the_leader_renews_and_others_wait_out_the_lease(client: KubeClient) -> None:
    clock_a, clock_b = Clock(), Clock()
    changes: list[bool] = []
    a = elector(client, "a", clock_a, on_change=changes.append)
    b = elector(client, "b", clock_b)
    assert await a.step()
    assert changes == [True]
    first_renew = lease(client).spec.renew_time
    assert not await b.step()
    clock_b.now += 3.9  # just inside the lease: still held
    assert await a.step()  # renewed: a new renewTime, the same holder
    assert lease(client).spec.renew_time >= first_renew
    assert not await b.step()
    clock_b.now += 3.9  # b saw a renewal 3.9 s ago (its own clock): still held
    assert not await b.step()
    # a stops renewing; b takes over once it has seen no change for the lease duration.
    clock_b.now += 4.1
    assert await b.step()
    spec = lease(client).spec
    assert spec.holder_identity == "b" and spec.lease_transitions == 1
    # a notices at its next try and steps down.
    clock_a.now += 1.0
    assert not await a.step()
    assert changes == [True, False]


async def test_a_leader_that_cannot_renew_steps_down_by_the_renew_deadline(
    api: FakeApiServer,
) -> None:
    clock = Clock()
    client = api.client()
    a = elector(client, "a", clock)
    assert await a.step()
    unreachable = KubeClient.for_url("http://127.0.0.1:9")  # nothing listens on port 9
    a.kube = unreachable
    clock.now += 1.0
    assert await a.step()  # within the renew deadline (2 s): still leading
    clock.now += 1.5
    assert not await a.step()
    unreachable.close()
    client.close()


async def test_release_lets_another_replica_take_over_at_once(client: KubeClient) -> None:
    a, b = elector(client, "a"), elector(client, "b")
    assert await a.step()
    assert not await b.step()
    await a.release()
    assert not a.is_leader
    assert lease(client).spec.holder_identity in ("", None)
    assert await b.step()  # no need to wait out the lease


async def test_an_empty_identity_is_refused(client: KubeClient) -> None:
    with pytest.raises(ValueError, match="identity"):
        LeaderElector(client, NS, NAME, "")
