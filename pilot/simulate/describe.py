"""Readable descriptions of Envoy config pieces for `explain`, and their Istio provenance.

Provenance comes from what istiod puts in the generated resources: route and cluster metadata
`istio.config` (`/apis/networking.istio.io/v1/namespaces/NS/virtual-service/NAME`, see
`pilot.networking.naming.config_path`), cluster metadata `istio.subset` / `istio.services`, and
RBAC policy names `ns[NS]-policy[NAME]-rule[N]` (`naming.authz_policy_name`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf.json_format import MessageToDict

from pilot.simulate.match import header_matches, route_matches, split_path, string_matches

FAULT_FILTER = "envoy.filters.http.fault"
_KINDS = {
    "virtual-service": "VirtualService",
    "destination-rule": "DestinationRule",
    "gateway": "Gateway",
    "service-entry": "ServiceEntry",
    "sidecar": "Sidecar",
}
_CONFIG_PATH = re.compile(r"^/apis/[^/]+/[^/]+/namespaces/([^/]+)/([^/]+)/([^/]+)$")
_POLICY_NAME = re.compile(
    r"^(?:istio-ext-authz-.*-)?ns\[([^\]]*)\]-policy\[([^\]]*)\]-rule\[(\d+)\]$"
)
_DENOMINATORS = {
    percent_pb2.FractionalPercent.HUNDRED: 100,
    percent_pb2.FractionalPercent.TEN_THOUSAND: 10_000,
    percent_pb2.FractionalPercent.MILLION: 1_000_000,
}
# envoy.config.route.v3.RedirectAction.RedirectResponseCode → HTTP status.
REDIRECT_STATUS = {0: 301, 1: 302, 2: 303, 3: 307, 4: 308}


@dataclass(frozen=True)
class ObjectRef:
    """An Istio (or Kubernetes) object: kind/namespace/name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


def istio_metadata(message: Any) -> dict[str, Any]:
    """The `istio` filter metadata of a route or cluster, as plain values."""
    if not message.HasField("metadata"):
        return {}
    fields = message.metadata.filter_metadata.get("istio")
    return MessageToDict(fields) if fields is not None else {}


def config_ref(message: Any) -> ObjectRef | None:
    """The object named by a resource's `istio.config` metadata."""
    path = istio_metadata(message).get("config")
    found = _CONFIG_PATH.match(path) if isinstance(path, str) else None
    if found is None:
        return None
    namespace, kebab, name = found.groups()
    return ObjectRef(_KINDS.get(kebab, kebab), namespace, name)


@dataclass(frozen=True)
class PolicyRule:
    policy: ObjectRef
    rule: int


def policy_rule(name: str) -> PolicyRule | None:
    """The AuthorizationPolicy rule behind an RBAC policy name."""
    found = _POLICY_NAME.match(name)
    if found is None:
        return None
    namespace, policy, rule = found.groups()
    return PolicyRule(ObjectRef("AuthorizationPolicy", namespace, policy), int(rule))


def percent(fraction: Any) -> float:
    """A FractionalPercent as a percentage (0..100)."""
    denominator = _DENOMINATORS.get(fraction.denominator, 100)
    return min(100.0, 100.0 * float(fraction.numerator) / denominator)


@dataclass(frozen=True)
class Fault:
    abort_status: int = 0
    abort_percent: float = 0.0
    delay_seconds: float = 0.0
    delay_percent: float = 0.0


def route_fault(route: Any) -> Fault | None:
    """The fault a route injects (its per-route envoy.filters.http.fault config)."""
    config = route.typed_per_filter_config.get(FAULT_FILTER)
    if config is None:
        return None
    fault = fault_pb2.HTTPFault()
    config.Unpack(fault)
    abort = (0, 0.0)
    if fault.HasField("abort") and fault.abort.WhichOneof("error_type") == "http_status":
        abort = (fault.abort.http_status, percent(fault.abort.percentage))
    delay = (0.0, 0.0)
    if fault.HasField("delay") and fault.delay.HasField("fixed_delay"):
        delay = (
            fault.delay.fixed_delay.ToTimedelta().total_seconds(),
            percent(fault.delay.percentage),
        )
    return Fault(abort[0], abort[1], delay[0], delay[1])


def describe_match(match: Any) -> str:
    """`prefix /api, header end-user exact "jason"`."""
    which = match.WhichOneof("path_specifier")
    parts = []
    if which == "safe_regex":
        parts.append(f"regex {match.safe_regex.regex}")
    elif which == "path":
        parts.append(f"path {match.path}")
    elif which is not None:
        parts.append(f"{which.replace('_', ' ')} {getattr(match, which)}")
    for h in match.headers:
        parts.append(f"header {h.name} {_header_rule(h)}")
    for q in match.query_parameters:
        parts.append(f"query {q.name}")
    return ", ".join(parts) or "any"


def _header_rule(h: Any) -> str:
    which = h.WhichOneof("header_match_specifier")
    if which in (None, "present_match"):
        text = "present"
    elif which == "string_match":
        inner = h.string_match.WhichOneof("match_pattern") or "exact"
        value = getattr(h.string_match, inner)
        value = value.regex if inner == "safe_regex" else value
        text = f'{inner.replace("safe_", "")} "{value}"'
    else:
        text = which.replace("_match", "")
    return f"not {text}" if h.invert_match else text


def route_mismatch(route: Any, headers: Mapping[str, str]) -> str:
    """Why `route` did not match a request (the first criterion that failed)."""
    match = route.match
    path, params = split_path(headers.get(":path", "/"))
    probe = type(route)()
    probe.match.CopyFrom(match)
    del probe.match.headers[:]
    del probe.match.query_parameters[:]
    probe.match.ClearField("grpc")
    del probe.match.dynamic_metadata[:]
    if not route_matches(probe, {":path": path}):
        return f"path {path} does not match {describe_match(probe.match)}"
    for h in match.headers:
        if not header_matches(h, headers):
            value = headers.get(h.name.lower())
            seen = "missing" if value is None else f'"{value}"'
            return f"header {h.name} {seen} does not match {_header_rule(h)}"
    for q in match.query_parameters:
        value = params.get(q.name)
        if value is None:
            return f"query parameter {q.name} missing"
        if q.HasField("string_match") and not string_matches(q.string_match, value):
            return f'query parameter {q.name} "{value}" does not match'
    if match.HasField("grpc"):
        return "not a gRPC request"
    return "dynamic metadata (e.g. a JWT claim) not available"


def route_policy(route: Any) -> dict[str, Any]:
    """Timeout and retries of a route action, as shown to users."""
    action = route.route
    out: dict[str, Any] = {}
    if action.HasField("timeout"):
        seconds = action.timeout.ToTimedelta().total_seconds()
        out["timeout"] = f"{seconds:g}s" if seconds else "disabled"
    if action.HasField("retry_policy"):
        retry = action.retry_policy
        out["retries"] = {
            "attempts": retry.num_retries.value if retry.HasField("num_retries") else 1,
            "retryOn": retry.retry_on,
        }
        if retry.HasField("per_try_timeout"):
            per_try = retry.per_try_timeout.ToTimedelta().total_seconds()
            out["retries"]["perTryTimeout"] = f"{per_try:g}s"
    return out
