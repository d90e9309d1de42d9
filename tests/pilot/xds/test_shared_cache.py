"""The generation cache: answers shared by proxies with equal inputs, set versions that do not
depend on order, shared response bytes, and the verification mode that catches a cache key
missing an input (UNSAFE_PILOT_XDS_CACHE_VERIFY)."""

from __future__ import annotations

import random

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import discovery_pb2

from pilot.xds.generators import base, cds, default_generators, generators_for, rds
from pilot.xds.generators.verify import CacheMismatchError, verifying
from pilot.xds.resource_set import ResourceSet
from pilot.xds.wire import BuiltResource, VersionMap, set_version
from pkg.xds import typeurls
from tests.helpers.xds import FakeDiscovery, ProxySpec

SERVICES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.2}]
"""

# A rule for one workload only: the clusters a proxy gets depend on its labels.
SELECTED_RULE = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-v2-only, namespace: default}
spec:
  host: reviews.example.com
  workloadSelector: {matchLabels: {app: productpage}}
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 7}}}
"""

# A route that matches on the caller's labels: route configs depend on them.
SOURCE_LABELS_ROUTE = """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.example.com]
  http:
  - match: [{sourceLabels: {app: productpage}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: ratings.example.com}}]
  - route: [{destination: {host: ratings.example.com}}]
"""

A = ProxySpec(name="a.default", ip="10.0.0.1", labels={"app": "productpage"})
B = ProxySpec(name="b.default", ip="10.0.0.2", labels={"app": "details"})


def built(name: str, connect_ms: int = 1) -> BuiltResource:
    cluster = cluster_pb2.Cluster(name=name)
    cluster.connect_timeout.FromMilliseconds(connect_ms)
    return BuiltResource.pack(name, cluster)


# ---- versions ------------------------------------------------------------------------------


def test_set_version_is_a_function_of_the_set_not_its_order() -> None:
    pairs = [(f"r{i}", f"v{i}") for i in range(50)]
    shuffled = pairs[:]
    random.Random(7).shuffle(shuffled)
    assert set_version(pairs) == set_version(shuffled)
    assert set_version(pairs) != set_version(pairs[:-1])
    assert set_version(pairs) != set_version([*pairs[:-1], ("r49", "changed")])


def test_version_map_keeps_its_version_as_it_changes() -> None:
    versions = VersionMap([("a", "1"), ("b", "1")])
    versions["c"] = "1"
    versions["a"] = "2"
    del versions["b"]
    assert versions.pop("missing", None) is None
    assert versions.pop("c") == "1"
    versions.update({"d": "4", "e": "5"})
    assert versions.version == set_version(versions.items())
    versions.clear()
    assert versions.version == set_version([])


def test_resource_set_drops_repeated_names_and_joins_by_sums() -> None:
    one, two, three = built("one"), built("two"), built("three")
    first = ResourceSet([one, two, built("one", 9)])
    assert [r.name for r in first] == ["one", "two"]
    assert first.versions["one"] == one.version  # the first of a repeated name wins
    joined = ResourceSet.join(first, ResourceSet([three]))
    assert [r.name for r in joined] == ["one", "two", "three"]
    assert joined.version == ResourceSet([one, two, three]).version
    assert joined.version == set_version((r.name, r.version) for r in joined)
    overlapping = ResourceSet.join(first, ResourceSet([two, three]))
    assert [r.name for r in overlapping] == ["one", "two", "three"]
    assert overlapping.version == joined.version


def test_one_payload_per_push_shared_by_every_stream() -> None:
    resources = ResourceSet([built("one"), built("two")])
    payload = resources.sotw_payload(typeurls.CLUSTER, "nonce-1")
    assert resources.sotw_payload(typeurls.CLUSTER, "nonce-1") is payload
    response = discovery_pb2.DiscoveryResponse.FromString(payload)
    assert response.version_info == resources.version
    assert response.nonce == "nonce-1"
    assert response.type_url == typeurls.CLUSTER
    names = [cluster_pb2.Cluster.FromString(a.value).name for a in response.resources]
    assert names == ["one", "two"]
    delta = discovery_pb2.DeltaDiscoveryResponse.FromString(
        resources.delta_payload(typeurls.CLUSTER, "nonce-2")
    )
    assert [r.name for r in delta.resources] == ["one", "two"]
    assert delta.system_version_info == resources.version


# ---- sharing -------------------------------------------------------------------------------


def _generate(discovery: FakeDiscovery, spec: ProxySpec, type_url: str) -> object:
    gens = generators_for(discovery.proxy(spec), default_generators(None))
    return gens[type_url].generate(discovery.view(spec), None)


def test_proxies_with_equal_inputs_share_one_answer() -> None:
    discovery = FakeDiscovery(SERVICES)
    assert _generate(discovery, A, typeurls.CLUSTER) is _generate(discovery, B, typeurls.CLUSTER)
    # Listeners: the outbound side is shared by the namespace; the inbound side by workloads
    # with equal labels (policies select by them).
    replica = ProxySpec(name="a2.default", ip="10.0.0.3", labels=A.labels)
    a, b = (_generate(discovery, s, typeurls.LISTENER) for s in (A, replica))
    assert isinstance(a, ResourceSet) and isinstance(b, ResourceSet)
    assert a.version == b.version and all(x is y for x, y in zip(a, b, strict=True))
    names = frozenset({"80"})
    views = [discovery.view(s) for s in (A, B)]
    gen = rds.RdsGenerator()
    assert gen.generate(views[0], names) is gen.generate(views[1], names)


def test_label_dependent_inputs_split_the_shared_answer() -> None:
    discovery = FakeDiscovery(SERVICES + SELECTED_RULE + SOURCE_LABELS_ROUTE)
    for type_url in (typeurls.CLUSTER, typeurls.LISTENER):
        assert _generate(discovery, A, type_url) is not _generate(discovery, B, type_url)
    # The answers really differ, and each equals a build from scratch (verification on).
    a, b = discovery.resources(A), discovery.resources(B)
    assert a.clusters != b.clusters
    assert a.routes != b.routes


# ---- verification mode ---------------------------------------------------------------------


def test_verification_catches_a_key_missing_an_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CDS key that forgets the workload labels would hand B the clusters built for A (A's
    connection pool). Verification rebuilds B's answer from scratch and refuses."""
    discovery = FakeDiscovery(SERVICES + SELECTED_RULE)
    monkeypatch.setattr(cds, "rule_labels_key", lambda view: ())
    gens = verifying(default_generators(None))
    gens[typeurls.CLUSTER].generate(discovery.view(A), None)
    with pytest.raises(CacheMismatchError, match=r"outbound\|80\|\|reviews\.example\.com"):
        gens[typeurls.CLUSTER].generate(discovery.view(B), None)


def test_verification_catches_a_route_key_missing_source_labels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    discovery = FakeDiscovery(SERVICES + SOURCE_LABELS_ROUTE)
    monkeypatch.setattr(rds, "source_labels_key", lambda view: ())
    assert base.source_labels_key(discovery.view(A))  # the real key does include them
    gens = verifying(default_generators(None))
    names = frozenset({"80"})
    gens[typeurls.ROUTE].generate(discovery.view(A), names)
    with pytest.raises(CacheMismatchError, match="80"):
        gens[typeurls.ROUTE].generate(discovery.view(B), names)
