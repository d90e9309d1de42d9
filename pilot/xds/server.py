"""DiscoveryServer: the ADS service (SotW and Delta) over grpc.aio, and the push pipeline.

config change ─▶ Debouncer ─▶ _push: new PushContext (or endpoints only) ─▶ PushQueue
    ─▶ workers (PILOT_PUSH_THROTTLE) ─▶ each stream's own task writes its responses.

Each stream has one task that handles its requests and its pushes in order, so a stream's state
is only ever touched by that task and a slow proxy only slows itself. Responses are pre-built
bytes (see wire.py); the gRPC method handlers do no serialization of their own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import json_format

from pilot.model.endpoint import EndpointIndex
from pilot.model.proxy import InvalidNodeError, Proxy, parse_node
from pilot.model.push_context import PushContext, PushInputs
from pilot.model.push_request import PushRequest, TriggerReason
from pilot.xds import monitoring
from pilot.xds.auth import Authenticate, IdentityMismatchError, check_connection_identity
from pilot.xds.connection import Connection
from pilot.xds.debounce import Debouncer, DebounceSettings
from pilot.xds.debug_xds import DebugSession, DebugXds
from pilot.xds.generators import default_generators, generators_for
from pilot.xds.generators.base import Generator
from pilot.xds.generators.verify import verifying
from pilot.xds.observer import XdsEvents
from pilot.xds.push_log import PushLog, PushReach
from pilot.xds.push_queue import PushQueue
from pkg.aio import cancel_and_wait, guarded_task
from pkg.errors import AuthenticationError
from pkg.grpcpeer import peer_uris, request_metadata

log = logging.getLogger(__name__)

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
_EOF = object()
_PUSH = object()
_SHUTDOWN = object()
# The status every ADS stream ends with when istiod stops (Envoy reconnects, with backoff).
SHUTDOWN_MESSAGE = "istiod is shutting down"


class PushInputsSource(Protocol):
    """Where the server gets its snapshot inputs (the bootstrap's Environment)."""

    def push_inputs(self) -> PushInputs: ...

    def endpoint_index(self) -> EndpointIndex: ...


@dataclass(frozen=True, slots=True)
class XdsSettings:
    debounce: DebounceSettings = field(default_factory=DebounceSettings)
    push_throttle: int = 25
    # How long a push worker waits for one stream to take its push before moving on.
    push_send_timeout: float = 10.0
    # PILOT_XDS_SEND_TIMEOUT: a stream whose proxy has not taken one response within this is
    # dropped (a proxy that stopped reading); 0 = never. Its connection then closes at the
    # maximum connection age (--keepalive-max-server-connection-age).
    send_timeout: float = 30.0
    # UNSAFE_PILOT_XDS_CACHE_VERIFY: recompute every answer from scratch and compare (tests).
    verify_cache: bool = False


@dataclass
class _Stream:
    connection: Connection
    inbox: asyncio.Queue[object]
    pending: PushRequest | None = None
    # The pushes `pending` carries (pilot/xds/push_log.py), to report the proxy's outcome to.
    covering: list[PushReach] = field(default_factory=list)
    push_done: asyncio.Event = field(default_factory=asyncio.Event)


class DiscoveryServer:
    def __init__(
        self,
        source: PushInputsSource,
        settings: XdsSettings | None = None,
        generators: Mapping[str, Generator] | None = None,
    ) -> None:
        self.settings = settings or XdsSettings()
        self.generators: Mapping[str, Generator] = generators or default_generators()
        self._source = source
        self._push_context: PushContext | None = None
        self._streams: dict[str, _Stream] = {}
        self._queue: PushQueue[str] = PushQueue()
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._debouncer: Debouncer | None = None
        # Sends, ACKs, NACKs, connects and disconnects, for observers (pilot/xds/observer.py).
        self.events = XdsEvents()
        # One log line per push and per completed push, and the push and proxy timings.
        self._push_log = PushLog(log)
        # istioctl's debug streams (istio.io/debug/syncz ...): answered, never registered.
        self.debug_xds = DebugXds(self.connections, lambda: self.push_context)

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._push_context is not None

    @property
    def source(self) -> PushInputsSource:
        """Where snapshots come from (read-only use: `istioctl x plan` copies its inputs)."""
        return self._source

    @property
    def push_context(self) -> PushContext:
        if self._push_context is None:
            raise RuntimeError("no PushContext yet")
        return self._push_context

    def initialize(self) -> PushContext:
        """Build the first snapshot (config loaded): streams are served from here on."""
        self._push_context = PushContext.build(self._source.push_inputs())
        return self._push_context

    async def start(self) -> None:
        self._debouncer = Debouncer(self.settings.debounce, self._push)
        self._tasks.append(guarded_task(self._debouncer.run(), name="xds-debounce"))
        for i in range(max(1, self.settings.push_throttle)):
            self._tasks.append(guarded_task(self._push_worker(), name=f"xds-push-{i}"))

    async def stop(self) -> None:
        self._queue.close()
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        for stream in list(self._streams.values()):
            stream.inbox.put_nowait(_SHUTDOWN)

    # ---- change intake -----------------------------------------------------------------

    def config_update(self, request: PushRequest) -> None:
        if self._debouncer is None:
            raise RuntimeError("DiscoveryServer.start() was not called")
        monitoring.record_inbound(request)
        self._debouncer.submit(request)

    def push_all(self, reason: TriggerReason = TriggerReason.DEBUG) -> int:
        """Force a full push to every connected proxy (debug `?push=true`)."""
        request = PushRequest.of((), reason, start=time.monotonic(), forced=True)
        if self._push_context is not None:
            request = request.with_push(self._push_context)
            self._push_log.started(request, self._push_context, list(self._streams), 0.0, False)
        for conn_id in self._streams:
            self._queue.enqueue(conn_id, request)
        return len(self._streams)

    async def _push(self, request: PushRequest) -> None:
        started = time.monotonic()
        rebuilt = False
        if request.credentials_only and self._push_context is not None:
            push = self._push_context  # SDS alone regenerates; nothing else changed
        elif request.endpoints_only and self._push_context is not None:
            push = self._push_context.with_endpoints(self._source.endpoint_index())
        else:
            push = PushContext.build(self._source.push_inputs())
            rebuilt = True
        built = time.monotonic() - started
        self._push_context = push
        request = request.with_push(push)
        conn_ids = list(self._streams)
        self._push_log.started(request, push, conn_ids, built, rebuilt)  # the push's log line
        for conn_id in conn_ids:
            self._queue.enqueue(conn_id, request)
        # Let streams run between batches of CPU-bound work.
        await asyncio.sleep(0)

    async def _push_worker(self) -> None:
        while True:
            item = await self._queue.dequeue()
            if item is None:
                return
            conn_id, request = item
            covered = self._push_log.dequeued(conn_id, request)
            stream = self._streams.get(conn_id)
            if stream is None:
                self._queue.remove(conn_id)
                self._push_log.forget(conn_id, covered)
                continue
            stream.push_done.clear()
            # A push the stream has not taken yet (a previous wait timed out) merges with this
            # one: an incremental EDS push's changes are never dropped.
            pending = stream.pending
            stream.pending = request if pending is None else pending.merge(request)
            stream.covering.extend(covered)
            stream.inbox.put_nowait(_PUSH)
            try:
                # asyncio.timeout, not wait_for: no extra task per proxy per push.
                async with asyncio.timeout(self.settings.push_send_timeout):
                    await stream.push_done.wait()
            except TimeoutError:
                monitoring.WRITE_TIMEOUT.inc()
                log.warning("push to %s is slow; moving on", conn_id)
            finally:
                self._queue.mark_done(conn_id)

    # ---- introspection -----------------------------------------------------------------

    def connections(self) -> list[Connection]:
        return [s.connection for s in self._streams.values()]

    # ---- gRPC ------------------------------------------------------------------------------

    def grpc_handler(self, authenticate: Authenticate | None = None) -> grpc.GenericRpcHandler:
        """The ADS service. With `authenticate` (the secure port) every stream must prove an
        identity matching its node before it is served; without, streams are anonymous."""

        async def sotw(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, bytes]
        ) -> None:
            await self._stream(requests, context, False, authenticate)

        async def delta(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, bytes]
        ) -> None:
            await self._stream(requests, context, True, authenticate)

        return grpc.method_handlers_generic_handler(
            ADS_SERVICE,
            {
                "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    sotw,
                    request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                    response_serializer=None,
                ),
                "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    delta,
                    request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                    response_serializer=None,
                ),
            },
        )

    async def _read(self, requests: AsyncIterator[Any], inbox: asyncio.Queue[object]) -> None:
        try:
            async for request in requests:
                inbox.put_nowait(request)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the client went away or sent garbage
            log.debug("ADS stream read ended: %s", e)
        finally:
            inbox.put_nowait(_EOF)

    async def _stream(
        self,
        requests: AsyncIterator[Any],
        context: grpc.aio.ServicerContext[Any, bytes],
        delta: bool,
        authenticate: Authenticate | None,
    ) -> None:
        if self._push_context is None:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "server is not ready to serve discovery information",
            )
        inbox: asyncio.Queue[object] = asyncio.Queue()
        reader = asyncio.get_running_loop().create_task(self._read(requests, inbox))
        stream: _Stream | None = None
        debug: DebugSession | None = None
        try:
            while True:
                item = await inbox.get()
                if item is _EOF:
                    break
                if item is _SHUTDOWN:  # a status, not a reset: the proxy knows why
                    await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTDOWN_MESSAGE)
                if item is _PUSH:
                    if stream is None:
                        continue
                    request, stream.pending = stream.pending, None
                    covering, stream.covering = stream.covering, []
                    done: list[bytes] | None = None
                    try:
                        if request is not None:
                            payloads = _generate(stream.connection.on_push, request)
                            for payload in payloads:
                                await _write(context, payload, delta, self.settings.send_timeout)
                            done = payloads
                    finally:
                        stream.push_done.set()
                        self._push_log.finished(covering, request, done)
                    continue
                if stream is None and debug is None and self.debug_xds.is_debug_request(item):
                    debug = await self._debug_session(item, context, authenticate)
                if debug is not None:
                    out = debug.on_delta_request(item) if delta else debug.on_sotw_request(item)
                    for payload in out:
                        await context.write(payload)
                    continue
                if stream is None:
                    stream = await self._connect(item, context, delta, inbox, authenticate)
                conn = stream.connection
                handle = conn.on_delta_request if delta else conn.on_sotw_request
                for payload in _generate(handle, item):
                    await _write(context, payload, delta, self.settings.send_timeout)
        except _SendTimeout as e:
            # istiod forgets the stream (no more pushes or state). The stalled write still holds
            # the gRPC call, so no status can be sent (grpcio refuses a second send, and has no
            # server-side cancel): end the handler as cancelled, which grpcio does not answer.
            log.warning("ADS: closing %s: %s", stream.connection.id if stream else "stream", e)
            raise asyncio.CancelledError from None
        finally:
            reader.cancel()
            if stream is not None:
                self._disconnect(stream)

    async def _connect(
        self,
        request: Any,
        context: grpc.aio.ServicerContext[Any, bytes],
        delta: bool,
        inbox: asyncio.Queue[object],
        authenticate: Authenticate | None,
    ) -> _Stream:
        node = request.node
        if not node.id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "missing node information")
        metadata = json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}
        locality = "/".join(
            p for p in (node.locality.region, node.locality.zone, node.locality.sub_zone) if p
        )
        try:
            proxy = parse_node(node.id, metadata, locality)
        except InvalidNodeError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        if authenticate is not None:
            proxy = await self._authenticate(proxy, context, authenticate)
        conn_id = f"{proxy.name}-{next(self._ids)}"
        generators = generators_for(proxy, self.generators)
        if self.settings.verify_cache:
            generators = verifying(generators)
        connection = Connection(
            conn_id,
            proxy,
            context.peer(),
            delta,
            generators,
            lambda: self.push_context,
            self.events,
        )
        stream = _Stream(connection, inbox)
        self._streams[conn_id] = stream
        self.events.connected(connection)
        log.info(
            "ADS: new %s connection for node:%s (%s) peer:%s%s",
            "delta" if delta else "sotw",
            proxy.id,
            conn_id,
            context.peer(),
            f" generator:{proxy.generator}" if proxy.generator else "",
        )
        return stream

    async def _debug_session(
        self,
        request: Any,
        context: grpc.aio.ServicerContext[Any, bytes],
        authenticate: Authenticate | None,
    ) -> DebugSession:
        """A stream asking about istiod's proxies (pilot/xds/debug_xds.py); on the secure port
        its node must match its credentials, as any stream's."""
        identity = None
        if authenticate is not None:
            node = request.node
            metadata = json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}
            try:
                proxy = parse_node(node.id, metadata)
            except InvalidNodeError as e:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            identity = (await self._authenticate(proxy, context, authenticate)).identity
        log.info("ADS: debug stream for %s peer:%s", request.type_url, context.peer())
        return self.debug_xds.session(identity)

    async def _authenticate(
        self,
        proxy: Proxy,
        context: grpc.aio.ServicerContext[Any, bytes],
        authenticate: Authenticate,
    ) -> Proxy:
        try:
            found = authenticate(request_metadata(context), peer_uris(context))
            identity = await found if inspect.isawaitable(found) else found
            check_connection_identity(proxy, identity)
        except IdentityMismatchError as e:
            log.warning("ADS: refused node:%s peer:%s: %s", proxy.id, context.peer(), e)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
        except AuthenticationError as e:
            log.warning("ADS: unauthenticated node:%s peer:%s: %s", proxy.id, context.peer(), e)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"authentication failed: {e}")
        return dataclasses.replace(proxy, identity=identity)

    def _disconnect(self, stream: _Stream) -> None:
        conn = stream.connection
        self._streams.pop(conn.id, None)
        self._queue.remove(conn.id)
        stream.push_done.set()
        covering, stream.covering = stream.covering, []
        self._push_log.forget(conn.id, covering)
        self.events.disconnected(conn)
        log.info("ADS: %s closed (node:%s)", conn.id, conn.proxy.id)


