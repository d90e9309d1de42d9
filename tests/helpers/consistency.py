"""Cross-type consistency of one proxy's xDS (go-control-plane's `Snapshot.Consistent()`, and
what Envoy would trip over): run on every generated set, golden or not.

- no two resources of a type share a name;
- every resource round-trips: its Any names the type it was requested as, it parses into that
  type, every nested Any (typed_config, ...) resolves, re-serializing gives the same bytes,
  and proto JSON → message gives the message back; the resource's own name field is its name;
- EDS: every EDS cluster's service name was requested and got a ClusterLoadAssignment, and
  no assignment exists without an EDS cluster;
- RDS: every route configuration an HTTP connection manager names was produced;
- every cluster a route (single, weighted, mirror) or a tcp_proxy names exists in CDS (or is
  one of the fixed PassthroughCluster / BlackHoleCluster / InboundPassthroughCluster).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import any_pb2, json_format
from google.protobuf.message import Message

from tests.helpers.xds import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    XdsResources,
    decode_any,
    eds_service_name,
    http_connection_managers,
)

FIXED_CLUSTERS = frozenset({"PassthroughCluster", "BlackHoleCluster", "InboundPassthroughCluster"})
TCP_PROXY_TYPE = "type.googleapis.com/" + tcp_proxy_pb2.TcpProxy.DESCRIPTOR.full_name

_NAME_FIELD = {CLUSTER: "name", LISTENER: "name", ROUTE: "name", ENDPOINT: "cluster_name"}


def _nested_anys(message: Message) -> Iterator[any_pb2.Any]:
    for fd, value in message.ListFields():
        if fd.message_type is None:
            continue
        if fd.message_type.GetOptions().map_entry:
            values = list(value.values())  # message-valued maps; scalars are skipped below
        elif fd.is_repeated:
            values = list(value)
        else:
            values = [value]
        for v in values:
            if isinstance(v, any_pb2.Any):
                yield v
                yield from _nested_anys(decode_any(v))
            elif isinstance(v, Message):
                yield from _nested_anys(v)


def _round_trip_problems(type_url: str, res: XdsResources) -> list[str]:
    problems = []
    for built in res.built[type_url]:
        where = f"{type_url.rsplit('.', 1)[-1]} {built.name!r}"
        outer = built.unpack()
        if outer.type_url != type_url:
            problems.append(f"{where}: packed as {outer.type_url}")
            continue
        message = decode_any(outer)
        own_name = getattr(message, _NAME_FIELD[type_url])
        if own_name != built.name:
            problems.append(f"{where}: resource names itself {own_name!r}")
        if message.SerializeToString(deterministic=True) != outer.value:
            problems.append(f"{where}: does not re-serialize to the same bytes")
        try:
            for nested in _nested_anys(message):
                if not nested.type_url:
                    problems.append(f"{where}: an Any without a type URL")
        except (KeyError, TypeError) as e:
            problems.append(f"{where}: nested Any does not resolve: {e}")
            continue
        again = type(message)()
        as_json = json_format.MessageToDict(message)
        json_format.ParseDict(
            json_format.MessageToDict(message), again
        )  # ParseDict edits its input
        # Compared as JSON: a re-packed Any may order its map entries differently (same
        # message, other bytes), which Any's byte-wise equality would call a difference.
        if json_format.MessageToDict(again) != as_json:
            problems.append(f"{where}: proto JSON does not round-trip")
    return problems


def _route_clusters(route_config: Any) -> Iterator[tuple[str, str]]:
    for vhost in route_config.virtual_hosts:
        for route in vhost.routes:
            where = f"route config {route_config.name!r} vhost {vhost.name!r} route {route.name!r}"
            if route.WhichOneof("action") != "route":
                continue
            action = route.route
            specifier = action.WhichOneof("cluster_specifier")
            if specifier == "cluster":
                yield where, action.cluster
            elif specifier == "weighted_clusters":
                for weighted in action.weighted_clusters.clusters:
                    yield where, weighted.name
            for mirror in action.request_mirror_policies:
                if mirror.cluster:
                    yield where, mirror.cluster


def _listener_clusters(res: XdsResources) -> Iterator[tuple[str, str]]:
    for listener in res.listeners.values():
        chains = list(listener.filter_chains)
        if listener.HasField("default_filter_chain"):
            chains.append(listener.default_filter_chain)
        for chain in chains:
            for f in chain.filters:
                if f.typed_config.type_url != TCP_PROXY_TYPE:
                    continue
                proxy = tcp_proxy_pb2.TcpProxy()
                f.typed_config.Unpack(proxy)
                where = f"listener {listener.name!r} chain {chain.name!r} tcp_proxy"
                if proxy.WhichOneof("cluster_specifier") == "cluster":
                    yield where, proxy.cluster
                else:
                    for weighted in proxy.weighted_clusters.clusters:
                        yield where, weighted.name
        for _, hcm in http_connection_managers(listener):
            if hcm.HasField("route_config"):
                yield from _route_clusters(hcm.route_config)


def consistency_problems(res: XdsResources) -> list[str]:
    problems: list[str] = []
    for type_url, built in res.built.items():
        for name, count in Counter(r.name for r in built).items():
            if count > 1:
                problems.append(f"{type_url.rsplit('.', 1)[-1]} {name!r} appears {count} times")
        problems.extend(_round_trip_problems(type_url, res))

    eds_clusters = {
        eds_service_name(c) for c in res.clusters.values() if c.type == cluster_pb2.Cluster.EDS
    }
    problems.extend(
        f"EDS {n!r} requested without an EDS cluster"
        for n in sorted(set(res.eds_requested) - eds_clusters)
    )
    problems.extend(
        f"EDS cluster {n!r} got no ClusterLoadAssignment"
        for n in sorted(eds_clusters - set(res.endpoints))
    )
    problems.extend(
        f"ClusterLoadAssignment {n!r} has no EDS cluster"
        for n in sorted(set(res.endpoints) - eds_clusters)
    )
    for name in sorted(set(res.rds_requested) - set(res.routes)):
        problems.append(f"route configuration {name!r} referenced by a listener is not produced")
    for name in sorted(set(res.routes) - set(res.rds_requested)):
        problems.append(f"route configuration {name!r} produced but not requested")

    known = set(res.clusters) | FIXED_CLUSTERS
    references = list(_listener_clusters(res))
    for config in res.routes.values():
        references.extend(_route_clusters(config))
    for where, cluster in references:
        if cluster not in known:
            problems.append(f"{where} names unknown cluster {cluster!r}")
    return problems


def assert_consistent(res: XdsResources) -> None:
    problems = consistency_problems(res)
    assert not problems, (
        "inconsistent xDS for " + res.view.proxy.id + ":\n  " + "\n  ".join(problems)
    )
