"""Which endpoints EDS sends, by health (Istio's endpoint_builder filter): terminating never,
unhealthy only when the service sends unhealthy endpoints (PILOT_SEND_UNHEALTHY_ENDPOINTS)."""

from __future__ import annotations

from typing import Any

import pytest

from pilot.features import from_env
from pilot.model.proxy import parse_node
from pilot.model.proxy_view import proxy_view
from pilot.model.push_context import PushContext, PushInputs
from pilot.networking.endpoint import build_load_assignment
from pilot.serviceregistry.aggregate import build_registry
from pkg.config.model import Config, Kind
from pkg.config.schema import parse_object
from tests.helpers.kube import workloads as k

NS = "default"
CLUSTER = f"outbound|9080||reviews.{NS}.svc.cluster.local"


def sent(send_unhealthy: bool) -> dict[str, int]:
    """address → Envoy health status of what a proxy receives for the reviews cluster."""
    docs: list[dict[str, Any]] = [
        k.service("reviews", NS, [("http", 9080, 9080)]),
        k.endpoint_slice(
            "reviews",
            NS,
            [("http", 9080)],
            [
                k.slice_endpoint("10.1.0.1", "ready", NS),
                k.slice_endpoint("10.1.0.2", "notready", NS, ready=False),
                k.slice_endpoint("10.1.0.3", "going", NS, ready=False, terminating=True),
            ],
        ),
        k.pod("ready", NS, "10.1.0.1", {"app": "reviews"}),
        k.pod("notready", NS, "10.1.0.2", {"app": "reviews"}, ready=False),
        k.pod("going", NS, "10.1.0.3", {"app": "reviews"}, ready=False),
    ]
    by_kind: dict[Kind, tuple[Config[Any], ...]] = {}
    for doc in docs:
        config = parse_object(doc, observed=True).config
        assert config is not None
        by_kind[config.meta.kind] = (*by_kind.get(config.meta.kind, ()), config)
    snapshot = build_registry(
        by_kind, "cluster.local", "cluster.local", require_pods=True, send_unhealthy=send_unhealthy
    )
    push = PushContext.build(
        PushInputs(services=snapshot.services, endpoints=snapshot.endpoint_index())
    )
    proxy = parse_node(f"sidecar~10.9.0.1~client.{NS}~{NS}.svc.cluster.local", {})
    cla = build_load_assignment(proxy_view(proxy, push), CLUSTER)
    return {
        lb.endpoint.address.socket_address.address: lb.health_status
        for group in cla.endpoints
        for lb in group.lb_endpoints
    }


@pytest.mark.parametrize("send_unhealthy", [False, True])
def test_terminating_never_and_unhealthy_only_when_asked(send_unhealthy: bool) -> None:
    healthy, unhealthy = 1, 2  # envoy.config.core.v3.HealthStatus
    expected = {"10.1.0.1": healthy}
    if send_unhealthy:
        expected["10.1.0.2"] = unhealthy
    assert sent(send_unhealthy) == expected


def test_the_flag_is_istios() -> None:
    assert not from_env({}).send_unhealthy_endpoints
    assert from_env({"PILOT_SEND_UNHEALTHY_ENDPOINTS": "true"}).send_unhealthy_endpoints