def _generate(handle: Callable[[Any], list[bytes]], item: Any) -> list[bytes]:
    """A connection's responses to a request or push; a failure is an internal error."""
    try:
        return handle(item)
    except Exception:
        monitoring.INTERNAL_ERRORS.inc()
        raise


class _SendTimeout(Exception):
    """The proxy did not take a response within PILOT_XDS_SEND_TIMEOUT: the stream closes."""


async def _write(
    context: grpc.aio.ServicerContext[Any, bytes], payload: bytes, delta: bool, timeout: float
) -> None:
    """Write one response, timed (pilot_xds_send_time); a failure other than the stream
    closing is counted as Istio's `<type>_senderr` push. A write the proxy does not take
    within `timeout` (> 0) raises _SendTimeout (counted in pilot_xds_write_timeout)."""
    started = time.perf_counter()
    try:
        if timeout > 0:
            async with asyncio.timeout(timeout):
                await context.write(payload)
        else:
            await context.write(payload)
    except TimeoutError:
        monitoring.WRITE_TIMEOUT.inc()
        raise _SendTimeout(f"timeout sending a response: not taken within {timeout:g}s") from None
    except Exception:
        if not context.done():
            kind = (
                discovery_pb2.DeltaDiscoveryResponse if delta else discovery_pb2.DiscoveryResponse
            )
            monitoring.record_send_error(kind.FromString(payload).type_url)
        raise
    monitoring.SEND_TIME.observe(time.perf_counter() - started)
