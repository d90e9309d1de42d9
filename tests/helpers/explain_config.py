"""A Bookinfo-like config for `explain` tests (unit and e2e): reviews v1/v2/v3 and details as
STATIC ServiceEntries, reviews subsets, and the same HTTP routes bound to the mesh (sidecars:
host `reviews`) and to an ingress gateway (host `bookinfo.example.com`, port 8080):

  jason     header end-user: jason              → reviews v2
  submit    POST /submit                        → details
  fault     prefix /fault                       → abort 418 (100 %)
  flaky     prefix /flaky                       → abort 503 (50 %), else reviews v1
  moved     exact /old                          → redirect 301 to /new
  gone      prefix /gone                        → direct response 410
  details   prefix /details                     → details
  default   (weighted, retries 2, timeout 5s)   → reviews v1 50 / v3 50

plus an AuthorizationPolicy DENY on the gateway: rule 0 paths /admin*, rule 1 from `blocked_ip`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

GATEWAY_PORT = 8080
GATEWAY_HOST = "bookinfo.example.com"
SERVICE_PORT = 9080
NAMESPACE = "default"

ROUTES = """
- name: jason
  match: [{headers: {end-user: {exact: jason}}}]
  route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]
- name: submit
  match: [{uri: {prefix: /submit}, method: {exact: POST}}]
  route: [{destination: {host: details.default.svc.cluster.local}}]
- name: fault
  match: [{uri: {prefix: /fault}}]
  fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
  route: [{destination: {host: reviews.default.svc.cluster.local, subset: v1}}]
- name: flaky
  match: [{uri: {prefix: /flaky}}]
  fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
  route: [{destination: {host: reviews.default.svc.cluster.local, subset: v1}}]
- name: moved
  match: [{uri: {exact: /old}}]
  redirect: {uri: /new}
- name: gone
  match: [{uri: {prefix: /gone}}]
  directResponse: {status: 410, body: {string: gone}}
- name: details
  match: [{uri: {prefix: /details}}]
  route: [{destination: {host: details.default.svc.cluster.local}}]
- name: default
  retries: {attempts: 2, retryOn: 5xx, perTryTimeout: 2s}
  timeout: 5s
  route:
  - {destination: {host: reviews.default.svc.cluster.local, subset: v1}, weight: 50}
  - {destination: {host: reviews.default.svc.cluster.local, subset: v3}, weight: 50}
"""


def _service_entry(service: str, endpoints: Mapping[str, tuple[str, int]]) -> str:
    rows = "".join(
        f"\n  - {{address: {ip}, ports: {{http: {port}}}, labels: {{app: {service}, "
        f"version: {version}}}}}"
        for version, (ip, port) in sorted(endpoints.items())
    )
    return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {service}, namespace: {NAMESPACE}}}
spec:
  hosts: [{service}.{NAMESPACE}.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {SERVICE_PORT}, name: http, protocol: HTTP}}]
  endpoints:{rows}
"""


def _virtual_service(name: str, hosts: str, gateways: str) -> str:
    routes = textwrap.indent(ROUTES.strip(), "  ")
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  hosts: [{hosts}]
  gateways: [{gateways}]
  http:
{routes}
"""


def explain_config(
    reviews: Mapping[str, tuple[str, int]],
    details: tuple[str, int],
    blocked_ip: str,
    sidecar_bind: str = "",
) -> str:
    """The config, with `reviews` = {version: (ip, port)} and details' (ip, port); with
    `sidecar_bind` a Sidecar resource binding the app=productpage proxy's egress port 9080 on
    that IP (NONE interception)."""
    docs = [
        _service_entry("reviews", reviews),
        _service_entry("details", {"v1": details}),
        f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: {NAMESPACE}}}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
  - {{name: v3, labels: {{version: v3}}}}
""",
        _virtual_service("reviews", "reviews.default.svc.cluster.local", "mesh"),
        _virtual_service("bookinfo-gateway", GATEWAY_HOST, "istio-system/bookinfo-gateway"),
        f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: bookinfo-gateway, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {GATEWAY_PORT}, name: http, protocol: HTTP}}
    hosts: ["*/{GATEWAY_HOST}"]
""",
        f"""apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: deny-admin, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  action: DENY
  rules:
  - to: [{{operation: {{paths: ["/admin*"]}}}}]
  - from: [{{source: {{ipBlocks: ["{blocked_ip}/32"]}}}}]
""",
    ]
    if sidecar_bind:
        docs.append(
            f"""apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: productpage, namespace: {NAMESPACE}}}
spec:
  workloadSelector: {{labels: {{app: productpage}}}}
  egress:
  - port: {{number: {SERVICE_PORT}, protocol: HTTP, name: http}}
    bind: {sidecar_bind}
    hosts: ["./*"]
"""
        )
    return "---\n".join(docs)
