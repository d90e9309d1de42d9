"""VirtualService analyzers: gateways (IST0101, IST0132), destination hosts and ports (IST0101,
IST0112), subsets (IST0101) and conflicting mesh hosts (IST0109)."""

from __future__ import annotations

from pkg.analysis.analyzers import virtualservice

from .helpers import SERVICES, codes, lines

GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["./shop.example.com", "*/api.example.com"]
"""


def vs(name: str, body: str, namespace: str = "default") -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}"
    )


def test_missing_gateway_is_reported_on_the_gateways_line() -> None:
    doc = vs(
        "reviews",
        "  hosts: [reviews]\n  gateways: [mesh, nope]\n"
        "  http:\n  - route:\n    - destination: {host: reviews}\n",
    )
    found = lines(SERVICES, doc, analyzers=virtualservice.ANALYZERS)
    assert found == [
        "Error [IST0101] (VirtualService default/reviews f1.yaml:6) Referenced gateway not found: "
        '"nope"'
    ]


def test_gateway_references_resolve_as_pilot_does() -> None:
    route = "  http:\n  - route:\n    - destination: {host: reviews}\n"
    docs = [
        vs("a", "  hosts: [api.example.com]\n  gateways: [edge/public]\n" + route),
        vs(
            "b", "  hosts: [api.example.com]\n  gateways: [public.edge.svc.cluster.local]\n" + route
        ),
        vs("c", "  hosts: [shop.example.com]\n  gateways: [./public]\n" + route, "edge"),
    ]
    assert codes(SERVICES, GATEWAY, *docs, analyzers=virtualservice.ANALYZERS) == []


def test_host_not_served_by_the_gateway() -> None:
    # ./shop.example.com is only for VirtualServices in the gateway's own namespace.
    doc = vs(
        "shop",
        "  hosts: [shop.example.com]\n  gateways: [edge/public]\n"
        "  http:\n  - route:\n    - destination: {host: reviews}\n",
    )
    assert lines(SERVICES, GATEWAY, doc, analyzers=virtualservice.ANALYZERS) == [
        "Warning [IST0132] (VirtualService default/shop f2.yaml:6) one or more host "
        "[shop.example.com] defined in VirtualService default/shop not found in Gateway "
        "edge/public."
    ]


def test_unknown_destination_host_port_and_mirror() -> None:
    doc = vs(
        "reviews",
        "  hosts: [reviews]\n  http:\n  - route:\n"
        "    - destination: {host: nothere}\n      weight: 50\n"
        "    - destination: {host: reviews, port: {number: 8080}}\n      weight: 50\n"
        "    mirror: {host: ghost}\n",
    )
    # Sorted as Istio sorts: by level, code, object, then the whole line (so :10 < :8).
    assert lines(SERVICES, doc, analyzers=virtualservice.ANALYZERS) == [
        "Error [IST0101] (VirtualService default/reviews f1.yaml:10) Referenced host:port not "
        'found: "reviews:8080"',
        "Error [IST0101] (VirtualService default/reviews f1.yaml:12) Referenced mirror host not "
        'found: "ghost"',
        "Error [IST0101] (VirtualService default/reviews f1.yaml:8) Referenced host not found: "
        '"nothere"',
    ]


def test_port_selector_required_for_a_multi_port_service() -> None:
    doc = vs(
        "ratings", "  hosts: [ratings]\n  tcp:\n  - route:\n    - destination: {host: ratings}\n"
    )
    assert lines(SERVICES, doc, analyzers=virtualservice.ANALYZERS) == [
        "Error [IST0112] (VirtualService default/ratings f1.yaml:8) This VirtualService routes "
        'to a service "ratings" that exposes multiple ports [9080 9090]. Specifying a port in '
        "the destination is required to disambiguate."
    ]
    fixed = doc.replace("{host: ratings}", "{host: ratings, port: {number: 9090}}")
    assert codes(SERVICES, fixed, analyzers=virtualservice.ANALYZERS) == []


def test_service_entry_hosts_exports_and_wildcards() -> None:
    entries = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wiki, namespace: other}
spec:
  hosts: ["*.wikipedia.org"]
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: other}
spec:
  hosts: [db.internal]
  exportTo: ["."]
  ports: [{number: 5432, name: pg, protocol: TCP}]
"""
    ok = vs(
        "wiki",
        "  hosts: [en.wikipedia.org]\n  tls:\n  - match: [{sniHosts: [en.wikipedia.org]}]\n"
        "    route:\n    - destination: {host: en.wikipedia.org}\n",
    )
    hidden = vs(
        "db", "  hosts: [db.internal]\n  tcp:\n  - route:\n    - destination: {host: db.internal}\n"
    )
    assert codes(entries, ok, hidden, analyzers=virtualservice.ANALYZERS) == [
        ("IST0101", "VirtualService default/db")
    ]


def test_subset_must_be_defined_by_a_destination_rule_for_the_host() -> None:
    rule = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: other}
spec:
  host: reviews.default.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}]
"""
    good = vs(
        "reviews",
        "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n",
    )
    bad = good.replace("subset: v1", "subset: v2").replace("name: reviews,", "name: reviews-2,")
    found = lines(
        SERVICES,
        rule,
        good,
        bad.replace("hosts: [reviews]", "hosts: [other]"),
        analyzers=virtualservice.ANALYZERS,
    )
    assert found == [
        "Error [IST0101] (VirtualService default/reviews-2 f3.yaml:8) Referenced host+subset in "
        'destinationrule not found: "reviews+v2"'
    ]


def test_two_mesh_virtual_services_for_one_host_conflict() -> None:
    route = "  http:\n  - route:\n    - destination: {host: reviews}\n"
    first = vs("reviews", "  hosts: [reviews]\n" + route)
    second = vs("reviews-canary", "  hosts: [reviews.default.svc.cluster.local]\n" + route)
    found = lines(SERVICES, first, second, analyzers=virtualservice.ANALYZERS)
    text = (
        "The VirtualServices default/reviews,default/reviews-canary associated with mesh gateway "
        "define the same host */reviews.default.svc.cluster.local which can lead to undefined "
        "behavior. This can be fixed by merging the conflicting VirtualServices into a single "
        "resource."
    )
    assert found == [
        f"Error [IST0109] (VirtualService default/reviews-canary f2.yaml:3) {text}",
        f"Error [IST0109] (VirtualService default/reviews f1.yaml:3) {text}",
    ]


def test_no_conflict_across_export_scopes_or_on_gateways() -> None:
    route = "  http:\n  - route:\n    - destination: {host: reviews}\n"
    local_a = vs("a", '  hosts: [reviews.default.svc.cluster.local]\n  exportTo: ["."]\n' + route)
    fqdn_route = route.replace("{host: reviews}", "{host: reviews.default.svc.cluster.local}")
    local_b = vs(
        "b",
        '  hosts: [reviews.default.svc.cluster.local]\n  exportTo: ["."]\n' + fqdn_route,
        "other",
    )
    gateway_bound = vs("c", "  hosts: [reviews]\n  gateways: [edge/public]\n" + route)
    assert ("IST0109", "VirtualService default/a") not in codes(
        SERVICES, GATEWAY, local_a, local_b, gateway_bound, analyzers=virtualservice.ANALYZERS
    )
    assert codes(
        SERVICES, GATEWAY, local_a, local_b, gateway_bound, analyzers=virtualservice.ANALYZERS
    ) == [("IST0132", "VirtualService default/c")]
