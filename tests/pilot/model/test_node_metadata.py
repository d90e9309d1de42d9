"""Node ids and metadata a proxy cannot be built from are refused with a message naming what
is wrong (the ADS server answers INVALID_ARGUMENT with it); Istio decodes metadata into typed
fields, so a field of the wrong JSON type is an error, never silently dropped."""

from __future__ import annotations

from typing import Any

import pytest

from pilot.model.proxy import InvalidNodeError, parse_node

NODE = "sidecar~127.0.0.1~app.default~default.svc.cluster.local"


@pytest.mark.parametrize(
    ("node_id", "metadata", "message"),
    [
        ("", {}, "missing node information"),
        ("sidecar~127.0.0.1~app.default", {}, "missing parts"),
        ("sidecar~not-an-ip~app.default~default.svc.cluster.local", {}, "no valid IP"),
        (NODE, {"LABELS": "app=x"}, "LABELS: expected a map of strings, got a string"),
        (NODE, {"LABELS": {"v": 2.0}}, "LABELS['v']: expected a string, got a number"),
        (NODE, {"NAMESPACE": True}, "NAMESPACE: expected a string, got a boolean"),
        (NODE, {"INSTANCE_IPS": ["127.0.0.1"]}, "INSTANCE_IPS: expected a string, got a list"),
        (NODE, {"GENERATOR": {"x": "y"}}, "GENERATOR: expected a string, got an object"),
    ],
)
def test_malformed_nodes_are_refused_with_a_clear_message(
    node_id: str, metadata: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidNodeError, match=message.replace("[", r"\[")):
        parse_node(node_id, metadata)


def test_well_typed_metadata_is_accepted() -> None:
    proxy = parse_node(NODE, {"LABELS": {"app": "x"}, "NAMESPACE": "default", "UNKNOWN": 3.0})
    assert proxy.labels == {"app": "x"} and proxy.namespace == "default"
