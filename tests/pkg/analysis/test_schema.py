"""The schema analyzer: istiod's validation as IST0106 (errors, at the field's line), IST0133
(warnings), and the two VirtualService warnings Istio gives their own codes (IST0130, IST0131);
and invalid objects still count as existing for the other analyzers."""

from __future__ import annotations

from .helpers import codes, lines

INVALID = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: SIDEWAYS
"""


def test_validation_error_points_at_the_field() -> None:
    assert lines(INVALID) == [
        "Error [IST0106] (DestinationRule default/reviews mesh.yaml:8) Schema validation error: "
        'spec.trafficPolicy.loadBalancer.simple: Unsupported value: "SIDEWAYS": supported values: '
        '"UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"'
    ]


def test_unreachable_rules_get_istio_codes() -> None:
    doc = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r.example.com]
  http:
  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: r.example.com}}]
  - match: [{uri: {prefix: /a}}, {uri: {prefix: /b}}]
    route: [{destination: {host: r.example.com}}]
  - route: [{destination: {host: r.example.com}}]
  - name: late
    route: [{destination: {host: r.example.com}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: r}
spec:
  hosts: [r.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
"""
    assert lines(doc) == [
        'Warning [IST0130] (VirtualService default/r mesh.yaml:12) VirtualService rule "late" not'
        " used (only the last rule can have no matches).",
        "Info [IST0131] (VirtualService default/r mesh.yaml:9) VirtualService rule #1 match #0 is"
        " not used (duplicate/overlapping match in rule #0).",
    ]


def test_an_invalid_gateway_still_exists_for_its_virtual_services() -> None:
    gateway = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: []}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r.example.com]
  gateways: [gw]
  http: [{directResponse: {status: 200}}]
"""
    assert [code for code, _ in codes(gateway)] == ["IST0106"]
