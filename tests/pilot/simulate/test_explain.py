"""`pilot.simulate.explain` on generated config: each step names the Istio object it came
from (ServiceEntry, VirtualService, DestinationRule, AuthorizationPolicy rule, Sidecar), the
routes that did not match say why, and the outcome is what Envoy's filter order gives."""

from __future__ import annotations

from typing import Any

import pytest

from pilot.simulate.explain import Explanation, OutcomeKind, StepKind, explain
from pilot.simulate.request import RequestError, parse_request
from tests.helpers.explain_config import explain_config
from tests.helpers.xds import FakeDiscovery, ProxySpec

REVIEWS = {"v1": ("10.1.0.1", 9080), "v2": ("10.1.0.2", 9080), "v3": ("10.1.0.3", 9080)}
DETAILS = ("10.2.0.1", 9080)
BLOCKED = "10.9.9.9"
SIDECAR = ProxySpec(ip="10.0.0.1", name="ratings-v1.default", labels={"app": "ratings"})
NONE_SIDECAR = ProxySpec(
    ip="10.0.0.2",
    name="productpage-v2.default",
    labels={"app": "productpage"},
    interception_mode="NONE",
)
GATEWAY = ProxySpec(
    type="router", ip="10.0.0.9", name="gw.istio-system", labels={"istio": "ingressgateway"}
)
TRUSTED = "spiffe://cluster.local/ns/default/sa/trusted"
ALLOW_TRUSTED = """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-trusted, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/trusted]}}]
"""


@pytest.fixture(scope="module")
def discovery() -> FakeDiscovery:
    return FakeDiscovery(explain_config(REVIEWS, DETAILS, BLOCKED, sidecar_bind="10.0.0.2"))


def run(discovery: FakeDiscovery, spec: ProxySpec, url: str, **body: Any) -> Explanation:
    resources = discovery.resources(spec)
    request = parse_request({"url": url, **body})
    return explain(resources, resources.view.proxy, discovery.push, request)


def steps(result: Explanation, kind: StepKind) -> list[Any]:
    return [s for s in result.steps if s.kind is kind]


def source(result: Explanation, kind: StepKind) -> str:
    found = steps(result, kind)
    assert found, [s.as_json() for s in result.steps]
    return str(found[0].source)


def test_header_route_names_service_entry_virtual_service_and_destination_rule(
    discovery: FakeDiscovery,
) -> None:
    result = run(discovery, SIDECAR, "http://reviews:9080/api", headers={"End-User": "jason"})
    assert source(result, StepKind.VIRTUAL_HOST) == "ServiceEntry/default/reviews"
    assert source(result, StepKind.ROUTE) == "VirtualService/default/reviews"
    assert steps(result, StepKind.ROUTE)[0].name == "jason"
    assert source(result, StepKind.CLUSTER) == "DestinationRule/default/reviews"
    cluster = steps(result, StepKind.CLUSTER)[0]
    assert cluster.data["subset"] == "v2" and cluster.data["lbPolicy"] == "ROUND_ROBIN"
    details = run(discovery, SIDECAR, "http://reviews:9080/details")
    assert source(details, StepKind.CLUSTER) == "ServiceEntry/default/details"
    endpoint = steps(result, StepKind.ENDPOINT)[0]
    assert endpoint.name == "10.1.0.2:9080"
    assert endpoint.data["health"] == "HEALTHY" and endpoint.data["tls"] == "plaintext"
    assert result.outcome.kind is OutcomeKind.BACKEND
    assert result.outcome.endpoints == ("10.1.0.2:9080",)


def test_earlier_routes_say_why_they_did_not_match(discovery: FakeDiscovery) -> None:
    result = run(discovery, SIDECAR, "http://reviews:9080/details/1", headers={"end-user": "bob"})
    skipped = {s.name: s.detail for s in steps(result, StepKind.ROUTE_SKIPPED)}
    assert list(skipped) == ["jason", "submit", "fault", "flaky", "moved", "gone"]
    assert skipped["jason"] == 'header end-user "bob" does not match exact "jason"'
    assert skipped["submit"] == "path /details/1 does not match prefix /submit"
    assert skipped["moved"] == "path /details/1 does not match path /old"
    assert {str(s.source) for s in steps(result, StepKind.ROUTE_SKIPPED)} == {
        "VirtualService/default/reviews"
    }
    assert steps(result, StepKind.ROUTE)[0].name == "details"
    assert result.outcome.endpoints == ("10.2.0.1:9080",)

    post = run(discovery, SIDECAR, "http://reviews:9080/submit", method="POST")
    assert steps(post, StepKind.ROUTE)[0].name == "submit"
    get = run(discovery, SIDECAR, "http://reviews:9080/submit")
    why = {s.name: s.detail for s in steps(get, StepKind.ROUTE_SKIPPED)}["submit"]
    assert why == 'header :method "GET" does not match exact "POST"'


