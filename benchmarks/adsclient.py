"""Simulated ADS clients (grpc.aio) that behave like Envoy 1.40 on the wire, for load tests.

Each client opens one ADS stream on its own HTTP/2 connection and follows Envoy's start-up
sequence (../shared/reference/envoy-xds-field-notes.md):

    CDS(wildcard) → EDS(names of the EDS clusters) → ACK CDS → LDS(wildcard) → ACK EDS
    → RDS(route names of the listeners' HTTP connection managers) → ACK LDS → ACK RDS

SotW: every response is ACKed with its nonce and version; subscription changes are sent before
the ACK, as Envoy does (new EDS names after a CDS push, new route names after an LDS push).
Delta: the same order with subscribe/unsubscribe lists; ACK = the response nonce alone.
The node goes only in the first request of the stream.

The client parses only what decides its next subscription (`benchmarks.adsparse`).

Per response it records: receive time (time.monotonic(), CLOCK_MONOTONIC, comparable across
processes), type, nonce, version, resource count, removed count, bytes on the wire (the
serialized DiscoveryResponse), and when the ACK was written. The clients run in worker
processes (`benchmarks.adspool`); each stops at an absolute deadline or when told to.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

from benchmarks.adsparse import eds_service_name, first_string_field, listener_route_names

_PREFIX = "type.googleapis.com/"
CDS = _PREFIX + "envoy.config.cluster.v3.Cluster"
EDS = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = _PREFIX + "envoy.config.listener.v3.Listener"
RDS = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
SHORT = {CDS: "CDS", EDS: "EDS", LDS: "LDS", RDS: "RDS"}

_SERVICE = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
SOTW_METHOD = _SERVICE + "StreamAggregatedResources"
DELTA_METHOD = _SERVICE + "DeltaAggregatedResources"


@dataclass(frozen=True, slots=True)
class ClientSpec:
    index: int
    ip: str
    name: str
    namespace: str = "default"
    app: str = "bench"  # the `app` label: proxies with the same labels share cached output

    @property
    def node_id(self) -> str:
        return f"sidecar~{self.ip}~{self.name}.{self.namespace}~{self.namespace}.svc.cluster.local"


def client_specs(count: int, label_groups: int = 1, namespace: str = "default") -> list[ClientSpec]:
    """`count` proxies with distinct node ids and IPs 127.100.x.y (metadata only), spread over
    `label_groups` distinct `app` labels (1: replicas of one workload; `count`: all distinct)."""
    groups = max(1, label_groups)
    return [
        ClientSpec(
            i, f"127.100.{i // 250}.{i % 250 + 1}", f"bench-{i}", namespace, f"bench-{i % groups}"
        )
        for i in range(count)
    ]


@dataclass(frozen=True, slots=True)
class Record:
    """One response received by one client."""

    client: int
    type: str  # CDS / EDS / LDS / RDS / other type URL
    nonce: str
    version: str
    resources: int
    removed: int
    bytes: int
    received: float  # time.monotonic() when the response was read
    acked: float  # time.monotonic() when its ACK was written


@dataclass(frozen=True, slots=True)
class ClientEvent:
    client: int
    # "connected" (first request written), "reconnected" (a new stream's first requests
    # written), "synced", "nack", "error", "closed"
    kind: str
    at: float
    detail: str = ""


def node_for(spec: ClientSpec) -> base_pb2.Node:
    node = base_pb2.Node(id=spec.node_id, cluster=f"{spec.name}.{spec.namespace}")
    node.user_agent_name = "envoy"
    node.user_agent_build_version.version.major_number = 1
    node.user_agent_build_version.version.minor_number = 40
    meta: dict[str, Any] = {
        "NAMESPACE": spec.namespace,
        "LABELS": {"app": spec.app},
        "INTERCEPTION_MODE": "REDIRECT",
        "INSTANCE_IPS": spec.ip,
        "SERVICE_ACCOUNT": "default",
        "WORKLOAD_NAME": spec.name,
        "CLUSTER_ID": "Kubernetes",
        "ISTIO_VERSION": "1.28.0",
    }
    struct = struct_pb2.Struct()
    struct.update(meta)
    node.metadata.CopyFrom(struct)
    return node


# ---- one client --------------------------------------------------------------------------


def _serialize(request: Any) -> bytes:
    """Requests are messages, or bytes already encoded (SotW ACKs)."""
    return request if isinstance(request, bytes) else bytes(request.SerializeToString())


def _string_field(number: int, value: str) -> bytes:
    if not value:
        return b""
    data = value.encode()
    out = bytearray([number << 3 | 2])
    n = len(data)
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + data


@dataclass
class _TypeState:
    names: set[str] = field(default_factory=set)  # subscription (explicit types)
    requested: bool = False
    version: str = ""  # SotW: last accepted version_info
    nonce: str = ""
    have: dict[str, str] = field(default_factory=dict)  # name → version (or "" in SotW)
    responses: int = 0
    # SotW: `resource_names` (sorted) already encoded, reused by every ACK until they change.
    names_field: bytes | None = None


Emit = Callable[[Record | ClientEvent], None]


class AdsClient:
    """One simulated Envoy: one channel (its own TCP connection), one ADS stream."""

    def __init__(self, spec: ClientSpec, target: str, delta: bool, emit: Emit) -> None:
        self.spec = spec
        self.target = target
        self.delta = delta
        self.emit = emit
        self.types: dict[str, _TypeState] = {t: _TypeState() for t in (CDS, EDS, LDS, RDS)}
        self.cds: dict[str, bytes] = {}  # delta: cluster name → bytes (for the EDS name set)
        self.lds: dict[str, bytes] = {}
        self.synced = False
        self._sent_node = False
        self._call: Any = None

    # -- requests ------------------------------------------------------------------------

    async def _write(self, request: Any) -> None:
        await self._call.write(request)

    def _node_once(self, request: Any) -> None:
        if not self._sent_node:
            request.node.CopyFrom(node_for(self.spec))
            self._sent_node = True

    async def _sotw_request(self, type_url: str, names: Iterable[str]) -> None:
        st = self.types[type_url]
        req = discovery_pb2.DiscoveryRequest(
            type_url=type_url,
            resource_names=sorted(names),
            version_info=st.version,
            response_nonce=st.nonce,
        )
        self._node_once(req)
        st.requested = True
        await self._write(req)

    async def _delta_subscribe(
        self, type_url: str, subscribe: Iterable[str], unsubscribe: Iterable[str] = ()
    ) -> None:
        req = discovery_pb2.DeltaDiscoveryRequest(
            type_url=type_url,
            resource_names_subscribe=sorted(subscribe),
            resource_names_unsubscribe=sorted(unsubscribe),
        )
        self._node_once(req)
        self.types[type_url].requested = True
        await self._write(req)

    async def _update_subscription(self, type_url: str, wanted: set[str]) -> None:
        """Envoy's follow-up request when a CDS/LDS response changes the EDS/RDS names."""
        st = self.types[type_url]
        if wanted == st.names and st.requested:
            return
        if not wanted and not st.requested:
            return
        added, removed = wanted - st.names, st.names - wanted
        st.names = set(wanted)
        st.names_field = None
        for name in removed:
            st.have.pop(name, None)
        if self.delta:
            await self._delta_subscribe(type_url, added, removed)
        else:
            await self._sotw_request(type_url, wanted)

    # -- the stream ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, reconnect: asyncio.Event | None = None) -> None:
        """Run until `stop`. Each time `reconnect` is set (and cleared here), close the stream
        and its connection and come back on a new one as Envoy does after losing istiod:
        every subscribed type re-requested with what was last accepted (SotW: version and
        names, no nonce; Delta: initial_resource_versions)."""
        resume = False
        while await self._session(stop, reconnect, resume):
            resume = True

    async def _session(
        self, stop: asyncio.Event, reconnect: asyncio.Event | None, resume: bool
    ) -> bool:
        """One stream on its own channel; True when it ended for a reconnect."""
        options = [
            ("grpc.use_local_subchannel_pool", 1),  # a connection of its own, like an Envoy
            ("grpc.max_receive_message_length", -1),
            ("grpc.primary_user_agent", "envoy/1.40 (bench)"),
        ]
        async with grpc.aio.insecure_channel(self.target, options=options) as channel:
            method = DELTA_METHOD if self.delta else SOTW_METHOD
            multicallable: Any = channel.stream_stream(
                method,
                request_serializer=_serialize,
                response_deserializer=None,  # raw bytes: exact size, parsed here
            )
            self._call = multicallable()
            self._sent_node = False
            if resume:
                await self._resume()
                self.emit(ClientEvent(self.spec.index, "reconnected", time.monotonic()))
            else:
                if self.delta:
                    await self._delta_subscribe(CDS, ())
                else:
                    await self._sotw_request(CDS, ())
                self.emit(ClientEvent(self.spec.index, "connected", time.monotonic()))
            reader = asyncio.ensure_future(self._read_loop())
            waiters = {asyncio.ensure_future(stop.wait())}
            if reconnect is not None:
                waiters.add(asyncio.ensure_future(reconnect.wait()))
            again = False
            try:
                await asyncio.wait({reader, *waiters}, return_when=asyncio.FIRST_COMPLETED)
                if reconnect is not None and reconnect.is_set() and not stop.is_set():
                    reconnect.clear()
                    again = True
            finally:
                for waiter in waiters:
                    waiter.cancel()
                if not reader.done():
                    self._call.cancel()
                    reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                    await reader
                if not again:
                    self.emit(ClientEvent(self.spec.index, "closed", time.monotonic()))
            return again

    async def _resume(self) -> None:
        """The first requests of a new stream for a client that was synced: every type it
        had requested, in Envoy's order, carrying what it last accepted."""
        for type_url in (CDS, EDS, LDS, RDS):
            st = self.types[type_url]
            if not st.requested:
                continue
            if self.delta:
                req: Any = discovery_pb2.DeltaDiscoveryRequest(
                    type_url=type_url,
                    resource_names_subscribe=sorted(st.names),
                    initial_resource_versions=st.have,
                )
                self._node_once(req)
                await self._write(req)
            else:
                st.nonce = ""  # a new stream: no nonce, the last accepted version
                await self._sotw_request(type_url, st.names)

    async def _read_loop(self) -> None:
        try:
            while True:
                raw = await self._call.read()
                if raw is grpc.aio.EOF:
                    self.emit(ClientEvent(self.spec.index, "error", time.monotonic(), "EOF"))
                    return
                received = time.monotonic()
                if self.delta:
                    await self._on_delta(raw, received)
                else:
                    await self._on_sotw(raw, received)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.emit(
                    ClientEvent(
                        self.spec.index, "error", time.monotonic(), f"{e.code()}: {e.details()}"
                    )
                )

    def _check_synced(self) -> None:
        if self.synced:
            return
        t = self.types
        if not (t[CDS].responses and t[LDS].responses):
            return
        for type_url in (EDS, RDS):
            st = t[type_url]
            if st.names and not st.names <= st.have.keys():
                return
        self.synced = True
        self.emit(ClientEvent(self.spec.index, "synced", time.monotonic()))

    async def _on_sotw(self, raw: bytes, received: float) -> None:
        resp = discovery_pb2.DiscoveryResponse.FromString(raw)
        type_url = resp.type_url
        st = self.types.setdefault(type_url, _TypeState())
        st.responses += 1
        if type_url == CDS:
            wanted = {n for n in (eds_service_name(a.value) for a in resp.resources) if n}
            await self._update_subscription(EDS, wanted)
            if not wanted and not self.types[LDS].requested:
                await self._sotw_request(LDS, ())
        elif type_url == EDS:
            for any_ in resp.resources:
                # ClusterLoadAssignment.cluster_name is field 1: read it without a full parse.
                st.have[first_string_field(any_.value)] = resp.version_info
            if (
                not self.types[LDS].requested
                and self.types[EDS].names <= self.types[EDS].have.keys()
            ):
                await self._sotw_request(LDS, ())
        elif type_url == LDS:
            wanted = set()
            for any_ in resp.resources:
                wanted.update(listener_route_names(any_.value))
            await self._update_subscription(RDS, wanted)
        elif type_url == RDS:
            for any_ in resp.resources:
                st.have[first_string_field(any_.value)] = resp.version_info
        # ACK: same nonce and version, current names.
        st.version, st.nonce = resp.version_info, resp.nonce
        if st.names_field is None:
            st.names_field = discovery_pb2.DiscoveryRequest(
                resource_names=sorted(st.names)
            ).SerializeToString()
        # The ACK as bytes: the encoded names reused, three short fields added (field order
        # does not matter to a protobuf parser). Real Envoys do not spend this machine's CPU;
        # the simulated ones should spend as little of it as they can.
        await self._write(
            st.names_field
            + _string_field(1, resp.version_info)
            + _string_field(4, type_url)
            + _string_field(5, resp.nonce)
        )
        self.emit(
            Record(
                self.spec.index,
                SHORT.get(type_url, type_url),
                resp.nonce,
                resp.version_info,
                len(resp.resources),
                0,
                len(raw),
                received,
                time.monotonic(),
            )
        )
        self._check_synced()

    async def _on_delta(self, raw: bytes, received: float) -> None:
        resp = discovery_pb2.DeltaDiscoveryResponse.FromString(raw)
        type_url = resp.type_url
        st = self.types.setdefault(type_url, _TypeState())
        st.responses += 1
        for res in resp.resources:
            st.have[res.name] = res.version
        for name in resp.removed_resources:
            st.have.pop(name, None)
        if type_url == CDS:
            for res in resp.resources:
                self.cds[res.name] = res.resource.value
            for name in resp.removed_resources:
                self.cds.pop(name, None)
            wanted = {n for n in (eds_service_name(v) for v in self.cds.values()) if n}
            await self._update_subscription(EDS, wanted)
            if not wanted and not self.types[LDS].requested:
                await self._delta_subscribe(LDS, ())
        elif type_url == EDS:
            if (
                not self.types[LDS].requested
                and self.types[EDS].names <= self.types[EDS].have.keys()
            ):
                await self._delta_subscribe(LDS, ())
        elif type_url == LDS:
            for res in resp.resources:
                self.lds[res.name] = res.resource.value
            for name in resp.removed_resources:
                self.lds.pop(name, None)
            wanted = set()
            for value in self.lds.values():
                wanted.update(listener_route_names(value))
            await self._update_subscription(RDS, wanted)
        st.nonce = resp.nonce
        await self._write(
            discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, response_nonce=resp.nonce)
        )
        self.emit(
            Record(
                self.spec.index,
                SHORT.get(type_url, type_url),
                resp.nonce,
                resp.system_version_info,
                len(resp.resources),
                len(resp.removed_resources),
                len(raw),
                received,
                time.monotonic(),
            )
        )
        self._check_synced()
