"""DestinationRule loadBalancer on an outbound cluster (Istio's applyLoadBalancer).

- `simple`: ROUND_ROBIN, LEAST_REQUEST (LEAST_CONN is its alias), RANDOM; unset means Istio's
  default LEAST_REQUEST. PASSTHROUGH turns the cluster into ORIGINAL_DST (CLUSTER_PROVIDED).
- `warmup` (and the deprecated `warmupDurationSecs`): Envoy's slow start for ROUND_ROBIN and
  LEAST_REQUEST.
- `consistentHash`: MAGLEV (with `maglev.tableSize`) or RING_HASH (with
  `ringHash.minimumRingSize`, or the deprecated `minimumRingSize`, else 1024); the hash key
  itself goes on the route (hash_policy.py).
- locality: a cluster gets `locality_weighted_lb_config` when its DestinationRule distributes
  traffic by locality, or names failover targets and has outlier detection (which failover
  needs); priorities and weights are per proxy, in its endpoints (locality.py).
"""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.type.v3 import percent_pb2

from pilot.networking.protos import duration
from pkg.config.specs.destination_rule import SimpleLB

_DEFAULT_RING_SIZE = 1024
# Istio fixes slow start's aggression with a runtime key Envoy never finds.
_FIXED_RUNTIME_KEY = "("


def apply_load_balancer(c: Any, lb: Any, locality: Any, has_outlier: bool) -> None:
    """`lb` is the effective LoadBalancerSettings (or None); `locality` the effective
    LocalityLoadBalancerSetting (or None when locality load balancing is off)."""
    _apply_locality_config(c, locality, has_outlier)
    if c.type == cluster_pb2.Cluster.ORIGINAL_DST:
        c.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
        return
    simple = lb.simple if lb is not None else None
    if simple in (SimpleLB.LEAST_REQUEST, SimpleLB.LEAST_CONN):
        _least_request(c, lb)
    elif simple == SimpleLB.RANDOM:
        c.lb_policy = cluster_pb2.Cluster.RANDOM
    elif simple == SimpleLB.ROUND_ROBIN:
        c.lb_policy = cluster_pb2.Cluster.ROUND_ROBIN
        slow_start = _slow_start(lb)
        if slow_start is not None:
            c.round_robin_lb_config.slow_start_config.CopyFrom(slow_start)
    elif simple == SimpleLB.PASSTHROUGH:
        c.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
        c.type = cluster_pb2.Cluster.ORIGINAL_DST
        c.ClearField("load_assignment")
        c.ClearField("eds_cluster_config")
        return
    else:
        _least_request(c, lb)
    _apply_consistent_hash(c, lb.consistent_hash if lb is not None else None)


def _least_request(c: Any, lb: Any) -> None:
    c.lb_policy = cluster_pb2.Cluster.LEAST_REQUEST
    slow_start = _slow_start(lb)
    if slow_start is not None:
        c.least_request_lb_config.slow_start_config.CopyFrom(slow_start)


def _slow_start(lb: Any) -> Any | None:
    if lb is None:
        return None
    warmup = lb.warmup
    if warmup is not None:
        out = cluster_pb2.Cluster.SlowStartConfig()
        out.slow_start_window.CopyFrom(duration(warmup.duration))
        out.aggression.default_value = warmup.aggression if warmup.aggression is not None else 1.0
        out.aggression.runtime_key = _FIXED_RUNTIME_KEY
        minimum = warmup.minimum_percent if warmup.minimum_percent is not None else 10.0
        out.min_weight_percent.CopyFrom(percent_pb2.Percent(value=minimum))
        return out
    if lb.warmup_duration_secs is not None:
        out = cluster_pb2.Cluster.SlowStartConfig()
        out.slow_start_window.CopyFrom(duration(lb.warmup_duration_secs))
        return out
    return None


def _apply_consistent_hash(c: Any, ch: Any) -> None:
    if ch is None:
        return
    if ch.maglev is not None:
        c.lb_policy = cluster_pb2.Cluster.MAGLEV
        if ch.maglev.table_size:
            c.maglev_lb_config.table_size.value = ch.maglev.table_size
    elif ch.ring_hash is not None:
        c.lb_policy = cluster_pb2.Cluster.RING_HASH
        if ch.ring_hash.minimum_ring_size:
            c.ring_hash_lb_config.minimum_ring_size.value = ch.ring_hash.minimum_ring_size
    else:
        c.lb_policy = cluster_pb2.Cluster.RING_HASH
        size = ch.minimum_ring_size or _DEFAULT_RING_SIZE
        c.ring_hash_lb_config.minimum_ring_size.value = size


def _apply_locality_config(c: Any, locality: Any, has_outlier: bool) -> None:
    if locality is None:
        return
    explicit_failover = bool(locality.failover or locality.failover_priority)
    if locality.distribute or (has_outlier and explicit_failover):
        c.common_lb_config.locality_weighted_lb_config.SetInParent()
