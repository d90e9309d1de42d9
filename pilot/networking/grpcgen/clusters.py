"""Proxyless gRPC CDS: the requested clusters of a service (Istio's grpcgen BuildClusters).

gRPC asks for exactly the clusters its routes name (`outbound|PORT||HOST` and subsets
`outbound|PORT|SUBSET|HOST`); each is an EDS cluster over ADS whose load assignment has the
cluster's own name. Of the DestinationRule, gRPC implements (and gets) the load balancer
(ROUND_ROBIN is its default; LEAST_REQUEST; consistent hash as RING_HASH — gRPC has no
MAGLEV, so a maglev policy becomes a ring hash) and `http2MaxRequests` as the circuit
breaker's max requests (gRFC A32). Subset policies merge over the top-level one as for Envoy.
TLS is left off, as Istio does unless the rule says ISTIO_MUTUAL (not generated here: the
client needs xDS credentials and certificate files pyistio has no agent to provide).
"""

from __future__ import annotations

import logging
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import config_source_pb2

from pilot.model.destination_rule_index import MergedDestinationRule
from pilot.model.proxy_view import ProxyView
from pilot.model.service import Service
from pilot.networking import naming
from pilot.networking.traffic_policy import EffectivePolicy, effective_policy

log = logging.getLogger(__name__)

_DEFAULT_RING_SIZE = 1024


def group_by_service(names: frozenset[str]) -> dict[str, frozenset[str]]:
    """Istio's newClusterFilter: default cluster name → the requested names (default and
    subsets) of that service port."""
    out: dict[str, set[str]] = {}
    for name in names:
        key = naming.parse_subset_key(name)
        if key is None or not key.host or key.port <= 0:
            continue
        default = naming.outbound_cluster(key.port, "", key.host)
        out.setdefault(default, set()).add(name)
    return {k: frozenset(v) for k, v in out.items()}


def lookup_service(view: ProxyView, host: str) -> Service | None:
    """Istio's ServiceForHostname: the proxy's scope first, then what its namespace sees."""
    return view.scope.service(host) or view.push.services.for_host(host, view.namespace)


def _eds_cluster(name: str) -> Any:
    c = cluster_pb2.Cluster(name=name, alt_stat_name=naming.stat_prefix(name))
    c.type = cluster_pb2.Cluster.EDS
    c.eds_cluster_config.service_name = name
    c.eds_cluster_config.eds_config.CopyFrom(
        config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource())
    )
    return c


def _apply_load_balancer(c: Any, policy: EffectivePolicy, proxy_id: str) -> None:
    lb = policy.load_balancer
    if lb is None:
        return
    hashing = lb.consistent_hash
    if hashing is not None:
        c.lb_policy = cluster_pb2.Cluster.RING_HASH
        if hashing.maglev is not None:
            log.warning("proxy %s: gRPC has no MAGLEV; %s uses a ring hash", proxy_id, c.name)
        if hashing.ring_hash is not None:
            if hashing.ring_hash.minimum_ring_size:
                c.ring_hash_lb_config.minimum_ring_size.value = hashing.ring_hash.minimum_ring_size
        else:
            size = hashing.minimum_ring_size or _DEFAULT_RING_SIZE
            c.ring_hash_lb_config.minimum_ring_size.value = size
        return
    simple = str(lb.simple) if lb.simple is not None else ""
    if simple in ("", "UNSPECIFIED", "ROUND_ROBIN"):
        return  # gRPC's default
    if simple in ("LEAST_REQUEST", "LEAST_CONN"):
        c.lb_policy = cluster_pb2.Cluster.LEAST_REQUEST
        return
    log.warning("proxy %s: cannot apply load balancer %s to gRPC cluster %s", proxy_id, simple,
                c.name)  # fmt: skip


def _apply_circuit_breakers(c: Any, policy: EffectivePolicy) -> None:
    pool = policy.connection_pool
    http = pool.http if pool is not None else None
    if http is None or http.http2_max_requests <= 0:
        return
    threshold = circuit_breaker_pb2.CircuitBreakers.Thresholds()
    threshold.max_requests.value = http.http2_max_requests
    c.circuit_breakers.thresholds.append(threshold)


def _apply_policy(c: Any, policy: EffectivePolicy, proxy_id: str) -> None:
    _apply_load_balancer(c, policy, proxy_id)
    _apply_circuit_breakers(c, policy)


def build_grpc_clusters(
    view: ProxyView,
    svc: Service,
    port: int,
    dr: MergedDestinationRule | None,
    names: frozenset[str],
) -> list[Any]:
    """The requested clusters (default and subsets) of one service port."""
    out: list[Any] = []
    proxy_id = view.proxy.id
    top = dr.spec.traffic_policy if dr is not None else None
    default = naming.outbound_cluster(port, "", svc.hostname)
    if default in names:
        c = _eds_cluster(default)
        _apply_policy(c, effective_policy(top, None, port), proxy_id)
        out.append(c)
    if dr is None:
        return out
    for subset in dr.spec.subsets:
        name = naming.outbound_cluster(port, subset.name, svc.hostname)
        if name not in names:
            continue
        c = _eds_cluster(name)
        _apply_policy(c, effective_policy(top, subset.traffic_policy, port), proxy_id)
        out.append(c)
    return out
