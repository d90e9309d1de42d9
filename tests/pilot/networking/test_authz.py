"""AuthorizationPolicy filters in generated listeners: which chains carry them, in what order,
who gets none, and which changes push them."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from pilot.model.push_request import PushRequest, TriggerReason
from pilot.networking.authz import rbac_http_filters
from pilot.networking.policy_filters import inbound_http_filters, inbound_network_filters
from pilot.xds.generators import default_generators
from pilot.xds.proxy_dependencies import proxy_needs_push
from pkg.config.model import ConfigKey, Kind
from pkg.xds import typeurls
from tests.helpers.xds import HCM_TYPE, FakeDiscovery, ProxySpec

TOPOLOGY = """
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: foo}
spec:
  clusterIP: 10.96.1.1
  selector: {app: httpbin}
  ports:
  - {name: http, port: 8000, targetPort: 80}
  - {name: tcp-raw, port: 9000}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin-v1, namespace: foo}
spec:
  address: 10.1.0.1
  labels: {app: httpbin, version: v1}
  serviceAccount: httpbin
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: sleep, namespace: foo}
spec:
  address: 10.1.0.2
  labels: {app: sleep}
  serviceAccount: sleep
---
apiVersion: v1
kind: Service
metadata: {name: ext-authz, namespace: foo}
spec:
  clusterIP: 10.96.1.2
  ports:
  - {name: grpc, port: 9000}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"""

POLICIES = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  rules: [{to: [{operation: {methods: ["GET"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin"], ports: ["80"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-all, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: AUDIT
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: CUSTOM
  provider: {name: grpc-authz}
  rules: [{to: [{operation: {ports: ["9000"]}}]}]
"""

MESH = {
    "extensionProviders": [
        {
            "name": "grpc-authz",
            "envoyExtAuthzGrpc": {"service": "foo/ext-authz.foo.svc.cluster.local", "port": 9000},
        }
    ]
}

HTTPBIN = ProxySpec(
    name="httpbin-v1.foo", ip="10.1.0.1", service_account="httpbin", authenticated=True
)
SLEEP = ProxySpec(name="sleep.foo", ip="10.1.0.2", service_account="sleep", authenticated=True)
GATEWAY = ProxySpec(
    type="router", name="ingress.istio-system", ip="10.1.0.9", labels={"istio": "ingressgateway"}
)
HTTP_ORDER = [
    "envoy.filters.http.rbac",  # CUSTOM (shadow)
    "envoy.filters.http.ext_authz",
    "envoy.filters.http.rbac",  # AUDIT
    "envoy.filters.http.rbac",  # DENY
    "envoy.filters.http.rbac",  # ALLOW
    "envoy.filters.http.fault",
    "envoy.filters.http.cors",
    "envoy.filters.http.router",
]
BASE_HTTP = HTTP_ORDER[-3:]
TCP_ORDER = [
    "envoy.filters.network.rbac",  # CUSTOM (shadow)
    "envoy.filters.network.ext_authz",
    "envoy.filters.network.rbac",  # AUDIT
    "envoy.filters.network.rbac",  # DENY
    "envoy.filters.network.rbac",  # ALLOW
    "envoy.filters.network.tcp_proxy",
]


def discovery(with_policies: bool = True) -> FakeDiscovery:
    return FakeDiscovery(TOPOLOGY + (POLICIES if with_policies else ""), mesh=MESH)


def chain_filters(listener: Any) -> dict[str, list[list[str]]]:
    """Chain name → for each chain of that name, its filter names (HTTP filters for HCMs)."""
    out: dict[str, list[list[str]]] = {}
    for chain in listener.filter_chains:
        names = []
        for f in chain.filters:
            if f.typed_config.type_url == HCM_TYPE:
                hcm = hcm_pb2.HttpConnectionManager()
                f.typed_config.Unpack(hcm)
                names += [h.name for h in hcm.http_filters]
            else:
                names.append(f.name)
        out.setdefault(chain.name, []).append(names)
    return out


def test_every_inbound_chain_carries_the_filters_in_istio_order() -> None:
    listeners = discovery().resources(HTTPBIN).listeners
    chains = chain_filters(listeners["virtualInbound"])
    assert chains["virtualInbound-blackhole"] == [["envoy.filters.network.tcp_proxy"]]
    # port 80 (HTTP): mTLS and plaintext HTTP chains
    assert chains["0.0.0.0_80"] == [HTTP_ORDER, HTTP_ORDER]
    # port 9000 (TCP): mTLS, TLS passthrough and plaintext TCP chains
    assert chains["0.0.0.0_9000"] == [TCP_ORDER] * 3
    # passthrough chains for undeclared ports, HTTP and TCP
    assert chains["virtualInbound-catchall-http"] == [HTTP_ORDER, HTTP_ORDER]
    assert chains["virtualInbound"] == [TCP_ORDER] * 3


def test_outbound_listeners_have_no_authorization_filters() -> None:
    listeners = discovery().resources(HTTPBIN).listeners
    for name, listener in listeners.items():
        if name == "virtualInbound":
            continue
        for filters in (f for fs in chain_filters(listener).values() for f in fs):
            assert not any("rbac" in f or "ext_authz" in f for f in filters), name


def test_unselected_and_policy_free_proxies_get_no_filters() -> None:
    # sleep is only under the mesh-wide DENY policy
    sleep = chain_filters(discovery().resources(SLEEP).listeners["virtualInbound"])
    assert sleep["virtualInbound-catchall-http"][0] == ["envoy.filters.http.rbac", *BASE_HTTP]
    bare = chain_filters(
        discovery(with_policies=False).resources(HTTPBIN).listeners["virtualInbound"]
    )
    assert bare["0.0.0.0_80"] == [BASE_HTTP, BASE_HTTP]
    assert bare["0.0.0.0_9000"] == [["envoy.filters.network.tcp_proxy"]] * 3


def test_gateways_get_the_http_filters() -> None:
    listeners = discovery().resources(GATEWAY).listeners
    assert chain_filters(listeners["0.0.0.0_80"])["http.80"] == [
        ["envoy.filters.http.rbac", *BASE_HTTP]
    ]


def test_filters_are_built_once_per_push_and_workload() -> None:
    found = discovery()
    view = found.view(HTTPBIN)
    first = rbac_http_filters(view)
    assert [id(f) for f in first] == [id(f) for f in rbac_http_filters(view)]
    assert [f.name for f in inbound_http_filters(view)] == HTTP_ORDER[:5]
    assert [f.name for f in inbound_network_filters(view)] == TCP_ORDER[:5]


# ---- push dependencies ----------------------------------------------------------------------


def change(namespace: str) -> PushRequest:
    return PushRequest.of(
        [ConfigKey(Kind.AUTHORIZATION_POLICY, "p", namespace)], TriggerReason.CONFIG
    )


def test_a_policy_change_pushes_listeners_only() -> None:
    generators = default_generators()
    pushed = {url for url, gen in generators.items() if gen.needs_push(change("foo"))}
    assert typeurls.LISTENER in pushed
    assert not pushed & {typeurls.CLUSTER, typeurls.ENDPOINT, typeurls.ROUTE}


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [("foo", True), ("istio-system", True), ("bar", False)],
)
def test_a_policy_change_concerns_its_namespace_and_the_root_namespace(
    namespace: str, expected: bool
) -> None:
    view = discovery().view(HTTPBIN)
    assert proxy_needs_push(view, change(namespace)) is expected
