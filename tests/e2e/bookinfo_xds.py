"""What the Bookinfo samples should look like inside each sidecar, and waiting for it.

"Taken effect" is read from Envoy itself (its admin `/config_dump`), not from istiod:

- routes: for each Bookinfo host, the virtual host's routes reduced to a signature — header
  matches, destination subsets with weights, fault delay/abort with percentage — equal what
  the applied mesh VirtualService says (or the default single route when none applies);
- clusters: every subset of every applied DestinationRule has its cluster; a DestinationRule
  `loadBalancer.simple` shows as the cluster's lb_policy, and `tls.mode: ISTIO_MUTUAL` as an
  explicit transport socket (auto mTLS alone uses transport_socket_matches).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .envoy import EnvoyProcess
from .net import WaitTimeout, wait_until

NAMESPACE = "default"
PORT = 9080
HOSTS = ("productpage", "details", "reviews", "ratings")
FAULT_FILTER = "envoy.filters.http.fault"

Headers = tuple[tuple[str, str], ...]
Dests = tuple[tuple[str, int], ...]  # (subset, weight)
Fault = tuple[tuple[str, float, float], ...]  # (delay seconds | abort status, percent)


class HasDoc(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def spec(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class RouteSig:
    headers: Headers
    dests: Dests
    fault: Fault = ()


@dataclass(frozen=True)
class ClusterSig:
    lb_policy: str  # as Envoy's JSON shows it ("" = ROUND_ROBIN, the default)
    explicit_tls: bool


@dataclass
class State:
    routes: dict[str, tuple[RouteSig, ...]] = field(default_factory=dict)  # host → routes
    clusters: dict[str, ClusterSig | None] = field(default_factory=dict)  # name → sig


def fqdn(host: str) -> str:
    return f"{host}.{NAMESPACE}.svc.cluster.local"


def cluster_name(host: str, subset: str = "") -> str:
    return f"outbound|{PORT}|{subset}|{fqdn(host)}"


def _percent(value: Any) -> float:
    return 100.0 if value is None else float(value)


def _vs_routes(host: str, spec: Mapping[str, Any]) -> tuple[RouteSig, ...]:
    out = []
    for http in spec.get("http") or []:
        routes = http.get("route") or []
        dests = tuple(
            (
                str(r["destination"].get("subset", "")),
                int(r.get("weight", 100 if len(routes) == 1 else 0)),
            )
            for r in routes
        )
        fault: list[tuple[str, float, float]] = []
        spec_fault = http.get("fault") or {}
        if delay := spec_fault.get("delay"):
            seconds = float(str(delay["fixedDelay"]).rstrip("s"))
            fault.append(("delay", seconds, _percent((delay.get("percentage") or {}).get("value"))))
        if abort := spec_fault.get("abort"):
            status = float(abort["httpStatus"])
            fault.append(("abort", status, _percent((abort.get("percentage") or {}).get("value"))))
        for match in http.get("match") or [{}]:
            headers = tuple(
                sorted((name, str(m["exact"])) for name, m in (match.get("headers") or {}).items())
            )
            out.append(RouteSig(headers, dests, tuple(fault)))
            if _catch_all(match):
                return tuple(out)  # as Istio, nothing after a catch-all route is built
    return tuple(out)


def _catch_all(match: Mapping[str, Any]) -> bool:
    rest = {k: v for k, v in match.items() if k != "name"}
    return not rest or rest == {"uri": {"prefix": "/"}}


def expected_state(docs: Iterable[HasDoc]) -> State:
    state = State()
    docs = list(docs)
    for host in HOSTS:
        state.routes[host] = (RouteSig((), (("", 100),)),)
        state.clusters[cluster_name(host)] = ClusterSig("LEAST_REQUEST", False)
    for doc in docs:
        spec = doc.spec
        if doc.kind == "VirtualService" and not spec.get("gateways"):
            for host in spec.get("hosts") or []:
                if host in HOSTS:
                    state.routes[host] = _vs_routes(host, spec)
        elif doc.kind == "DestinationRule" and spec.get("host") in HOSTS:
            policy = spec.get("trafficPolicy") or {}
            lb = (policy.get("loadBalancer") or {}).get("simple", "LEAST_REQUEST")
            sig = ClusterSig(
                "" if lb == "ROUND_ROBIN" else lb,
                (policy.get("tls") or {}).get("mode") == "ISTIO_MUTUAL",
            )
            state.clusters[cluster_name(spec["host"])] = sig
            for subset in spec.get("subsets") or []:
                state.clusters[cluster_name(spec["host"], subset["name"])] = sig
    return state


def _subset(cluster: str) -> str:
    return cluster.split("|")[2] if cluster.count("|") == 3 else f"?{cluster}"


def _fault(route: Mapping[str, Any]) -> Fault:
    config = (route.get("typed_per_filter_config") or {}).get(FAULT_FILTER) or {}
    out = []

    def percent(p: Mapping[str, Any]) -> float:
        denominator = {"HUNDRED": 100, "TEN_THOUSAND": 10_000}.get(p.get("denominator", ""), 10**6)
        return 100.0 * float(p.get("numerator", 0)) / denominator

    if delay := config.get("delay"):
        out.append(("delay", float(delay["fixed_delay"].rstrip("s")), percent(delay["percentage"])))
    if abort := config.get("abort"):
        out.append(("abort", float(abort["http_status"]), percent(abort["percentage"])))
    return tuple(out)


def route_sig(route: Mapping[str, Any]) -> RouteSig:
    headers = tuple(
        sorted(
            (h["name"], str((h.get("string_match") or {}).get("exact", "?")))
            for h in (route.get("match") or {}).get("headers") or []
        )
    )
    action = route.get("route") or {}
    if "cluster" in action:
        dests: Dests = ((_subset(action["cluster"]), 100),)
    else:
        clusters = (action.get("weighted_clusters") or {}).get("clusters") or []
        dests = tuple((_subset(c["name"]), int(c.get("weight", 0))) for c in clusters)
    return RouteSig(headers, dests, _fault(route))


def observed_routes(envoy: EnvoyProcess) -> dict[str, tuple[RouteSig, ...]]:
    """Bookinfo host → the route signatures of its virtual host in Envoy's dynamic routes."""
    out: dict[str, tuple[RouteSig, ...]] = {}
    dump = envoy.config_dump(resource="dynamic_route_configs")
    for entry in dump.get("configs", []):
        for vhost in (entry.get("route_config") or {}).get("virtual_hosts") or []:
            for host in HOSTS:
                if fqdn(host) in vhost.get("domains", []):
                    out[host] = tuple(route_sig(r) for r in vhost.get("routes") or [])
    return out


