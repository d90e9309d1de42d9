"""The ADS server picks generators by node metadata: a `GENERATOR: grpc` stream is served
gRPC's resources, in gRPC's top-down order with explicit names, and weight changes reach it as
route pushes. (The e2e test `tests/e2e/test_proxyless_grpc.py` runs grpcio's real client.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import struct_pb2

from pkg.xds import typeurls
from tests.helpers.ads import AdsClient, AdsEnv, parse_all

CDS, EDS, LDS, RDS = typeurls.CLUSTER, typeurls.ENDPOINT, typeurls.LISTENER, typeurls.ROUTE
HOST = "echo.default.svc.cluster.local"
ROUTE_NAME = f"outbound|7070||{HOST}"
V1, V2 = f"outbound|7070|v1|{HOST}", f"outbound|7070|v2|{HOST}"

MESH = """
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  ports: [{name: grpc, port: 7070}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-v1, namespace: default}
spec: {address: 10.0.0.1, labels: {app: echo, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-v2, namespace: default}
spec: {address: 10.0.0.2, labels: {app: echo, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


def routing(v1: int, v2: int) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo]
  http:
  - route:
    - {{destination: {{host: echo, subset: v1}}, weight: {v1}}}
    - {{destination: {{host: echo, subset: v2}}, weight: {v2}}}
"""


def grpc_node(generator: str = "grpc") -> base_pb2.Node:
    metadata = struct_pb2.Struct()
    fields: dict[str, Any] = {"NAMESPACE": "default", "INSTANCE_IPS": "127.0.9.7"}
    if generator:
        fields["GENERATOR"] = generator
    metadata.update(fields)
    return base_pb2.Node(
        id="sidecar~127.0.9.7~grpc-client.default~default.svc.cluster.local", metadata=metadata
    )


def decode(response: Any, message: Any) -> dict[str, Any]:
    out = {}
    for res in response.resources:
        msg = message()
        res.Unpack(msg)
        out[msg.cluster_name if message is endpoint_pb2.ClusterLoadAssignment else msg.name] = msg
    return out


@pytest.fixture
async def ads() -> AsyncIterator[AdsEnv]:
    env = AdsEnv(parse_all(MESH + "---" + routing(80, 20)))
    await env.start()
    try:
        yield env
    finally:
        await env.stop()


async def request(client: AdsClient, type_url: str, names: list[str], last: Any = None) -> Any:
    """Ask (or ACK `last` with new names, as gRPC grows its subscriptions) and get the answer."""
    if last is None:
        await client.sotw(type_url, names, node_=grpc_node())
    else:
        await client.sotw(type_url, names, version=last.version_info, nonce=last.nonce)
    response = await client.recv()
    assert response.type_url == type_url
    return response


async def ack(client: AdsClient, response: Any, names: list[str]) -> None:
    await client.sotw(response.type_url, names, version=response.version_info, nonce=response.nonce)


async def test_grpc_client_flow_top_down_with_explicit_names(ads: AdsEnv) -> None:
    client = AdsClient(ads.address)
    try:
        lds = await request(client, LDS, ["echo:7070"])
        listeners = decode(lds, listener_pb2.Listener)
        assert list(listeners) == ["echo:7070"]
        assert listeners["echo:7070"].HasField("api_listener")
        await ack(client, lds, ["echo:7070"])
        rds = await request(client, RDS, [ROUTE_NAME])
        (route,) = decode(rds, route_pb2.RouteConfiguration).values()
        assert "echo:7070" in route.virtual_hosts[0].domains
        await ack(client, rds, [ROUTE_NAME])
        # CDS names grow one by one, the growth riding on the ACK (as grpcio does).
        cds = await request(client, CDS, [V1])
        assert list(decode(cds, cluster_pb2.Cluster)) == [V1]
        cds = await request(client, CDS, [V1, V2], last=cds)
        assert sorted(decode(cds, cluster_pb2.Cluster)) == [V1, V2]  # the full named set
        await ack(client, cds, [V1, V2])
        eds = await request(client, EDS, [V1, V2])
        assignments = decode(eds, endpoint_pb2.ClusterLoadAssignment)
        assert sorted(assignments) == [V1, V2]
        assert all(g.HasField("locality") for a in assignments.values() for g in a.endpoints)
        await ack(client, eds, [V1, V2])
        await client.expect_nothing()
        conn = ads.server.connections()[0]
        assert conn.proxy.is_proxyless_grpc
        assert all(w.nack is None and w.synced for w in conn.watches.values())

        # A weight change is a route push; listeners, clusters and endpoints are unchanged.
        ads.apply(routing(100, 0))
        push = await client.recv()
        assert push.type_url == RDS
        (route,) = decode(push, route_pb2.RouteConfiguration).values()
        action = route.virtual_hosts[0].routes[0].route
        sent_to = {action.cluster} | {w.name for w in action.weighted_clusters.clusters}
        assert sent_to - {""} == {V1}
        await ack(client, push, [ROUTE_NAME])
        await client.expect_nothing()
    finally:
        await client.close()


async def test_same_node_without_generator_is_served_envoy_listeners(ads: AdsEnv) -> None:
    client = AdsClient(ads.address)
    try:
        await client.sotw(LDS, [], node_=grpc_node(generator=""))
        listeners = decode(await client.recv(), listener_pb2.Listener)
        assert "virtualOutbound" in listeners
        assert not any(lst.HasField("api_listener") for lst in listeners.values())
        assert not ads.server.connections()[0].proxy.is_proxyless_grpc
    finally:
        await client.close()


async def test_unknown_generator_gets_the_default_generators(ads: AdsEnv) -> None:
    client = AdsClient(ads.address)
    try:
        await client.sotw(LDS, [], node_=grpc_node(generator="something-else"))
        listeners = decode(await client.recv(), listener_pb2.Listener)
        assert "virtualOutbound" in listeners
    finally:
        await client.close()
