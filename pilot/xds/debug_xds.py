"""istiod's debug generator over ADS: `istio.io/debug/syncz` and `istio.io/debug/config_dump`.

istioctl asks istiod about its proxies over xDS (Istio's StatusGen, pilot/pkg/xds/statusgen.go):
it opens an ADS stream with node metadata `GENERATOR=event` and subscribes to

- `istio.io/debug/syncz`: one Any-packed `envoy.service.status.v3.ClientConfig` per connected
  proxy (node id NAME.NS, metadata CLUSTER_ID/NAMESPACE/ISTIO_VERSION, and per watched type a
  `generic_xds_configs` entry with `config_status`, `client_status`, `last_updated` and, after
  a NACK, `error_state.details` = Envoy's message); the response's `control_plane.identifier`
  is istiod's identity as JSON (`{"Component": "istiod", "ID": …, "Info": {…}}`);
- `istio.io/debug/config_dump` with one resource name, a proxy: the sections of the ConfigDump
  istiod would send it, as unnamed resources.

Such a stream is a debug session, not a proxy: it is never registered with the server, so it
is not pushed config, not listed in syncz and not counted in pilot_xds. On the secure port it
is authenticated like any stream; a caller outside the system namespace sees only the proxies
of its own namespace (Istio's debug-endpoint rule).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.status.v3 import csds_pb2
from google.protobuf import any_pb2, struct_pb2, timestamp_pb2

from pilot.model.push_context import PushContext
from pilot.xds.config_dump import build_config_dump
from pilot.xds.connection import Connection
from pilot.xds.protocol import WatchState
from pkg.credentials import Identity
from pkg.version import VERSION
from pkg.xds import typeurls
from pkg.xds.sync_status import ConfigStatus, client_status, config_status

DEBUG_GENERATOR = "event"  # node metadata GENERATOR of istioctl's debug streams
DEBUG_PREFIX = "istio.io/debug/"
SYSTEM_NAMESPACE = "istio-system"


@dataclass(frozen=True, slots=True)
class TypeSync:
    """The sync state of one watched type of one stream (see pkg.xds.sync_status)."""

    type_url: str
    status: ConfigStatus
    nonce_sent: str
    nonce_acked: str
    version: str
    last_updated: float  # time.time() of the last send (or of proving in sync); 0: never
    error: str  # Envoy's NACK message, while the type is in ERROR


def type_sync(state: WatchState) -> TypeSync:
    status = config_status(
        nonce_sent=state.nonce_sent,
        nonce_acked=state.nonce_acked,
        rejected=state.nack is not None,
        in_sync=state.in_sync_since > 0,
    )
    return TypeSync(
        type_url=state.type_url,
        status=status,
        nonce_sent=state.nonce_sent,
        nonce_acked=state.nonce_acked,
        version=state.version_acked or state.version_sent,
        last_updated=state.last_sent_at if state.nonce_sent else state.in_sync_since,
        error=state.nack.message if state.nack is not None else "",
    )


def istiod_id() -> str:
    """This istiod's instance id: its pod name in Kubernetes (POD_NAME, as Istio), else the
    host name."""
    return os.environ.get("POD_NAME") or socket.gethostname()


def control_plane_identifier() -> str:
    """Istio's IstioControlPlaneInstance as JSON (istioctl's ISTIOD column is its ID)."""
    info = {
        "version": VERSION,
        "revision": "default",
        "golang_version": f"python{platform.python_version()}",
        "status": "Clean",
        "tag": VERSION,
    }
    return json.dumps({"Component": "istiod", "ID": istiod_id(), "Info": info})


def _timestamp(at: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(at * 1e9))
    return ts


def client_config(conn: Connection) -> csds_pb2.ClientConfig:
    """One proxy's ClientConfig, as Istio's statusgen builds it (plus client_status and the
    version the proxy holds)."""
    proxy = conn.proxy
    metadata = struct_pb2.Struct()
    metadata.update(
        {
            "CLUSTER_ID": proxy.cluster_id,
            "NAMESPACE": proxy.namespace,
            "ISTIO_VERSION": proxy.istio_version,
        }
    )
    out = csds_pb2.ClientConfig(node=base_pb2.Node(id=proxy.name, metadata=metadata))
    for type_url in sorted(conn.watches):
        sync = type_sync(conn.watches[type_url])
        entry = out.generic_xds_configs.add(
            type_url=type_url,
            version_info=sync.version,
            config_status=csds_pb2.ConfigStatus.Value(sync.status.value),
            client_status=csds_pb2.ClientConfigStatus.Value(client_status(sync.status).value),
        )
        if sync.last_updated:
            entry.last_updated.CopyFrom(_timestamp(sync.last_updated))
        if sync.status is ConfigStatus.ERROR:
            entry.error_state.details = sync.error
            if sync.last_updated:
                entry.error_state.last_update_attempt.CopyFrom(_timestamp(sync.last_updated))
    return out


def _pack(message: Any) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message, deterministic=True)
    return out


class DebugXds:
    """The debug generator of one DiscoveryServer: hands out one session per debug stream."""

    def __init__(
        self,
        connections: Callable[[], Iterable[Connection]],
        push_context: Callable[[], PushContext],
    ) -> None:
        self._connections = connections
        self._push_context = push_context

    @staticmethod
    def is_debug_request(request: Any) -> bool:
        """The first request of a stream opens a debug session: it asks for a debug type or
        its node names the `event` generator."""
        if request.type_url.startswith(DEBUG_PREFIX):
            return True
        node = request.node if request.HasField("node") else None
        if node is None or not node.HasField("metadata"):
            return False
        generator = node.metadata.fields.get("GENERATOR")
        return generator is not None and generator.string_value == DEBUG_GENERATOR

    def session(self, identity: Identity | None) -> DebugSession:
        namespace = None
        if identity is not None and identity.namespace != SYSTEM_NAMESPACE:
            namespace = identity.namespace
        return DebugSession(self, namespace)

    def proxies(self, namespace: str | None) -> list[Connection]:
        conns = [
            c for c in self._connections() if namespace is None or c.proxy.namespace == namespace
        ]
        return sorted(conns, key=lambda c: (c.proxy.name, c.id))

    def resources(
        self, type_url: str, names: Iterable[str], namespace: str | None
    ) -> list[any_pb2.Any]:
        if type_url == typeurls.DEBUG_SYNCZ:
            return [_pack(client_config(c)) for c in self.proxies(namespace)]
        if type_url == typeurls.DEBUG_CONFIG_DUMP:
            wanted = list(names)
            if len(wanted) != 1:
                return []
            conn = _find(self.proxies(namespace), wanted[0])
            if conn is None:
                return []
            return list(build_config_dump(conn, self._push_context()).configs)
        return []


def _find(connections: Iterable[Connection], proxy_id: str) -> Connection | None:
    for conn in connections:
        if proxy_id in (conn.proxy.name, conn.proxy.id, conn.id):
            return conn
    return None


class DebugSession:
    """One debug stream (sans-IO): each request that is not the ACK of our last response for
    its type is answered with a fresh snapshot."""

    def __init__(self, debug: DebugXds, namespace: str | None) -> None:
        self._debug = debug
        self._namespace = namespace
        self._sent: dict[str, str] = {}  # type URL → last nonce sent
        self._count = 0

    def _nonce(self) -> str:
        self._count += 1
        return f"debug-{self._count}-{time.time_ns()}"

    def on_sotw_request(self, request: Any) -> list[bytes]:
        type_url = request.type_url
        if request.response_nonce and (
            request.HasField("error_detail") or request.response_nonce == self._sent.get(type_url)
        ):
            return []  # an ACK or a NACK of what we sent: nothing to answer
        nonce = self._nonce()
        self._sent[type_url] = nonce
        response = discovery_pb2.DiscoveryResponse(
            version_info=str(time.time_ns()),
            type_url=type_url,
            nonce=nonce,
            resources=self._debug.resources(type_url, request.resource_names, self._namespace),
        )
        if type_url == typeurls.DEBUG_SYNCZ:
            response.control_plane.identifier = control_plane_identifier()
        return [response.SerializeToString()]

    def on_delta_request(self, request: Any) -> list[bytes]:
        type_url = request.type_url
        if request.response_nonce:
            return []
        nonce = self._nonce()
        names = request.resource_names_subscribe
        response = discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=str(time.time_ns()), type_url=type_url, nonce=nonce
        )
        for i, res in enumerate(self._debug.resources(type_url, names, self._namespace)):
            name = _resource_name(res) or str(i)
            response.resources.add(name=name, version=nonce, resource=res)
        if type_url == typeurls.DEBUG_SYNCZ:
            response.control_plane.identifier = control_plane_identifier()
        return [response.SerializeToString()]


def _resource_name(resource: any_pb2.Any) -> str:
    if resource.Is(csds_pb2.ClientConfig.DESCRIPTOR):
        config = csds_pb2.ClientConfig()
        resource.Unpack(config)
        return str(config.node.id)
    return ""
