"""A simulated Envoy on one SotW ADS stream: it subscribes to CDS and LDS (wildcard), follows
them to the EDS service names and route configurations they name (as Envoy does), ACKs every
response and keeps the latest resources of each type, as serialized Any bytes.

Follow-up subscriptions are written before the ACK of the response that caused them, so once
istiod has an ACK for everything it sent, the answers to them have been sent too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from google.protobuf import any_pb2, json_format

from pkg.xds import typeurls
from tests.helpers.ads import AdsClient

SHORT = {
    typeurls.CLUSTER: "CDS",
    typeurls.ENDPOINT: "EDS",
    typeurls.LISTENER: "LDS",
    typeurls.ROUTE: "RDS",
}


class Follower:
    def __init__(self, address: str, node: base_pb2.Node) -> None:
        self.client = AdsClient(address)
        self.node = node
        self.state: dict[str, dict[str, bytes]] = {short: {} for short in SHORT.values()}
        self.received = 0
        self.pending = 0  # responses read but not yet handled
        self._subscribed: dict[str, tuple[str, ...]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.sotw(typeurls.CLUSTER, node_=self.node)
        await self.client.sotw(typeurls.LISTENER)
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            response = await self.client.recv(timeout=3600)
            self.pending += 1
            try:
                await self._handle(response)
            finally:
                self.pending -= 1
                self.received += 1

    async def _handle(self, response: Any) -> None:
        type_url = response.type_url
        short = SHORT[type_url]
        received = {self._name(type_url, r): r.SerializeToString() for r in response.resources}
        if type_url in (typeurls.CLUSTER, typeurls.LISTENER):
            self.state[short] = received  # wildcard types: the response is the whole set
        else:
            self.state[short].update(received)  # by name: others are kept, as Envoy keeps them
        if type_url == typeurls.CLUSTER:
            await self._follow(typeurls.ENDPOINT, self._eds_names())
        elif type_url == typeurls.LISTENER:
            await self._follow(typeurls.ROUTE, self._rds_names())
        names = self._subscribed.get(type_url, ())
        await self.client.sotw(type_url, names, version=response.version_info, nonce=response.nonce)

    async def _follow(self, type_url: str, names: tuple[str, ...]) -> None:
        if names == self._subscribed.get(type_url, ()):
            return  # (never subscribes to no names: that would be a wildcard request)
        self._subscribed[type_url] = names
        state = self.state[SHORT[type_url]]
        self.state[SHORT[type_url]] = {n: v for n, v in state.items() if n in names}
        await self.client.sotw(type_url, names)

    @staticmethod
    def _name(type_url: str, resource: Any) -> str:
        cls: Any = {
            typeurls.CLUSTER: cluster_pb2.Cluster,
            typeurls.LISTENER: listener_pb2.Listener,
        }.get(type_url)
        if cls is not None:
            message = cls()
            resource.Unpack(message)
            return str(message.name)
        data = json_format.MessageToDict(resource)
        return str(data.get("clusterName") or data.get("name"))

    def _eds_names(self) -> tuple[str, ...]:
        names = set()
        for raw in self.state["CDS"].values():
            cluster = _unpack_any(raw, cluster_pb2.Cluster)
            if cluster.type == cluster_pb2.Cluster.EDS:
                names.add(cluster.eds_cluster_config.service_name or cluster.name)
        return tuple(sorted(names))

    def _rds_names(self) -> tuple[str, ...]:
        names: set[str] = set()
        for raw in self.state["LDS"].values():
            listener = json_format.MessageToDict(_unpack_any(raw, listener_pb2.Listener))
            names.update(_route_names(listener))
        return tuple(sorted(names))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.close()


def _unpack_any(raw: bytes, cls: Any) -> Any:
    message = cls()
    any_pb2.Any.FromString(raw).Unpack(message)
    return message


def _route_names(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            rds = item.get("rds")
            if isinstance(rds, dict) and isinstance(rds.get("routeConfigName"), str):
                found.add(rds["routeConfigName"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
