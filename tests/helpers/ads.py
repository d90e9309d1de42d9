"""An in-process DiscoveryServer on a loopback port and a scripted ADS client.

`AdsEnv` wires a ConfigStore → Environment → DiscoveryServer → grpc.aio server, with a short
debounce, so tests can change config and watch responses. `AdsClient` speaks SotW or Delta
like Envoy does, one message at a time, so a test can assert exactly what was (not) sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import grpc
import yaml
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import struct_pb2
from google.rpc import status_pb2

from pilot.bootstrap.environment import Environment
from pilot.config.store import ConfigStore
from pilot.xds.debounce import DebounceSettings
from pilot.xds.server import DiscoveryServer, XdsSettings
from pkg.config.mesh import MeshConfig
from pkg.config.model import Config
from pkg.config.schema import parse_object


def parse_all(text: str) -> list[Config[Any]]:
    out = []
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        result = parse_object(doc)
        assert result.config is not None, result.errors
        out.append(result.config)
    return out


class AdsEnv:
    def __init__(self, configs: Iterable[Config[Any]] = ()) -> None:
        self.store = ConfigStore()
        self.store.replace_all(configs)
        self.env = Environment(self.store, MeshConfig(), "cluster.local")
        settings = XdsSettings(debounce=DebounceSettings(debounce_after=0.01, debounce_max=1))
        self.server = DiscoveryServer(self.env, settings)
        self.grpc: grpc.aio.Server | None = None
        self.address = ""

    async def start(self) -> None:
        self.server.initialize()
        await self.server.start()
        self.env.set_push_handler(self.server.config_update)
        self.grpc = grpc.aio.server()
        self.grpc.add_generic_rpc_handlers((self.server.grpc_handler(),))
        port = self.grpc.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{port}"
        await self.grpc.start()

    async def stop(self) -> None:
        if self.grpc is not None:
            await self.grpc.stop(grace=0)
        await self.server.stop()

    def apply(self, text: str) -> None:
        for config in parse_all(text):
            self.store.upsert(config)


def node(
    name: str = "app.default",
    ip: str = "127.0.9.1",
    labels: dict[str, str] | None = None,
    node_type: str = "sidecar",
    mode: str = "REDIRECT",
    service_account: str = "",
) -> base_pb2.Node:
    namespace = name.split(".", 1)[1]
    metadata = struct_pb2.Struct()
    fields: dict[str, Any] = {
        "NAMESPACE": namespace,
        "LABELS": labels or {"app": name.split(".")[0]},
        "INTERCEPTION_MODE": mode,
        "INSTANCE_IPS": ip,
    }
    if service_account:
        fields["SERVICE_ACCOUNT"] = service_account
    metadata.update(fields)
    return base_pb2.Node(
        id=f"{node_type}~{ip}~{name}~{namespace}.svc.cluster.local", metadata=metadata
    )


class AdsClient:
    """One ADS stream. `send_*` writes a request; `recv()` waits (bounded) for a response."""

    def __init__(
        self,
        address: str,
        delta: bool = False,
        *,
        channel: grpc.aio.Channel | None = None,
        metadata: Iterable[tuple[str, str]] = (),
    ) -> None:
        """`channel`: e.g. a TLS channel to the secure port (default: plaintext to `address`);
        `metadata`: the stream's initial metadata (e.g. `authorization: Bearer <token>`)."""
        self.channel = channel or grpc.aio.insecure_channel(address)
        self.stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        self.delta = delta
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        method = (
            self.stub.DeltaAggregatedResources if delta else self.stub.StreamAggregatedResources
        )
        self.call = method(metadata=tuple(metadata) or None)
        self.reader = asyncio.ensure_future(self._read())
        self.sent_node = False

    async def _read(self) -> None:
        try:
            async for response in self.call:
                self.queue.put_nowait(response)
        except grpc.aio.AioRpcError as e:
            self.queue.put_nowait(e)

    async def sotw(
        self,
        type_url: str,
        names: Iterable[str] = (),
        version: str = "",
        nonce: str = "",
        node_: base_pb2.Node | None = None,
        error: str = "",
    ) -> None:
        request = discovery_pb2.DiscoveryRequest(
            type_url=type_url,
            resource_names=list(names),
            version_info=version,
            response_nonce=nonce,
        )
        if not self.sent_node:
            request.node.CopyFrom(node_ or node())
            self.sent_node = True
        if error:
            request.error_detail.CopyFrom(status_pb2.Status(code=13, message=error))
        await self.call.write(request)

    async def delta_request(
        self,
        type_url: str,
        subscribe: Iterable[str] = (),
        unsubscribe: Iterable[str] = (),
        initial: dict[str, str] | None = None,
        nonce: str = "",
        node_: base_pb2.Node | None = None,
        error: str = "",
    ) -> None:
        request = discovery_pb2.DeltaDiscoveryRequest(
            type_url=type_url,
            resource_names_subscribe=list(subscribe),
            resource_names_unsubscribe=list(unsubscribe),
            initial_resource_versions=initial or {},
            response_nonce=nonce,
        )
        if not self.sent_node:
            request.node.CopyFrom(node_ or node())
            self.sent_node = True
        if error:
            request.error_detail.CopyFrom(status_pb2.Status(code=13, message=error))
        await self.call.write(request)

    async def recv(self, timeout: float = 5.0) -> Any:
        item = await asyncio.wait_for(self.queue.get(), timeout)
        if isinstance(item, Exception):
            raise item
        return item

    async def expect_nothing(self, timeout: float = 0.3) -> None:
        """Assert no response arrives within `timeout` (a bounded negative check)."""
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected response: {item}")

    async def close(self) -> None:
        self.call.cancel()
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)
        await self.channel.close()