def observed_clusters(envoy: EnvoyProcess) -> dict[str, ClusterSig]:
    out = {}
    dump = envoy.config_dump(resource="dynamic_active_clusters")
    for entry in dump.get("configs", []):
        c = entry.get("cluster") or {}
        out[c.get("name", "")] = ClusterSig(c.get("lb_policy", ""), "transport_socket" in c)
    return out


def differences(envoy: EnvoyProcess, want: State) -> list[str]:
    out = []
    routes = observed_routes(envoy)
    for host, sigs in want.routes.items():
        if routes.get(host) != sigs:
            out.append(f"{host}: routes {routes.get(host)} != {sigs}")
    clusters = observed_clusters(envoy)
    for name, sig in want.clusters.items():
        if clusters.get(name) != sig:
            out.append(f"{name}: {clusters.get(name)} != {sig}")
    return out


def wait_state(envoys: Sequence[EnvoyProcess], want: State, timeout: float) -> None:
    """Wait until every Envoy shows `want` (see the module doc)."""
    last: dict[str, list[str]] = {}

    def all_match() -> bool:
        for envoy in envoys:
            diff = differences(envoy, want)
            if diff:
                last.clear()
                last[envoy.name] = diff
                return False
        return True

    try:
        wait_until(all_match, timeout, 0.05, "sidecars to hold the applied samples")
    except WaitTimeout:
        raise WaitTimeout(f"timed out after {timeout:g}s; last differences: {last}") from None
