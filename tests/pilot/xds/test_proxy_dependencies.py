"""Which changes concern which proxies (pushes to others are skipped)."""

from __future__ import annotations

import pytest

from pilot.model.push_request import PushRequest, TriggerReason
from pilot.xds.proxy_dependencies import proxy_needs_push
from pkg.config.model import ConfigKey, Kind
from tests.helpers.xds import FakeDiscovery, ProxySpec

CONFIGS = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: scoped, namespace: a}
spec:
  egress: [{hosts: ["./*", "istio-system/*"]}]
"""

SCOPED = ProxySpec(name="app.a", ip="10.0.0.1")
OPEN = ProxySpec(name="app.b", ip="10.0.0.2")
GATEWAY = ProxySpec(type="router", name="gw.istio-system", ip="10.0.0.3")


def change(kind: Kind, namespace: str, name: str = "x") -> PushRequest:
    return PushRequest.of([ConfigKey(kind, name, namespace)], TriggerReason.CONFIG)


@pytest.mark.parametrize(
    ("proxy", "request_", "expected"),
    [
        (SCOPED, change(Kind.GATEWAY, "a"), False),
        (GATEWAY, change(Kind.GATEWAY, "a"), True),
        (GATEWAY, change(Kind.SIDECAR, "istio-system"), False),
        (SCOPED, change(Kind.SIDECAR, "b"), False),
        (SCOPED, change(Kind.SIDECAR, "a"), True),
        (OPEN, change(Kind.SIDECAR, "istio-system"), True),  # mesh-wide default Sidecar
        (SCOPED, change(Kind.PEER_AUTHENTICATION, "b"), False),
        (SCOPED, change(Kind.VIRTUAL_SERVICE, "b"), False),  # not imported by the scope
        (SCOPED, change(Kind.VIRTUAL_SERVICE, "a"), True),
        (OPEN, change(Kind.VIRTUAL_SERVICE, "c"), True),  # imports every namespace
        (SCOPED, change(Kind.DESTINATION_RULE, "b"), True),  # may apply via a route to b
        (SCOPED, change(Kind.ENDPOINTS, "b"), True),
        # A credentialName Secret concerns the proxies of its namespace only.
        (GATEWAY, change(Kind.SECRET, "istio-system", "gw-cert"), True),
        (GATEWAY, change(Kind.SECRET, "a", "gw-cert"), False),
        (SCOPED, change(Kind.SECRET, "istio-system", "gw-cert"), False),
    ],
)
def test_proxy_needs_push(proxy: ProxySpec, request_: PushRequest, expected: bool) -> None:
    discovery = FakeDiscovery(CONFIGS)
    assert proxy_needs_push(discovery.view(proxy), request_) is expected


def test_forced_and_mixed_requests_push() -> None:
    view = FakeDiscovery(CONFIGS).view(SCOPED)
    forced = PushRequest.of([], TriggerReason.DEBUG, forced=True)
    assert proxy_needs_push(view, forced)
    mixed = change(Kind.GATEWAY, "a").merge(change(Kind.VIRTUAL_SERVICE, "a"))
    assert proxy_needs_push(view, mixed)


ROOT_WITH_DELEGATE = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: a}
spec:
  hosts: [reviews.a.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /v2}}]
    delegate: {name: reviews-v2, namespace: b}
"""


def test_delegate_in_an_unimported_namespace_concerns_its_roots_proxies() -> None:
    # The scoped proxy imports only a and istio-system, but its root VirtualService in `a`
    # delegates to b/reviews-v2: a change (or deletion) there changes its routes.
    view = FakeDiscovery([CONFIGS, ROOT_WITH_DELEGATE]).view(SCOPED)
    assert proxy_needs_push(view, change(Kind.VIRTUAL_SERVICE, "b", "reviews-v2"))
    assert not proxy_needs_push(view, change(Kind.VIRTUAL_SERVICE, "b", "other"))
