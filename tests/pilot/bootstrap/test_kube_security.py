"""Kubernetes-mode security duties (pilot/bootstrap/kube_security.py) with two replicas in one
process on the fake API server, through the real client: one root for both, root rotation
reaching the follower through its watch, Secrets put back, the ConfigMaps following the root,
and leadership moving when the leader stops."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pilot.bootstrap.kube_security import KubeSecurity, KubeSecuritySettings
from pilot.bootstrap.mesh_security import MeshSecurity, SecuritySettings
from pilot.config.store import ConfigStore
from pilot.features import Features
from pkg.config.schema import parse_object
from pkg.credentials import Identity
from pkg.kube.client import KubeClient
from pkg.kube.leader import LeaseTiming
from tests.helpers.aio import eventually
from tests.helpers.kube.fake_apiserver import FakeApiServer

NS = "istio-system"


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def client(api: FakeApiServer) -> Iterator[KubeClient]:
    kube_client = api.client()
    yield kube_client
    kube_client.close()


@dataclass
class Replica:
    name: str
    store: ConfigStore
    kube_security: KubeSecurity
    security: MeshSecurity
    announced: list[Identity | None]


def _settings(tmp: Path) -> SecuritySettings:
    features = Features(root_ca_dir=str(tmp / "no-cacerts"), leader_election_lease_duration=1.0)
    return SecuritySettings(tmp / "state", "cluster.local", (), "cluster.local", NS, features)


async def _start(api: FakeApiServer, tmp: Path, names: tuple[str, ...]) -> list[Replica]:
    pending = []
    for name in names:
        store = ConfigStore()
        settings = KubeSecuritySettings(NS, name, LeaseTiming(1.0))
        pending.append((name, store, KubeSecurity(api.client(), store, settings)))
    securities = await asyncio.wait_for(
        asyncio.gather(*(ks.create_security(_settings(tmp / n)) for n, _, ks in pending)), 20
    )
    replicas = []
    for (name, store, ks), security in zip(pending, securities, strict=True):
        announced: list[Identity | None] = []
        security.credentials.subscribe(announced.append)
        replicas.append(Replica(name, store, ks, security, announced))
    return replicas


@pytest.fixture
async def replicas(api: FakeApiServer, tmp_path: Path) -> AsyncIterator[list[Replica]]:
    started = await _start(api, tmp_path, ("a", "b"))
    yield started
    for replica in started:
        await replica.kube_security.stop()
        replica.kube_security.kube.close()


def _leader(replicas: list[Replica]) -> tuple[Replica, Replica]:
    leaders = [r for r in replicas if r.kube_security.elector.is_leader]
    assert len(leaders) == 1, [r.name for r in leaders]
    return leaders[0], next(r for r in replicas if r is not leaders[0])


def _created(api: FakeApiServer, plural: str, name: str) -> int:
    with api.store.changed:
        events = api.store.events_after(0)
    return sum(
        1
        for e in events
        if e.resource.plural == plural and e.type == "ADDED" and e.new["metadata"]["name"] == name
    )


def _namespace(store: ConfigStore, name: str) -> None:
    result = parse_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert result.config is not None, result.errors
    store.upsert(result.config)


def _configmap_root(api: FakeApiServer, namespace: str) -> str | None:
    try:
        cm: dict[str, Any] = (
            api.client()
            .core()
            .read_namespaced_config_map("istio-ca-root-cert", namespace)
            .to_dict()
        )
    except Exception:
        return None
    return (cm.get("data") or {}).get("root-cert.pem")


async def test_both_replicas_share_one_root_and_one_token_key(
    replicas: list[Replica], api: FakeApiServer
) -> None:
    leader, follower = _leader(replicas)
    assert _created(api, "secrets", "istio-ca-secret") == 1
    assert _created(api, "secrets", "istiod-token-key") == 1
    assert leader.security.ca.trust_bundle() == follower.security.ca.trust_bundle()
    assert leader.security.ca.root_cert == follower.security.ca.root_cert
    # A token one replica issues, the other accepts.
    token = leader.security.tokens.issue("default", "sleep")
    found = await follower.security.authenticate({"authorization": f"Bearer {token}"}, [])
    assert found == Identity("cluster.local", "default", "sleep")


async def test_rotation_by_the_leader_reaches_the_follower_and_the_configmaps(
    replicas: list[Replica], api: FakeApiServer
) -> None:
    leader, follower = _leader(replicas)
    for replica in replicas:
        _namespace(replica.store, "shop")
    old_bundle = leader.security.ca.trust_bundle().decode()
    await eventually(lambda: _configmap_root(api, "shop") == old_bundle,
                     message="istio-ca-root-cert in shop")  # fmt: skip

    ca = leader.security.ca
    old_root = ca.root_cert
    late = old_root.not_valid_after_utc - timedelta(days=30)  # within the 20 % grace
    ca.policy = dataclasses.replace(ca.policy, clock=lambda: late)
    # The leader's periodic check rotates the root and writes the Secret.
    assert None in leader.security.credentials.refresh(check_root=True)
    new_bundle = leader.security.ca.trust_bundle()
    assert leader.security.ca.root_cert != old_root
    assert new_bundle.count(b"BEGIN CERTIFICATE") == 2  # new root first, the old one kept

    await eventually(lambda: follower.security.ca.trust_bundle() == new_bundle,
                     message="the follower adopts the rotated root")  # fmt: skip
    assert None in follower.announced  # SDS ROOTCA push and serving certificate re-issue
    await eventually(lambda: _configmap_root(api, "shop") == new_bundle.decode(),
                     message="istio-ca-root-cert follows the rotation")  # fmt: skip
    # Signing keeps chaining to the same key: the follower's new leaves verify under both.
    leaf = follower.security.ca.issue(["spiffe://cluster.local/ns/shop/sa/x"])
    assert leaf.roots_pem == new_bundle


async def test_a_follower_never_writes_the_root(
    replicas: list[Replica], api: FakeApiServer
) -> None:
    _, follower = _leader(replicas)
    before = api.store.rv
    late = follower.security.ca.root_cert.not_valid_after_utc - timedelta(days=30)
    assert not follower.security.ca.check_root_rotation(late)  # due, but not its duty
    assert api.store.rv == before


async def test_deleted_secrets_are_put_back_with_the_same_keys(
    replicas: list[Replica], api: FakeApiServer
) -> None:
    leader, follower = _leader(replicas)
    core = api.client().core()
    ca_before = core.read_namespaced_secret("istio-ca-secret", NS).data
    key_before = core.read_namespaced_secret("istiod-token-key", NS).data
    core.delete_namespaced_secret("istio-ca-secret", NS)
    core.delete_namespaced_secret("istiod-token-key", NS)

    def restored() -> bool:
        try:
            ca = core.read_namespaced_secret("istio-ca-secret", NS).data
            key = core.read_namespaced_secret("istiod-token-key", NS).data
        except Exception:
            return False
        return bool(ca == ca_before and key == key_before)

    await eventually(restored, message="the leader puts both Secrets back")
    assert leader.security.ca.trust_bundle() == follower.security.ca.trust_bundle()


async def test_leadership_moves_when_the_leader_stops(
    replicas: list[Replica], api: FakeApiServer
) -> None:
    leader, follower = _leader(replicas)
    await leader.kube_security.stop()  # releases the Lease
    held = api.client().coordination().read_namespaced_lease("istio-ca-leader", NS)
    assert held.spec.holder_identity in ("", None, follower.name)  # not left to expire
    await eventually(lambda: follower.kube_security.elector.is_leader, timeout=5,
                     message="the follower takes the Lease over")  # fmt: skip
    lease = api.client().coordination().read_namespaced_lease("istio-ca-leader", NS)
    assert lease.spec.holder_identity == follower.name
    assert lease.spec.lease_transitions >= 1
    # The new leader does the singleton duties: a namespace gets its ConfigMap.
    _namespace(follower.store, "after")
    bundle = follower.security.ca.trust_bundle().decode()
    await eventually(lambda: _configmap_root(api, "after") == bundle,
                     message="the new leader publishes istio-ca-root-cert")  # fmt: skip


async def test_a_changed_token_key_is_followed(replicas: list[Replica], api: FakeApiServer) -> None:
    from security.tokens import TokenIssuer, new_signing_key_pem, signing_key_from_pem

    leader, follower = _leader(replicas)
    pem = new_signing_key_pem()
    core = api.client().core()
    secret = core.read_namespaced_secret("istiod-token-key", NS)
    secret.data = {"token-signing-key.pem": base64.b64encode(pem).decode()}
    core.replace_namespaced_secret("istiod-token-key", NS, secret)
    await eventually(lambda: all(r.security.tokens.key_pem == pem for r in replicas),
                     message="both replicas sign with the new key")  # fmt: skip
    token = TokenIssuer(signing_key_from_pem(pem, "test")).issue("default", "sleep")
    found = await follower.security.authenticate({"authorization": f"Bearer {token}"}, [])
    assert found.service_account == "sleep"
    del leader


async def test_istiods_own_secrets_never_become_config(api: FakeApiServer) -> None:
    from pilot.config.kube import KubeConfigSource
    from pkg.config.model import Kind
    from security.kube_secrets import ISTIOD_SECRET_TYPES

    core = api.client().core()
    for i, secret_type in enumerate((*ISTIOD_SECRET_TYPES, "kubernetes.io/tls")):
        body = {"metadata": {"name": f"s{i}"}, "type": secret_type,
                "data": {"tls.crt": "eA==", "tls.key": "eA=="}}  # fmt: skip
        core.create_namespaced_secret(NS, body)
    store = ConfigStore()
    source = KubeConfigSource(api.client(), store)
    source.start()
    try:
        await asyncio.wait_for(source.synced.wait(), 10)
        assert [c.name for c in store.list(Kind.SECRET)] == [f"s{len(ISTIOD_SECRET_TYPES)}"]
    finally:
        await source.stop()
        source.kube.close()


async def test_a_plugged_in_ca_is_used_instead_of_istio_ca_secret(
    api: FakeApiServer, tmp_path: Path
) -> None:
    from tests.security.util import write_plugged_ca

    plugged = write_plugged_ca(tmp_path / "cacerts", not_before=datetime.now(UTC) - timedelta(1))
    settings = dataclasses.replace(
        _settings(tmp_path),
        features=Features(root_ca_dir=str(plugged.directory), leader_election_lease_duration=1.0),
    )
    ks = KubeSecurity(api.client(), ConfigStore(), KubeSecuritySettings(
        NS, "solo", LeaseTiming(1.0)))  # fmt: skip
    try:
        security = await asyncio.wait_for(ks.create_security(settings), 20)
        assert security.ca.plugged_in
        assert security.ca.root_cert == plugged.root
        assert _created(api, "secrets", "istio-ca-secret") == 0
        assert _created(api, "secrets", "istiod-token-key") == 1
    finally:
        await ks.stop()
        ks.kube.close()
