"""The ADS server over real gRPC on loopback: what is sent, when, and what is not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from pkg.xds import typeurls
from tests.helpers.ads import AdsClient, AdsEnv, node, parse_all

CDS, EDS, LDS, RDS = typeurls.CLUSTER, typeurls.ENDPOINT, typeurls.LISTENER, typeurls.ROUTE

MESH = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""

SUBSET_CLUSTERS = [
    "outbound|9080|v1|reviews.default.svc.cluster.local",
    "outbound|9080|v2|reviews.default.svc.cluster.local",
    "outbound|9080||reviews.default.svc.cluster.local",
]


@pytest.fixture
async def ads() -> AsyncIterator[AdsEnv]:
    env = AdsEnv(parse_all(MESH))
    await env.start()
    try:
        yield env
    finally:
        await env.stop()


def names(response: object, kind: type) -> list[str]:
    out = []
    for res in response.resources:  # type: ignore[attr-defined]
        msg = kind()
        res.Unpack(msg)
        out.append(msg.cluster_name if kind is endpoint_pb2.ClusterLoadAssignment else msg.name)
    return sorted(out)


async def handshake(client: AdsClient) -> tuple[object, object]:
    """CDS then EDS for the EDS clusters, both ACKed (Envoy's order)."""
    await client.sotw(CDS)
    cds = await client.recv()
    await client.sotw(EDS, SUBSET_CLUSTERS)
    eds = await client.recv()
    await client.sotw(CDS, version=cds.version_info, nonce=cds.nonce)
    await client.sotw(EDS, SUBSET_CLUSTERS, version=eds.version_info, nonce=eds.nonce)
    await client.expect_nothing()
    return cds, eds


async def test_sotw_initial_responses_and_acks(ads: AdsEnv) -> None:
    client = AdsClient(ads.address)
    try:
        cds, eds = await handshake(client)
        clusters = names(cds, cluster_pb2.Cluster)
        for name in SUBSET_CLUSTERS:
            assert name in clusters
        assert {"BlackHoleCluster", "PassthroughCluster"} <= set(clusters)
        assert names(eds, endpoint_pb2.ClusterLoadAssignment) == sorted(SUBSET_CLUSTERS)
        conn = ads.server.connections()[0]
        assert conn.watches[CDS].synced and conn.watches[EDS].synced
    finally:
        await client.close()


async def test_endpoint_change_pushes_only_changed_load_assignments(ads: AdsEnv) -> None:
    client = AdsClient(ads.address)
    try:
        _, eds = await handshake(client)
        ads.apply(MESH.replace("10.0.0.2", "10.0.0.3"))
        push = await client.recv()
        assert push.type_url == EDS  # no CDS/LDS/RDS for an endpoint-only change
        # Only the load assignments that changed: the v2 subset and the whole service.
        assert names(push, endpoint_pb2.ClusterLoadAssignment) == [
            "outbound|9080|v2|reviews.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
        ]
        assert push.version_info != eds.version_info
        await client.sotw(EDS, SUBSET_CLUSTERS, version=push.version_info, nonce=push.nonce)
        await client.expect_nothing()
    finally:
        await client.close()


async def test_cluster_change_resends_its_load_assignment(ads: AdsEnv) -> None:
    client = AdsClient(ads.address)
    try:
        await handshake(client)
        ads.apply(
            MESH.replace(
                "  host: reviews\n",
                "  host: reviews\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n",
            )
        )
        cds = await client.recv()
        assert cds.type_url == CDS
        eds = await client.recv()
        assert eds.type_url == EDS
        # Every re-sent EDS cluster warms again and needs its assignment, unchanged or not.
        assert names(eds, endpoint_pb2.ClusterLoadAssignment) == sorted(SUBSET_CLUSTERS)
    finally:
        await client.close()


async def test_nack_is_recorded_and_not_answered(ads: AdsEnv) -> None:
    client = AdsClient(ads.address)
    try:
        await client.sotw(CDS)
        cds = await client.recv()
        await client.sotw(CDS, version="", nonce=cds.nonce, error="rejected by test")
        await client.expect_nothing()
        state = ads.server.connections()[0].watches[CDS]
        assert state.nack is not None and state.nack.message == "rejected by test"
    finally:
        await client.close()


async def test_up_to_date_sotw_reconnect_is_sent_nothing(ads: AdsEnv) -> None:
    first = AdsClient(ads.address)
    cds, eds = await handshake(first)
    await first.close()
    again = AdsClient(ads.address)
    try:
        await again.sotw(CDS, version=cds.version_info)
        await again.sotw(EDS, SUBSET_CLUSTERS, version=eds.version_info)
        await again.expect_nothing()
        # And a change afterwards still arrives.
        ads.apply(MESH.replace("10.0.0.2", "10.0.0.9"))
        push = await again.recv()
        assert push.type_url == EDS
    finally:
        await again.close()


async def test_delta_reconnect_with_current_versions_is_sent_nothing(ads: AdsEnv) -> None:
    first = AdsClient(ads.address, delta=True)
    await first.delta_request(CDS)
    cds = await first.recv()
    versions = {r.name: r.version for r in cds.resources}
    assert set(SUBSET_CLUSTERS) <= set(versions)
    await first.delta_request(CDS, nonce=cds.nonce)
    await first.close()
    again = AdsClient(ads.address, delta=True)
    try:
        await again.delta_request(CDS, initial=versions)
        await again.expect_nothing()
        stale = dict(versions)
        stale[SUBSET_CLUSTERS[0]] = "old"
        del stale[SUBSET_CLUSTERS[1]]
        stale["outbound|1|x|gone.example"] = "v"
        third = AdsClient(ads.address, delta=True)
        await third.delta_request(CDS, initial=stale)
        resp = await third.recv()
        assert sorted(r.name for r in resp.resources) == sorted(SUBSET_CLUSTERS[:2])
        assert list(resp.removed_resources) == ["outbound|1|x|gone.example"]
        await third.close()
    finally:
        await again.close()


async def test_invalid_node_is_refused(ads: AdsEnv) -> None:
    client = AdsClient(ads.address)
    bad = node()
    bad.id = "not-a-node-id"
    try:
        await client.sotw(CDS, node_=bad)
        with pytest.raises(Exception, match="missing parts"):
            await client.recv()
    finally:
        await client.close()


async def test_delta_first_request_with_nothing_to_send_is_answered_empty() -> None:
    env = AdsEnv([])
    await env.start()
    client = AdsClient(env.address, delta=True)
    try:
        # A gateway with no Gateway resources has no listeners at all.
        await client.delta_request(LDS, node_=node("gw.default", node_type="router"))
        response = await client.recv()
        assert response.type_url == LDS
        assert not response.resources and not response.removed_resources
        await client.delta_request(LDS, nonce=response.nonce)
        await client.expect_nothing()
    finally:
        await client.close()
        await env.stop()


RATINGS = """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.1.1}]
"""


async def test_incremental_eds_version_matches_a_full_generation() -> None:
    """After an endpoint-only push that regenerated one service's assignments, the SotW
    version must equal what a full generation gives: a reconnect with it gets nothing."""
    ads = AdsEnv(parse_all(MESH + RATINGS))
    await ads.start()
    names_ = [*SUBSET_CLUSTERS, "outbound|9080||ratings.default.svc.cluster.local"]
    client = AdsClient(ads.address)
    try:
        await client.sotw(CDS)
        cds = await client.recv()
        await client.sotw(EDS, names_)
        eds = await client.recv()
        await client.sotw(CDS, version=cds.version_info, nonce=cds.nonce)
        await client.sotw(EDS, names_, version=eds.version_info, nonce=eds.nonce)
        await client.expect_nothing()
        ads.apply(MESH.replace("10.0.0.1", "10.0.0.7"))
        push = await client.recv()
        assert names(push, endpoint_pb2.ClusterLoadAssignment) == [
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
        ]
        await client.sotw(EDS, names_, version=push.version_info, nonce=push.nonce)
        await client.close()
        again = AdsClient(ads.address)
        await again.sotw(CDS, version=cds.version_info)
        await again.sotw(EDS, names_, version=push.version_info)
        await again.expect_nothing()
        await again.close()
    finally:
        await client.close()
        await ads.stop()
