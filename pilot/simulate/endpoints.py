"""The cluster and endpoint steps of an explanation: per upstream cluster its weight, service,
subset, DestinationRule, load balancing and upstream TLS, and each endpoint with its health
status, locality/priority and the TLS mode Envoy would use towards it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import health_check_pb2

from pilot.simulate import describe
from pilot.simulate.describe import ObjectRef
from pilot.simulate.resources import eds_service_name
from pilot.simulate.traffic import Call, Simulation

# (step kind value, name, detail, source, data): `explain` turns them into Steps.
RawStep = tuple[str, str, str, ObjectRef | None, Mapping[str, Any]]


def _service_host(meta: Mapping[str, Any]) -> str:
    services = meta.get("services") or []
    return str(services[0].get("host", "")) if services else ""


def _assignment(sim: Simulation, cluster: Any) -> Any | None:
    if cluster.type == cluster_pb2.Cluster.EDS:
        return sim.endpoints_by_name.get(eds_service_name(cluster))
    if cluster.HasField("load_assignment"):
        return cluster.load_assignment
    return None


def _tls_mode(sim: Simulation, cluster_name: str, endpoint: str) -> str:
    try:
        return sim.upstream_tls(cluster_name, endpoint).tls.value
    except AssertionError:  # not a socket address of the assignment
        return ""


def cluster_steps(
    sim: Simulation,
    call: Call,
    weights: Mapping[str, int],
    service_ref: Callable[[str], ObjectRef | None],
) -> tuple[list[RawStep], tuple[str, ...]]:
    """Steps for the clusters (by weight) and their endpoints, and every ip:port the request
    may reach (the healthy endpoints of each cluster; all of them in panic mode)."""
    steps: list[RawStep] = []
    reachable: set[str] = set()
    total = sum(weights.values()) or 1
    for name, weight in weights.items():
        cluster = sim.clusters.get(name)
        if cluster is None:
            steps.append(("cluster", name, "not found: Envoy answers 503", None, {}))
            continue
        meta = describe.istio_metadata(cluster)
        data: dict[str, Any] = {
            "type": cluster_pb2.Cluster.DiscoveryType.Name(cluster.type),
            "lbPolicy": cluster_pb2.Cluster.LbPolicy.Name(cluster.lb_policy),
        }
        if len(weights) > 1:
            data["weight"] = f"{100 * weight / total:g}%"
        if meta.get("subset"):
            data["subset"] = meta["subset"]
        host = _service_host(meta)
        if host:
            data["service"] = host
        source = describe.config_ref(cluster) or (service_ref(host) if host else None)
        detail = ", ".join(f"{k} {v}" for k, v in data.items())
        steps.append(("cluster", name, detail, source, data))
        possible = sim.cluster_endpoints(name, call)
        reachable.update(possible)
        steps.extend(_endpoint_steps(sim, cluster, possible))
    return steps, tuple(sorted(reachable))


def _endpoint_steps(sim: Simulation, cluster: Any, possible: tuple[str, ...]) -> list[RawStep]:
    assignment = _assignment(sim, cluster)
    if assignment is None:
        detail = "original destination" if possible else "no endpoints"
        return [("endpoint", e, detail, None, {}) for e in possible] or [
            ("endpoint", "(none)", detail, None, {})
        ]
    out: list[RawStep] = []
    for group in assignment.endpoints:
        locality = "/".join(
            p for p in (group.locality.region, group.locality.zone, group.locality.sub_zone) if p
        )
        for lb in group.lb_endpoints:
            sock = lb.endpoint.address.socket_address
            address = f"{sock.address}:{sock.port_value}"
            health = health_check_pb2.HealthStatus.Name(lb.health_status)
            data: dict[str, Any] = {"health": health, "priority": group.priority}
            if locality:
                data["locality"] = locality
            tls = _tls_mode(sim, cluster.name, address)
            if tls:
                data["tls"] = tls
            used = "" if address in possible else ", not used"
            detail = ", ".join(f"{k} {v}" for k, v in data.items()) + used
            out.append(("endpoint", address, detail, None, data))
    if not out:
        out.append(("endpoint", "(none)", "no endpoints: Envoy answers 503", None, {}))
    return out
