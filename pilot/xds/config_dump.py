"""What istiod would send a proxy, as an Envoy admin ConfigDump (istiod's /debug/config_dump).

Sections in Istio's order: Bootstrap (empty), Clusters, [Endpoints], Listeners, ScopedRoutes
(empty), Routes, Secrets (private keys shown as "[redacted]"). The resources are generated
from the current PushContext for the connected proxy, exactly as a push would build them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from envoy.admin.v3 import config_dump_pb2, config_dump_shared_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf import any_pb2, json_format, timestamp_pb2

from pilot.model.proxy_view import proxy_view
from pilot.model.push_context import PushContext
from pilot.xds.connection import Connection
from pilot.xds.wire import BuiltResource
from pkg.xds import typeurls

REDACTED = "[redacted]"


def _any(message: Any) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message, deterministic=True)
    return out


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromSeconds(int(time.time()))
    return ts


def build_config_dump(
    connection: Connection,
    push: PushContext,
    types: Iterable[str] | None = None,
    include_eds: bool = False,
) -> config_dump_pb2.ConfigDump:
    view = proxy_view(connection.proxy, push)
    gens = connection.generators
    now = _now()

    def generate(type_url: str) -> Sequence[BuiltResource]:
        generator = gens.get(type_url)
        state = connection.watches.get(type_url)
        if generator is None:
            return []
        names = None if state is None or state.wildcard else frozenset(state.names)
        if names is None and type_url in (typeurls.ENDPOINT, typeurls.ROUTE, typeurls.SECRET):
            names = frozenset()
        return generator.generate(view, names)

    return assemble_config_dump(generate, types, include_eds, now)


def assemble_config_dump(
    generate: Callable[[str], Sequence[BuiltResource]],
    types: Iterable[str] | None = None,
    include_eds: bool = False,
    now: timestamp_pb2.Timestamp | None = None,
) -> config_dump_pb2.ConfigDump:
    """The ConfigDump of the resources `generate(type_url)` gives (what a proxy would be sent
    now, or, for history.py, what it was sent at some earlier time), stamped `now`."""
    wanted = {t.upper() for t in types} if types else {"CDS", "EDS", "LDS", "RDS", "SDS"}
    now = now if now is not None else _now()
    dump = config_dump_pb2.ConfigDump()
    dump.configs.append(_any(config_dump_pb2.BootstrapConfigDump()))
    if "CDS" in wanted:
        clusters = config_dump_shared_pb2.ClustersConfigDump()
        for r in generate(typeurls.CLUSTER):
            entry = clusters.dynamic_active_clusters.add(version_info=r.version)
            entry.cluster.ParseFromString(r.any_bytes)
            entry.last_updated.CopyFrom(now)
        dump.configs.append(_any(clusters))
    if include_eds or ("EDS" in wanted and types):
        endpoints = config_dump_shared_pb2.EndpointsConfigDump()
        for r in generate(typeurls.ENDPOINT):
            entry = endpoints.dynamic_endpoint_configs.add(version_info=r.version)
            entry.endpoint_config.ParseFromString(r.any_bytes)
            entry.last_updated.CopyFrom(now)
        dump.configs.append(_any(endpoints))
    if "LDS" in wanted:
        listeners = config_dump_shared_pb2.ListenersConfigDump()
        for r in generate(typeurls.LISTENER):
            entry = listeners.dynamic_listeners.add(name=r.name)
            entry.active_state.version_info = r.version
            entry.active_state.listener.ParseFromString(r.any_bytes)
            entry.active_state.last_updated.CopyFrom(now)
        dump.configs.append(_any(listeners))
    dump.configs.append(_any(config_dump_shared_pb2.ScopedRoutesConfigDump()))
    if "RDS" in wanted:
        routes = config_dump_shared_pb2.RoutesConfigDump()
        for r in generate(typeurls.ROUTE):
            entry = routes.dynamic_route_configs.add(version_info=r.version)
            entry.route_config.ParseFromString(r.any_bytes)
            entry.last_updated.CopyFrom(now)
        dump.configs.append(_any(routes))
    if "SDS" in wanted:
        secrets = config_dump_pb2.SecretsConfigDump()
        for r in generate(typeurls.SECRET):
            entry = secrets.dynamic_active_secrets.add(name=r.name, version_info=r.version)
            secret = secret_pb2.Secret()
            r.unpack().Unpack(secret)
            if secret.HasField("tls_certificate"):
                # Envoy's own admin dump never shows private keys; neither do we.
                secret.tls_certificate.private_key.Clear()
                secret.tls_certificate.private_key.inline_string = REDACTED
            entry.secret.Pack(secret)
            entry.last_updated.CopyFrom(now)
        dump.configs.append(_any(secrets))
    return dump


def to_json(message: Any) -> dict[str, Any]:
    result: dict[str, Any] = json_format.MessageToDict(message)
    return result
