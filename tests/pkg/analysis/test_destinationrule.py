"""DestinationRule analyzers: unknown host (IST0174), subsets selecting no workload (IST0173),
TLS without server verification (IST0128, IST0129)."""

from __future__ import annotations

from pkg.analysis.analyzers import destinationrule

from .helpers import SERVICES, codes, lines


def dr(name: str, body: str, namespace: str = "default") -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}"
    )


REVIEWS = dr(
    "reviews",
    "  host: reviews\n  subsets:\n  - name: v1\n    labels: {version: v1}\n"
    "  - name: v2\n    labels: {version: v2}\n",
)


def test_subset_without_workloads_is_reported_on_its_line() -> None:
    assert lines(SERVICES, REVIEWS, analyzers=destinationrule.ANALYZERS) == [
        "Error [IST0173] (DestinationRule default/reviews f1.yaml:9) The Subset v2 defined in the "
        "DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream)."
    ]


def test_workloads_of_other_services_or_namespaces_do_not_count() -> None:
    elsewhere = """\
apiVersion: v1
kind: Pod
metadata: {name: ratings-v2, namespace: default, labels: {app: ratings, version: v2}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2, namespace: other}
spec: {template: {metadata: {labels: {app: reviews, version: v2}}}}
"""
    assert codes(SERVICES, REVIEWS, elsewhere, analyzers=destinationrule.ANALYZERS) == [
        ("IST0173", "DestinationRule default/reviews")
    ]


def test_pods_and_pod_templates_are_workloads() -> None:
    for workload in (
        "apiVersion: v1\nkind: Pod\n"
        "metadata: {name: r2, namespace: default, labels: {app: reviews, version: v2}}\n",
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: r2}\n"
        "spec: {template: {metadata: {labels: {app: reviews, version: v2}}}}\n",
    ):
        assert codes(SERVICES, REVIEWS, workload, analyzers=destinationrule.ANALYZERS) == []


def test_service_entry_subsets_use_its_selector_or_inline_endpoints() -> None:
    entries = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm, namespace: default}
spec:
  hosts: [vm.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static, namespace: default}
spec:
  hosts: [static.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.20, labels: {version: blue}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: default}
spec: {address: 127.0.0.21, labels: {app: vm, version: v1}}
"""
    rules = [
        dr(
            "vm",
            "  host: vm.example.com\n  subsets: [{name: v1, labels: {version: v1}},"
            " {name: v2, labels: {version: v2}}]\n",
        ),
        dr(
            "static",
            "  host: static.example.com\n  subsets: [{name: blue, labels: {version: blue}},"
            " {name: green, labels: {version: green}}]\n",
        ),
    ]
    found = lines(entries, *rules, analyzers=destinationrule.ANALYZERS)
    assert [line.split(") ")[1] for line in found] == [
        "The Subset green defined in the DestinationRule does not select any pods. Which may lead"
        " to 503 UH (NoHealthyUpstream).",
        "The Subset v2 defined in the DestinationRule does not select any pods. Which may lead to"
        " 503 UH (NoHealthyUpstream).",
    ]


def test_unknown_host_warns_but_a_wildcard_covering_services_does_not() -> None:
    rules = [
        dr("ghost", "  host: ghost\n"),
        dr(
            "all",
            "  host: '*.local'\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n",
            "istio-system",
        ),
        dr("nothing", "  host: '*.example.org'\n"),
    ]
    assert lines(SERVICES, *rules, analyzers=destinationrule.ANALYZERS) == [
        "Warning [IST0174] (DestinationRule default/ghost f1.yaml:5) The host ghost defined in the"
        " DestinationRule does not match any services in the mesh.",
        "Warning [IST0174] (DestinationRule default/nothing f3.yaml:5) The host *.example.org"
        " defined in the DestinationRule does not match any services in the mesh.",
    ]


def test_tls_origination_without_ca_certificates() -> None:
    rule = dr(
        "tls",
        "  host: reviews\n  trafficPolicy:\n    tls: {mode: SIMPLE}\n"
        "    portLevelSettings:\n    - port: {number: 9080}\n      tls: {mode: MUTUAL, "
        "clientCertificate: /c.pem, privateKey: /k.pem}\n",
    )
    assert lines(SERVICES, rule, analyzers=destinationrule.ANALYZERS) == [
        "Warning [IST0128] (DestinationRule default/tls f1.yaml:7) DestinationRule default/tls in"
        " namespace default has TLS mode set to SIMPLE but no caCertificates are set to validate"
        " server identity for host: reviews",
        "Warning [IST0129] (DestinationRule default/tls f1.yaml:10) DestinationRule default/tls in"
        " namespace default has TLS mode set to MUTUAL but no caCertificates are set to validate"
        " server identity for host: reviews at port number:9080",
    ]
    verified = rule.replace("{mode: SIMPLE}", "{mode: SIMPLE, caCertificates: /ca.pem}")
    verified = verified.replace("privateKey: /k.pem}", "privateKey: /k.pem, caCertificates: /ca}")
    assert codes(SERVICES, verified, analyzers=destinationrule.ANALYZERS) == []