def test_weighted_route_with_retries_and_timeout(discovery: FakeDiscovery) -> None:
    result = run(discovery, SIDECAR, "http://reviews.default.svc.cluster.local:9080/")
    policy = steps(result, StepKind.POLICY)[0]
    assert policy.data == {
        "timeout": "5s",
        "retries": {"attempts": 2, "retryOn": "5xx", "perTryTimeout": "2s"},
    }
    assert str(policy.source) == "VirtualService/default/reviews"
    weights = {s.data["subset"]: s.data["weight"] for s in steps(result, StepKind.CLUSTER)}
    assert weights == {"v1": "50%", "v3": "50%"}
    assert result.outcome.endpoints == ("10.1.0.1:9080", "10.1.0.3:9080")


@pytest.mark.parametrize(
    ("path", "kind", "status"),
    [
        ("/fault/x", OutcomeKind.FAULT, 418),
        ("/old", OutcomeKind.REDIRECT, 301),
        ("/gone", OutcomeKind.DIRECT_RESPONSE, 410),
    ],
)
def test_envoy_answers_itself(
    discovery: FakeDiscovery, path: str, kind: OutcomeKind, status: int
) -> None:
    for spec, url in ((SIDECAR, "http://reviews"), (GATEWAY, "http://bookinfo.example.com")):
        result = run(discovery, spec, url + path, port=9080 if spec is SIDECAR else 8080)
        assert (result.outcome.kind, result.outcome.status) == (kind, status), result.outcome


def test_partial_fault_predicts_both(discovery: FakeDiscovery) -> None:
    result = run(discovery, SIDECAR, "http://reviews:9080/flaky")
    assert steps(result, StepKind.FAULT)[0].detail == "abort 503 for 50%"
    assert result.outcome.kind is OutcomeKind.BACKEND
    assert result.outcome.fault_statuses == (503,)


def test_none_mode_sidecar_lands_on_its_bound_listener(discovery: FakeDiscovery) -> None:
    result = run(discovery, NONE_SIDECAR, "http://reviews:9080/")
    listener = steps(result, StepKind.LISTENER)[0]
    assert listener.name == "10.0.0.2_9080"
    assert str(listener.source) == "Sidecar/default/productpage"


def test_gateway_deny_names_the_policy_rule(discovery: FakeDiscovery) -> None:
    url = "http://bookinfo.example.com/admin/users"
    by_path = run(discovery, GATEWAY, url, port=8080)
    authz = steps(by_path, StepKind.AUTHORIZATION)[0]
    assert str(authz.source) == "AuthorizationPolicy/istio-system/deny-admin"
    assert "(rule 0)" in authz.detail
    assert (by_path.outcome.kind, by_path.outcome.status) == (OutcomeKind.DENIED, 403)

    by_ip = run(discovery, GATEWAY, "http://bookinfo.example.com/", port=8080, sourceIP=BLOCKED)
    assert "(rule 1)" in steps(by_ip, StepKind.AUTHORIZATION)[0].detail
    # RBAC runs before the router: a path with no route is still denied first.
    other = run(discovery, GATEWAY, "http://nope.example.com/", port=8080, sourceIP=BLOCKED)
    assert other.outcome.status == 403
    allowed = run(discovery, GATEWAY, "http://bookinfo.example.com/details", port=8080)
    assert steps(allowed, StepKind.AUTHORIZATION)[0].name == "ALLOW"
    assert allowed.outcome.endpoints == ("10.2.0.1:9080",)
    missing = run(discovery, GATEWAY, "http://nope.example.com/", port=8080)
    assert (missing.outcome.kind, missing.outcome.status) == (OutcomeKind.NOT_FOUND, 404)


def test_source_principal_decides_an_allow_policy() -> None:
    config = explain_config(REVIEWS, DETAILS, BLOCKED) + ALLOW_TRUSTED
    discovery = FakeDiscovery(config)
    url = "http://bookinfo.example.com/details"
    trusted = run(discovery, GATEWAY, url, port=8080, sourcePrincipal=TRUSTED)
    authz = steps(trusted, StepKind.AUTHORIZATION)
    assert [str(s.source) for s in authz] == ["AuthorizationPolicy/istio-system/only-trusted"]
    assert trusted.outcome.kind is OutcomeKind.BACKEND
    anonymous = run(discovery, GATEWAY, url, port=8080)
    assert steps(anonymous, StepKind.AUTHORIZATION)[0].detail == ("denied: no ALLOW policy matches")
    assert anonymous.outcome.status == 403


