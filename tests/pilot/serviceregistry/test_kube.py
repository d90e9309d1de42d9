"""Kubernetes Service + EndpointSlice documents → services and endpoints, as Istio builds them."""

from __future__ import annotations

from pilot.model.endpoint import HealthStatus
from pilot.model.service import Protocol, Registry, Resolution
from pilot.serviceregistry.aggregate import build_registry
from pkg.config.model import Kind
from tests.helpers.ads import parse_all

DOCS = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default, labels: {app: reviews}}
spec:
  clusterIP: 10.96.0.20
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 9080}
  - {name: grpc-api, port: 9090, targetPort: 19090}
  - {name: metrics, port: 15014, appProtocol: http}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-abc
  namespace: default
  labels: {kubernetes.io/service-name: reviews}
addressType: IPv4
ports:
- {name: http, port: 9080}
- {name: grpc-api, port: 19090}
endpoints:
- addresses: [10.1.0.5]
  conditions: {ready: true}
  zone: zone-a
  targetRef: {kind: Pod, name: reviews-v1-abc, namespace: default}
- addresses: [10.1.0.6]
  conditions: {ready: false, serving: false, terminating: false}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec:
  clusterIP: None
  ports: [{name: tcp-mysql, port: 3306}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  type: ExternalName
  externalName: api.example.com
  ports: [{name: https, port: 443}]
"""


def registry() -> dict[str, object]:
    configs = parse_all(DOCS)
    by_kind: dict[Kind, tuple[object, ...]] = {}
    for c in configs:
        by_kind[c.key.kind] = (*by_kind.get(c.key.kind, ()), c)
    snapshot = build_registry(by_kind, "cluster.local", "cluster.local")  # type: ignore[arg-type]
    return {"snapshot": snapshot, "services": {s.hostname: s for s in snapshot.services}}


def test_service_hostnames_protocols_and_addresses() -> None:
    services = registry()["services"]
    reviews = services["reviews.default.svc.cluster.local"]  # type: ignore[index]
    assert reviews.registry is Registry.KUBERNETES
    assert reviews.address == "10.96.0.20"
    assert [(p.name, p.port, p.protocol) for p in reviews.ports] == [
        ("http", 9080, Protocol.HTTP),
        ("grpc-api", 9090, Protocol.GRPC),
        ("metrics", 15014, Protocol.HTTP),  # appProtocol wins over the name
    ]
    db = services["db.data.svc.cluster.local"]  # type: ignore[index]
    assert db.headless and db.resolution is Resolution.PASSTHROUGH and not db.has_vip
    ext = services["ext.default.svc.cluster.local"]  # type: ignore[index]
    assert ext.external_name == "api.example.com" and ext.resolution is Resolution.DNS_LB


def test_endpoint_slices_map_ports_by_name_and_readiness() -> None:
    snapshot = registry()["snapshot"]
    endpoints = snapshot.endpoints[("reviews.default.svc.cluster.local", "default")]  # type: ignore[attr-defined]
    rows = sorted((e.address, e.port, e.service_port_name, e.health) for e in endpoints)
    assert rows == [
        ("10.1.0.5", 9080, "http", HealthStatus.HEALTHY),
        ("10.1.0.5", 19090, "grpc-api", HealthStatus.HEALTHY),
        ("10.1.0.6", 9080, "http", HealthStatus.UNHEALTHY),
        ("10.1.0.6", 19090, "grpc-api", HealthStatus.UNHEALTHY),
    ]
    ready = next(e for e in endpoints if e.address == "10.1.0.5")
    assert ready.workload_name == "reviews-v1-abc"
    assert ready.locality == "/zone-a"
