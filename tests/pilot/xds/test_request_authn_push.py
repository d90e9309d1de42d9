"""A RequestAuthentication change (or new keys for one) pushes listeners only, and only to the
proxies of its namespace (all of them for the root namespace)."""

from __future__ import annotations

from pilot.model.push_request import PushRequest, TriggerReason
from pilot.xds.generators import default_generators
from pilot.xds.proxy_dependencies import proxy_needs_push
from pkg.config.model import ConfigKey, Kind
from pkg.xds import typeurls
from tests.helpers.xds import FakeDiscovery, ProxySpec


def change(namespace: str) -> PushRequest:
    key = ConfigKey(Kind.REQUEST_AUTHENTICATION, "ra", namespace)
    return PushRequest.of([key], TriggerReason.CONFIG)


def test_only_listeners_are_regenerated() -> None:
    needs = {t: g.needs_push(change("default")) for t, g in default_generators().items()}
    assert needs == {
        typeurls.CLUSTER: False,
        typeurls.ENDPOINT: False,
        typeurls.LISTENER: True,
        typeurls.ROUTE: False,
        typeurls.SECRET: False,
    }


def test_only_proxies_the_policy_can_select() -> None:
    discovery = FakeDiscovery("")
    app = discovery.view(ProxySpec(name="app.default"))
    gateway = discovery.view(ProxySpec(type="router", name="gw.istio-system"))
    assert proxy_needs_push(app, change("default"))
    assert not proxy_needs_push(app, change("other"))
    assert not proxy_needs_push(gateway, change("default"))
    assert proxy_needs_push(app, change("istio-system"))
    assert proxy_needs_push(gateway, change("istio-system"))
