"""Explain one request through one proxy's generated config, step by step.

`explain(resources, proxy, push, request)` replays the request with the simulator
(`traffic.Simulation`) and reports, in Envoy's order: listener → filter chain → route
configuration → virtual host → the routes tried (why each earlier one did not match) → the
route and its timeout/retries/fault → the authorization decision (RBAC, in the HTTP filter
chain before the router) → cluster (subset, load balancing, upstream TLS) → endpoints and
their health → the predicted outcome. Each step names the Istio object it came from
(`describe.ObjectRef`).

The outcome follows the order of the HTTP filters: RBAC (403) first, then the route's fault
abort, then the router (no virtual host/route → 404, direct response, redirect, or an upstream
cluster; a missing cluster or one without endpoints → 503).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from pilot.model.proxy import NodeType, Proxy
from pilot.model.push_context import PushContext
from pilot.simulate import describe
from pilot.simulate.describe import ObjectRef
from pilot.simulate.endpoints import cluster_steps
from pilot.simulate.match import match_virtual_host, route_matches
from pilot.simulate.rbac import Request as AuthzRequest
from pilot.simulate.rbac import authorize
from pilot.simulate.request import UNKNOWN_DESTINATION, ExplainRequest, to_call
from pilot.simulate.resources import HCM_TYPE, ProxyResources
from pilot.simulate.traffic import Call, Error, Result, Simulation

_CONNECTION_ERRORS = frozenset(
    {
        Error.NO_LISTENER,
        Error.NO_FILTER_CHAIN,
        Error.MULTIPLE_FILTER_CHAINS,
        Error.PROTOCOL_ERROR,
        Error.TLS_ERROR,
    }
)


class StepKind(StrEnum):
    LISTENER = "listener"
    FILTER_CHAIN = "filter chain"
    ROUTE_CONFIG = "route config"
    VIRTUAL_HOST = "virtual host"
    ROUTE_SKIPPED = "route (no match)"
    ROUTE = "route"
    POLICY = "timeout/retries"
    FAULT = "fault"
    AUTHORIZATION = "authorization"
    CLUSTER = "cluster"
    ENDPOINT = "endpoint"


class OutcomeKind(StrEnum):
    BACKEND = "backend"  # forwarded to an upstream cluster
    DENIED = "denied"  # RBAC: 403
    FAULT = "fault"  # fault abort
    DIRECT_RESPONSE = "direct response"
    REDIRECT = "redirect"
    NOT_FOUND = "not found"  # no virtual host / route: 404
    UNAVAILABLE = "unavailable"  # no cluster / no endpoint: 503
    CONNECTION_FAILED = "connection failed"  # no listener / filter chain


@dataclass(frozen=True)
class Step:
    kind: StepKind
    name: str
    detail: str = ""
    source: ObjectRef | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.kind.value,
            "name": self.name,
            "detail": self.detail,
            "source": str(self.source) if self.source is not None else "",
            **({"data": dict(self.data)} if self.data else {}),
        }


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    status: int = 0  # the HTTP status Envoy answers itself (0: the backend answers)
    reason: str = ""
    clusters: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()  # the ip:port the request may reach
    fault_statuses: tuple[int, ...] = ()  # a partial fault abort may answer these instead

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "status": self.status,
            "reason": self.reason,
            "clusters": list(self.clusters),
            "endpoints": list(self.endpoints),
            "faultStatuses": list(self.fault_statuses),
        }


@dataclass(frozen=True)
class Explanation:
    proxy: str
    request: ExplainRequest
    steps: tuple[Step, ...]
    outcome: Outcome

    def as_json(self) -> dict[str, Any]:
        return {
            "proxy": self.proxy,
            "request": self.request.as_json(),
            "steps": [s.as_json() for s in self.steps],
            "outcome": self.outcome.as_json(),
        }


def _service_ref(push: PushContext, host: str) -> ObjectRef | None:
    name = host.rsplit(":", 1)[0].lower()
    for svc in push.services.services:
        if svc.hostname.lower() == name:
            if svc.source is not None:
                return ObjectRef(svc.source.kind.value, svc.source.namespace, svc.source.name)
            return ObjectRef("Service", svc.namespace, svc.name)
    return None


class _Explainer:
    def __init__(
        self, resources: ProxyResources, proxy: Proxy, push: PushContext, request: ExplainRequest
    ) -> None:
        self.sim = Simulation(resources)
        self.resources = resources
        self.proxy = proxy
        self.push = push
        self.request = request
        self.steps: list[Step] = []

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.steps.append(Step(*args, **kwargs))

    def run(self) -> Outcome:
        call = to_call(self.request, self.proxy, self.push, self.resources.listeners)
        result = self.sim.run(call)
        if result.listener:
            detail = f"{call.mode.value} call to {call.address}:{call.port}"
            if call.address == UNKNOWN_DESTINATION:
                detail += " (the host has no service address)"
            self.add(StepKind.LISTENER, result.listener, detail, self._listener_source())
        if result.filter_chain or result.chain_proto is not None:
            self.add(StepKind.FILTER_CHAIN, result.filter_chain or "(unnamed)")
        if result.error in _CONNECTION_ERRORS or (result.error is None and not result.listener):
            reason = result.error.value if result.error is not None else "no listener"
            return Outcome(OutcomeKind.CONNECTION_FAILED, reason=reason)
        route = self._routing(call, result)
        denied = self._authorization(call, result)
        if denied is not None:
            return denied
        return self._router(call, result, route)

    def _listener_source(self) -> ObjectRef | None:
        if self.proxy.type is NodeType.ROUTER:
            return None
        sidecar = self.push.sidecar_config(self.proxy.namespace, self.proxy.labels)
        return ObjectRef("Sidecar", sidecar.namespace, sidecar.name) if sidecar else None

    # ---- routing ------------------------------------------------------------------------

    def _routing(self, call: Call, result: Result) -> Any | None:
        if result.route_config:
            self.add(StepKind.ROUTE_CONFIG, result.route_config)
            config = self.resources.routes.get(result.route_config)
        else:
            config = _inline_route_config(result.chain_proto)
            if config is not None:
                self.add(StepKind.ROUTE_CONFIG, config.name or "(inline)", "inline")
        if config is None or not result.virtual_host:
            return None
        vhost = match_virtual_host(config, call.host)
        if vhost is None:
            return None
        domains = ", ".join(list(vhost.domains)[:4])
        source = _service_ref(self.push, vhost.name) or _first_route_source(vhost)
        self.add(StepKind.VIRTUAL_HOST, vhost.name, f"domains {domains}", source)
        headers = call.request_headers()
        for route in vhost.routes:
            if route_matches(route, headers):
                break
            why = describe.route_mismatch(route, headers)
            self.add(
                StepKind.ROUTE_SKIPPED, route.name or "(unnamed)", why, describe.config_ref(route)
            )
        route = result.route_proto
        if route is None:
            return None
        source = describe.config_ref(route)
        action = route.WhichOneof("action")
        detail = f"match {describe.describe_match(route.match)} → {action.replace('_', ' ')}"
        self.add(StepKind.ROUTE, route.name or "(unnamed)", detail, source)
        if action == "route":
            policy = describe.route_policy(route)
            if policy:
                self.add(
                    StepKind.POLICY, route.name or "(unnamed)", _policy_text(policy), source, policy
                )
        fault = describe.route_fault(route)
        if fault is not None:
            text = []
            if fault.abort_status:
                text.append(f"abort {fault.abort_status} for {fault.abort_percent:g}%")
            if fault.delay_seconds:
                text.append(f"delay {fault.delay_seconds:g}s for {fault.delay_percent:g}%")
            self.add(StepKind.FAULT, route.name or "(unnamed)", ", ".join(text), source)
        return route

    # ---- authorization --------------------------------------------------------------------

    def _authorization(self, call: Call, result: Result) -> Outcome | None:
        chain = result.chain_proto
        if chain is None:
            return None
        request = AuthzRequest(
            destination_port=call.port,
            destination_ip=call.address,
            source_ip=self.request.source_ip,
            headers=call.request_headers(),
            peer_principal=self.request.source_principal,
        )
        decision = authorize(chain, request)
        if not decision.evaluated:
            return None
        rule = describe.policy_rule(decision.decided_by) if decision.decided_by else None
        source = rule.policy if rule is not None else None
        rule_text = f" (rule {rule.rule})" if rule is not None else ""
        if decision.allowed:
            why = f"allowed by {source}{rule_text}" if source else "allowed: no policy denies"
            self.add(StepKind.AUTHORIZATION, "ALLOW", why, source)
            return None
        if decision.denied_by == "DENY":
            why = f"denied by DENY policy {source}{rule_text}"
        elif decision.denied_by == "ALLOW":
            why = "denied: no ALLOW policy matches"
        else:
            why = "denied by the external authorizer"
        self.add(StepKind.AUTHORIZATION, "DENY", why, source)
        return Outcome(OutcomeKind.DENIED, 403, why)

    # ---- router -------------------------------------------------------------------------

    def _router(self, call: Call, result: Result, route: Any | None) -> Outcome:
        if result.error in (Error.NO_VIRTUAL_HOST, Error.NO_ROUTE, Error.NO_ROUTE_CONFIG):
            return Outcome(OutcomeKind.NOT_FOUND, 404, result.error.value)
        if result.error is Error.TLS_REDIRECT:
            return Outcome(OutcomeKind.REDIRECT, 301, result.error.value)
        fault = describe.route_fault(route) if route is not None else None
        partial: tuple[int, ...] = ()
        if fault is not None and fault.abort_status and fault.abort_percent > 0:
            if fault.abort_percent >= 100:
                why = f"fault abort {fault.abort_status}"
                return Outcome(OutcomeKind.FAULT, fault.abort_status, why)
            partial = (fault.abort_status,)
        if result.direct_response:
            return Outcome(OutcomeKind.DIRECT_RESPONSE, result.direct_response, "direct response")
        if result.redirect and route is not None:
            status = describe.REDIRECT_STATUS.get(route.redirect.response_code, 301)
            return Outcome(OutcomeKind.REDIRECT, status, f"redirect to {result.redirect}")
        if result.error is Error.NO_CLUSTER:
            return Outcome(OutcomeKind.UNAVAILABLE, 503, f"cluster {result.cluster} not found")
        weights = dict(result.weighted_clusters) or (
            {result.cluster: 100} if result.cluster else {}
        )
        steps, endpoints = cluster_steps(
            self.sim, call, weights, lambda host: _service_ref(self.push, host)
        )
        for kind, name, detail, source, data in steps:
            self.add(StepKind(kind), name, detail, source, data)
        if not endpoints:
            return Outcome(OutcomeKind.UNAVAILABLE, 503, "no healthy upstream", tuple(weights))
        return Outcome(
            OutcomeKind.BACKEND, 0, "forwarded upstream", tuple(weights), endpoints, partial
        )


def _inline_route_config(chain: Any | None) -> Any | None:
    """The route configuration an HTTP connection manager carries inline (inbound chains)."""
    for f in chain.filters if chain is not None else ():
        if f.typed_config.type_url == HCM_TYPE:
            hcm = hcm_pb2.HttpConnectionManager()
            f.typed_config.Unpack(hcm)
            return hcm.route_config if hcm.HasField("route_config") else None
    return None


def _first_route_source(vhost: Any) -> ObjectRef | None:
    for route in vhost.routes:
        ref = describe.config_ref(route)
        if ref is not None:
            return ref
    return None


def _policy_text(policy: Mapping[str, Any]) -> str:
    parts = []
    if "timeout" in policy:
        parts.append(f"timeout {policy['timeout']}")
    retries = policy.get("retries")
    if retries:
        parts.append(f"{retries['attempts']} retries on {retries['retryOn'] or '(none)'}")
    return ", ".join(parts)


def explain(
    resources: ProxyResources, proxy: Proxy, push: PushContext, request: ExplainRequest
) -> Explanation:
    explainer = _Explainer(resources, proxy, push, request)
    outcome = explainer.run()
    return Explanation(proxy.id, request, tuple(explainer.steps), outcome)
