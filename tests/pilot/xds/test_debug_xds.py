"""The per-type sync status istiod reports (HTTP syncz and `istio.io/debug/syncz` over ADS),
and debug streams: answered from a snapshot, never treated as proxies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from envoy.admin.v3 import config_dump_shared_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.status.v3 import csds_pb2
from google.protobuf import struct_pb2

from pilot.xds.debug import sync_status
from pilot.xds.debug_xds import type_sync
from pilot.xds.protocol import classify_sotw
from pkg.credentials import Identity
from pkg.xds import typeurls
from pkg.xds.sync_status import ConfigStatus
from tests.helpers.ads import AdsClient, AdsEnv, node, parse_all
from tests.pilot.xds.test_ads_server import MESH, SUBSET_CLUSTERS, handshake

CDS, EDS = typeurls.CLUSTER, typeurls.ENDPOINT


@pytest.fixture
async def ads() -> AsyncIterator[AdsEnv]:
    env = AdsEnv(parse_all(MESH))
    await env.start()
    try:
        yield env
    finally:
        await env.stop()


def debug_node() -> base_pb2.Node:
    """What istioctl sends: a node with GENERATOR=event (and no proxy config)."""
    metadata = struct_pb2.Struct()
    metadata.update({"GENERATOR": "event", "NAMESPACE": "istio-system"})
    return base_pb2.Node(
        id="sidecar~127.0.0.1~istioctl.istio-system~istio-system.svc.cluster.local",
        metadata=metadata,
    )


def client_configs(response: object) -> dict[str, csds_pb2.ClientConfig]:
    out = {}
    for res in response.resources:  # type: ignore[attr-defined]
        config = csds_pb2.ClientConfig()
        assert res.Unpack(config)
        out[config.node.id] = config
    return out


def by_type(config: csds_pb2.ClientConfig) -> dict[str, csds_pb2.ClientConfig.GenericXdsConfig]:
    return {c.type_url: c for c in config.generic_xds_configs}


def test_type_sync_follows_sends_acks_and_nacks() -> None:
    state, _ = classify_sotw(None, type_url=CDS, names=(), nonce="", version="")
    assert type_sync(state).status is ConfigStatus.NOT_SENT
    state.nonce_sent, state.version_sent, state.last_sent_at = "n1", "v1", 100.0
    assert type_sync(state).status is ConfigStatus.STALE
    classify_sotw(state, type_url=CDS, names=(), nonce="n1", version="v1")
    synced = type_sync(state)
    assert (synced.status, synced.version, synced.last_updated) == (ConfigStatus.SYNCED, "v1", 100)
    state.nonce_sent, state.version_sent = "n2", "v2"
    classify_sotw(state, type_url=CDS, names=(), nonce="n2", version="v1", error_message="bad")
    rejected = type_sync(state)
    assert (rejected.status, rejected.error) == (ConfigStatus.ERROR, "bad")
    state.nonce_sent, state.version_sent = "n3", "v3"
    assert type_sync(state).status is ConfigStatus.ERROR  # until a later response is ACKed
    classify_sotw(state, type_url=CDS, names=(), nonce="n3", version="v3")
    assert (type_sync(state).status, type_sync(state).error) == (ConfigStatus.SYNCED, "")


async def test_up_to_date_reconnect_is_synced_with_nothing_sent(ads: AdsEnv) -> None:
    first = AdsClient(ads.address)
    cds, eds = await handshake(first)
    await first.close()
    again = AdsClient(ads.address)
    try:
        await again.sotw(CDS, version=cds.version_info)  # type: ignore[attr-defined]
        await again.sotw(EDS, SUBSET_CLUSTERS, version=eds.version_info)  # type: ignore[attr-defined]
        await again.expect_nothing()
        (conn,) = ads.server.connections()
        status = sync_status(conn)
        for type_url in (CDS, EDS):
            resource = status["resources"][type_url]
            assert (resource["sent"], resource["status"]) == ("", "SYNCED"), resource
            assert resource["lastUpdated"]
    finally:
        await again.close()


async def test_up_to_date_delta_reconnect_is_synced_with_nothing_sent(ads: AdsEnv) -> None:
    first = AdsClient(ads.address, delta=True)
    await first.delta_request(CDS)
    cds = await first.recv()
    await first.delta_request(CDS, nonce=cds.nonce)
    await first.close()
    again = AdsClient(ads.address, delta=True)
    try:
        await again.delta_request(CDS, initial={r.name: r.version for r in cds.resources})
        await again.expect_nothing()
        (conn,) = ads.server.connections()
        resource = sync_status(conn)["resources"][CDS]
        assert (resource["sent"], resource["status"]) == ("", "SYNCED"), resource
    finally:
        await again.close()


async def test_syncz_over_ads_reports_each_type_with_the_nack_message(ads: AdsEnv) -> None:
    proxy = AdsClient(ads.address)
    debug = AdsClient(ads.address)
    try:
        await proxy.sotw(CDS)
        cds = await proxy.recv()
        await proxy.sotw(EDS, SUBSET_CLUSTERS)
        eds = await proxy.recv()
        await proxy.sotw(CDS, nonce=cds.nonce, version="", error="cluster rejected: boom")
        await proxy.sotw(EDS, SUBSET_CLUSTERS, version=eds.version_info, nonce=eds.nonce)
        await proxy.expect_nothing()

        await debug.sotw(typeurls.DEBUG_SYNCZ, node_=debug_node())
        response = await debug.recv()
        assert response.type_url == typeurls.DEBUG_SYNCZ
        identifier = json.loads(response.control_plane.identifier)
        assert identifier["Component"] == "istiod" and identifier["ID"]
        assert identifier["Info"]["version"]
        configs = client_configs(response)
        assert list(configs) == ["app.default"]  # the debug stream is no proxy
        config = configs["app.default"]
        meta = config.node.metadata.fields
        assert meta["NAMESPACE"].string_value == "default"
        assert meta["CLUSTER_ID"].string_value == "Kubernetes"
        types = by_type(config)
        assert list(types) == sorted(types) == sorted([CDS, EDS])
        assert types[CDS].config_status == csds_pb2.ERROR
        assert types[CDS].client_status == csds_pb2.CLIENT_NACKED
        assert types[CDS].error_state.details == "cluster rejected: boom"
        assert types[EDS].config_status == csds_pb2.SYNCED
        assert types[EDS].client_status == csds_pb2.CLIENT_ACKED
        assert types[EDS].version_info == eds.version_info
        assert types[EDS].last_updated.seconds > 0
        assert len(ads.server.connections()) == 1

        # An ACK of the debug response is not answered; a new request gets a fresh snapshot.
        await debug.sotw(typeurls.DEBUG_SYNCZ, version=response.version_info, nonce=response.nonce)
        await debug.expect_nothing()
        await debug.sotw(typeurls.DEBUG_SYNCZ)
        assert list(client_configs(await debug.recv())) == ["app.default"]
    finally:
        await debug.close()
        await proxy.close()


async def test_debug_streams_get_no_pushes_and_serve_config_dumps(ads: AdsEnv) -> None:
    proxy = AdsClient(ads.address)
    debug = AdsClient(ads.address, delta=True)
    try:
        await handshake(proxy)
        await debug.delta_request(
            typeurls.DEBUG_CONFIG_DUMP, subscribe=["app.default"], node_=debug_node()
        )
        dump = await debug.recv()
        sections = [r.resource for r in dump.resources]
        clusters = config_dump_shared_pb2.ClustersConfigDump()
        assert any(s.Unpack(clusters) for s in sections)
        names = set()
        for entry in clusters.dynamic_active_clusters:
            cluster = cluster_pb2.Cluster()
            entry.cluster.Unpack(cluster)
            names.add(cluster.name)
        assert set(SUBSET_CLUSTERS) <= names
        await debug.delta_request(typeurls.DEBUG_SYNCZ)
        syncz = await debug.recv()
        assert [r.name for r in syncz.resources] == ["app.default"]
        assert len(ads.server.connections()) == 1

        ads.apply(MESH.replace("10.0.0.2", "10.0.0.9"))
        push = await proxy.recv()
        assert push.type_url == EDS
        await debug.expect_nothing()
    finally:
        await debug.close()
        await proxy.close()


async def test_an_authenticated_caller_sees_only_its_namespace(ads: AdsEnv) -> None:
    """Istio's debug-endpoint rule: the system namespace sees every proxy, others their own."""
    mine, theirs = AdsClient(ads.address), AdsClient(ads.address)
    try:
        await mine.sotw(CDS)
        await theirs.sotw(CDS, node_=node("ratings.other", ip="127.0.9.2"))
        await mine.recv()
        await theirs.recv()
        request = discovery_pb2.DiscoveryRequest(type_url=typeurls.DEBUG_SYNCZ, node=debug_node())

        def seen(identity: Identity | None) -> list[str]:
            (payload,) = ads.server.debug_xds.session(identity).on_sotw_request(request)
            return sorted(client_configs(discovery_pb2.DiscoveryResponse.FromString(payload)))

        assert seen(None) == ["app.default", "ratings.other"]  # plaintext port
        assert seen(Identity("cluster.local", "istio-system", "istiod")) == [
            "app.default",
            "ratings.other",
        ]
        assert seen(Identity("cluster.local", "other", "ratings")) == ["ratings.other"]
    finally:
        await mine.close()
        await theirs.close()
