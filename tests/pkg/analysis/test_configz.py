"""Input from a running istiod: /debug/configz objects (with a proxy's rejection marker, which
becomes PYI0001 RejectedByProxy) and /debug/adsz proxies as workloads."""

from __future__ import annotations

import pytest

from pkg.analysis.configz import ConfigzError, from_configz, workloads_from_adsz
from pkg.analysis.inputs import AnalysisInput
from pkg.analysis.loader import merge
from pkg.analysis.output import Format, render
from pkg.analysis.runner import analyze

REJECTED_ROUTE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "default", "resourceVersion": "7"},
    "spec": {
        "hosts": ["reviews.example.com"],
        "http": [{"directResponse": {"status": 503}}],
    },
    "status": {
        "rejected": {
            "message": "Invalid regex: '(': missing )",
            "proxy": "productpage.default",
            "typeUrl": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            "version": "7",
            "at": "2026-01-01T00:00:00Z",
            "serving": "5",
        }
    },
}
NEVER_ACCEPTED = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "ratings"},
    "spec": {"host": "ratings.example.com"},
    "status": {"rejected": [{"message": "bad cluster", "proxy": "a.default", "serving": ""}]},
}


def test_rejection_marker_is_an_error_naming_the_proxy_and_envoys_message() -> None:
    loaded = from_configz([REJECTED_ROUTE, NEVER_ACCEPTED])
    result = analyze(AnalysisInput(loaded), namespace=None)
    rejected = [str(m) for m in result.messages if m.type.code == "PYI0001"]
    assert rejected == [
        "Error [PYI0001] (DestinationRule default/ratings) The configuration generated from this"
        ' resource was rejected by proxy a.default (xDS): "bad cluster". istiod serves nothing (it'
        " has no accepted version) instead.",
        "Error [PYI0001] (VirtualService default/reviews) The configuration generated from this"
        " resource was rejected by proxy productpage.default (RDS): \"Invalid regex: '(': missing"
        ' )". istiod serves its last accepted version 5 instead.',
    ]
    as_json = render([m for m in result.messages if m.type.code == "PYI0001"][:1], Format.JSON)
    assert '"documentationUrl": "docs/analysis.md#pyi0001"' in as_json
    assert '"reference"' not in as_json  # no file behind istiod's objects


def test_objects_without_marker_have_no_rejection() -> None:
    clean = {k: v for k, v in REJECTED_ROUTE.items() if k != "status"}
    loaded = from_configz([clean])
    assert [r.rejections for r in loaded.resources] == [()]


def test_connected_proxies_are_workloads() -> None:
    adsz = {
        "totalClients": 1,
        "clients": [
            {
                "connectionId": "sidecar~127.0.0.5~web-1.shop~shop.svc.cluster.local-1",
                "labels": {"app": "web"},
                "metadata": {"NAMESPACE": "shop"},
            }
        ],
    }
    policy = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}},
    }
    proxies = workloads_from_adsz(adsz)
    assert [(w.namespace, w.name, dict(w.labels)) for w in proxies] == [
        ("shop", "web-1", {"app": "web"})
    ]
    without = analyze(AnalysisInput(from_configz([policy])), namespace=None)
    assert [m.type.code for m in without.messages] == ["IST0127"]
    loaded = from_configz([policy])
    with_proxy = merge([loaded, type(loaded)(workloads=proxies)])
    assert analyze(AnalysisInput(with_proxy), namespace=None).messages == ()


def test_payloads_that_are_not_istiods_are_refused() -> None:
    with pytest.raises(ConfigzError, match="not a JSON array"):
        from_configz({"items": []})
    with pytest.raises(ConfigzError, match="clients"):
        workloads_from_adsz([])