def test_json_names_sources_as_kind_namespace_name(discovery: FakeDiscovery) -> None:
    data = run(discovery, SIDECAR, "http://reviews:9080/api").as_json()
    assert data["outcome"]["kind"] == "backend"
    sources = {s["step"]: s["source"] for s in data["steps"]}
    assert sources["route"] == "VirtualService/default/reviews"
    assert data["request"]["url"] == "http://reviews:9080/api"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": "ftp://x/"}, '"url"'),
        ({"url": "http://x:99999/"}, "invalid port"),
        ({"url": "http://x/", "method": "FETCH"}, '"method"'),
        ({"url": "http://x/", "headers": {"a": 1}}, '"headers"'),
        ({"url": "http://x/", "sourceIP": "10.0.0"}, '"sourceIP"'),
        ({"url": "http://x/", "port": 70000}, '"port"'),
        ({"url": "http://x/", "inbound": "yes"}, '"inbound"'),
        ([], "JSON object"),
    ],
)
def test_bad_requests_name_the_field(body: Any, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parse_request(body)


REVIEWS_VIEWER = """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/productpage]}}]
    to: [{operation: {methods: [GET]}}]
"""
REVIEWS_V1 = ProxySpec(
    ip="10.1.0.1",
    name="reviews-v1.default",
    labels={"app": "reviews", "version": "v1"},
    service_account="reviews",
    authenticated=True,
)
PRODUCTPAGE = "spiffe://cluster.local/ns/default/sa/productpage"


@pytest.mark.parametrize(
    ("method", "principal", "allowed"),
    [("GET", PRODUCTPAGE, True), ("POST", PRODUCTPAGE, False), ("GET", "", False)],
)
def test_inbound_call_is_authorized_by_principal_and_method(
    method: str, principal: str, allowed: bool
) -> None:
    discovery = FakeDiscovery(explain_config(REVIEWS, DETAILS, BLOCKED) + REVIEWS_VIEWER)
    result = run(
        discovery,
        REVIEWS_V1,
        "http://reviews:9080/",
        method=method,
        inbound=True,
        sourcePrincipal=principal,
    )
    assert steps(result, StepKind.LISTENER)[0].name == "virtualInbound"
    assert steps(result, StepKind.ROUTE_CONFIG)[0].detail == "inline"
    authz = steps(result, StepKind.AUTHORIZATION)[0]
    if allowed:
        assert str(authz.source) == "AuthorizationPolicy/default/reviews-viewer"
        assert result.outcome.kind is OutcomeKind.BACKEND
        assert result.outcome.clusters == ("inbound|9080||",)
    else:
        assert authz.detail == "denied: no ALLOW policy matches"
        assert result.outcome.status == 403


REVIEWS_INGRESS = """---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: default}
spec:
  workloadSelector: {labels: {app: reviews}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:9080
"""


@pytest.mark.parametrize(
    ("method", "principal", "allowed"),
    [("GET", PRODUCTPAGE, True), ("POST", PRODUCTPAGE, False)],
)
def test_none_mode_inbound_call_lands_on_the_listener_bound_on_its_ip(
    method: str, principal: str, allowed: bool
) -> None:
    """No iptables, no virtualInbound: the call reaches the ingress listener bound on the
    workload's own address (the bug: explain looked for virtualInbound and found none)."""
    config = explain_config(REVIEWS, DETAILS, BLOCKED) + REVIEWS_VIEWER + REVIEWS_INGRESS
    spec = ProxySpec(
        ip="10.1.0.1",
        name="reviews-v1.default",
        labels={"app": "reviews", "version": "v1"},
        service_account="reviews",
        authenticated=True,
        interception_mode="NONE",
    )
    result = run(
        FakeDiscovery(config),
        spec,
        "http://reviews:9080/",
        method=method,
        inbound=True,
        sourcePrincipal=principal,
    )
    assert steps(result, StepKind.LISTENER)[0].name == "10.1.0.1_9080"
    authz = steps(result, StepKind.AUTHORIZATION)[0]
    assert str(authz.source) == "AuthorizationPolicy/default/reviews-viewer" or not allowed
    expected = OutcomeKind.BACKEND if allowed else OutcomeKind.DENIED
    assert result.outcome.kind is expected, [s.as_json() for s in result.steps]
