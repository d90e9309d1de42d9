"""NACK attribution rules (pure): the changed objects, narrowed by the rejected resources'
provenance and by what Envoy's message quotes; only a single remaining candidate counts."""

from __future__ import annotations

from collections.abc import Callable

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_pb2

from pilot.model.push_context import PushContext, PushInputs
from pilot.networking.naming import destination_rule_config_path, virtual_service_config_path
from pilot.networking.protos import metadata
from pilot.xds.attribution import attribute, config_key_from_path, provenance_keys
from pilot.xds.rejections import _changed_since_accepted, _Response
from pkg.config.model import ConfigKey, Kind
from tests.helpers.ads import parse_all

REVIEWS = ConfigKey(Kind.VIRTUAL_SERVICE, "reviews", "default")
RATINGS = ConfigKey(Kind.VIRTUAL_SERVICE, "ratings", "default")
RULE = ConfigKey(Kind.DESTINATION_RULE, "reviews", "default")
ENDPOINTS = ConfigKey(Kind.ENDPOINTS, "reviews.default.svc.cluster.local", "default")

CONFIGS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {x-id: {regex: "(abc|def){1000}"}}}]
    route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - route: [{destination: {host: ratings}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
"""

PUSH = PushContext.build(
    PushInputs(configs={k: tuple(c for c in parse_all(CONFIGS) if c.meta.kind is k)
                        for k in (Kind.VIRTUAL_SERVICE, Kind.DESTINATION_RULE)})
)  # fmt: skip
BOTH_ROUTES = frozenset({REVIEWS, RATINGS})


def named(keys: frozenset[ConfigKey] | None) -> Callable[[], frozenset[ConfigKey] | None]:
    """The provenance of the rejected resources (regenerated lazily by the tracker)."""
    return lambda: keys


def test_config_paths_and_provenance_metadata() -> None:
    assert config_key_from_path(virtual_service_config_path("ns", "a")) == ConfigKey(
        Kind.VIRTUAL_SERVICE, "a", "ns"
    )
    assert config_key_from_path(destination_rule_config_path("ns", "b")) == ConfigKey(
        Kind.DESTINATION_RULE, "b", "ns"
    )
    assert config_key_from_path("/apis/x/v1/namespaces/ns/no-such-kind/n") is None
    assert config_key_from_path("garbage") is None

    routes = route_pb2.RouteConfiguration(name="8080")
    for key in (REVIEWS, RATINGS):
        vhost = routes.virtual_hosts.add(name=key.name)
        route = vhost.routes.add(name="r")
        route.metadata.CopyFrom(
            metadata({"istio": {"config": virtual_service_config_path(key.namespace, key.name)}})
        )
    vhost.routes.add(name="default")  # no metadata
    cluster = cluster_pb2.Cluster(name="c")
    cluster.metadata.CopyFrom(
        metadata({"istio": {"config": destination_rule_config_path("default", "reviews")}})
    )
    assert provenance_keys([routes]) == BOTH_ROUTES
    assert provenance_keys([routes, cluster]) == BOTH_ROUTES | {RULE}
    assert provenance_keys([cluster_pb2.Cluster(name="plain")]) == frozenset()


def test_single_changed_object_is_attributed_without_looking_further() -> None:
    def provenance() -> frozenset[ConfigKey] | None:
        raise AssertionError("not needed for a single changed object")

    result = attribute(PUSH, frozenset({REVIEWS, ENDPOINTS}), provenance, "whatever")
    assert result.config is not None and result.config.key == REVIEWS and result.how == "push"


def test_changed_objects_narrowed_by_provenance_then_by_the_message() -> None:
    # A DestinationRule and a VirtualService changed; the rejected route names the latter.
    result = attribute(PUSH, frozenset({REVIEWS, RULE}), named(frozenset({REVIEWS})), "x")
    assert result.config is not None and result.config.key == REVIEWS
    assert result.how == "push+provenance"
    # Both VirtualServices changed and are in the route: the message quotes reviews' regex.
    message = "regex '(abc|def){1000}' RE2 program size of 6004 > max program size of 100"
    result = attribute(PUSH, BOTH_ROUTES, named(BOTH_ROUTES), message)
    assert result.config is not None and result.config.key == REVIEWS
    assert result.how == "push+provenance+message"
    # A message quoting only values both share (the kind of match) attributes nothing.
    result = attribute(PUSH, BOTH_ROUTES, named(BOTH_ROUTES), "route: destination invalid")
    assert result.config is None and result.candidates == (RATINGS, REVIEWS)


def test_unknown_changes_use_provenance_only() -> None:
    result = attribute(PUSH, None, named(frozenset({RATINGS})), "m")
    assert result.config is not None and result.config.key == RATINGS
    assert result.how == "provenance"
    # Listeners carry no provenance: nothing to attribute to.
    result = attribute(PUSH, None, named(None), "m")
    assert result.config is None and result.candidates == ()


def test_known_changes_without_objects_attribute_nothing() -> None:
    # Only endpoints changed since the proxy's last accepted response (or an object that no
    # longer exists): no object is to blame, whatever the resources name.
    gone = ConfigKey(Kind.VIRTUAL_SERVICE, "deleted", "default")
    result = attribute(PUSH, frozenset({ENDPOINTS, gone}), named(frozenset({REVIEWS})), "m")
    assert result.config is None and "no object changed" in result.how


def test_changes_since_the_last_accepted_response() -> None:
    def response(nonce: str, keys: frozenset[ConfigKey] | None, acked: bool = False) -> _Response:
        return _Response(nonce, keys, "v", acked)

    a, b = frozenset({REVIEWS}), frozenset({RULE})
    # ACKed, then a push NACKed: that push's keys.
    responses = [response("1", None, acked=True), response("2", a)]
    assert _changed_since_accepted(responses, 1, forgotten=False) == a
    # An earlier NACKed push counts too: its change was never accepted.
    responses = [response("1", None, acked=True), response("2", a), response("3", b)]
    assert _changed_since_accepted(responses, 2, forgotten=False) == a | b
    # A plain request's answer in between (new content to the proxy): unknown.
    responses = [response("1", None), response("2", a)]
    assert _changed_since_accepted(responses, 1, forgotten=False) is None
    # A stream whose first response on the type is a push started in sync...
    assert _changed_since_accepted([response("1", a)], 0, forgotten=False) == a
    # ...unless older responses were forgotten.
    assert _changed_since_accepted([response("1", a)], 0, forgotten=True) is None
