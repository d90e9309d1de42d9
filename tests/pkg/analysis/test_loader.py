"""Loading documents for analysis: where each document and field is (Istio's chunk start and
field map), what becomes a workload, what is a parse problem."""

from __future__ import annotations

from pkg.analysis.loader import load_text
from pkg.analysis.resource import Origin

MULTI = """\
# Copyright header
# more comments

apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts:
    - "*"
---

# a comment before the second document
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: p, labels: {app: a}}
- apiVersion: networking.istio.io/v1
  kind: WorkloadEntry
  metadata: {name: we, namespace: vms, labels: {team: x}}
  spec: {address: 127.0.0.9, labels: {app: vm}}
"""


def test_document_and_field_lines() -> None:
    loaded = load_text(MULTI, "m.yaml", "default")
    gw = next(r for r in loaded.resources if r.kind == "Gateway")
    # Istio's document line is the first non-empty line of the chunk, comments included.
    assert gw.ref.origin.line == 1
    assert gw.line_of("spec.selector.istio") == 10
    assert gw.line_of("spec.servers[0].hosts[0]") == 14
    # A missing field points at its closest ancestor that is in the document.
    assert gw.line_of("spec.servers[0].tls.mode") == 12
    we = next(r for r in loaded.resources if r.kind == "WorkloadEntry")
    assert we.ref.origin.line == 24
    assert we.line_of("spec.address") == 27


def test_references() -> None:
    assert Origin("a.yaml", 4).reference() == "a.yaml:4"
    assert Origin("a.yaml", 4).reference(9) == "a.yaml:9"
    assert Origin("a.json", 4).reference(9) == "a.json"  # Istio shows no line for JSON
    assert Origin().reference(9) is None


def test_workloads_from_pods_controllers_and_workload_entries() -> None:
    text = (
        MULTI
        + """\
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: jobs}
spec:
  jobTemplate:
    spec:
      template:
        metadata:
          labels: {app: batch}
          annotations: {sidecar.istio.io/inject: "false"}
"""
    )
    loaded = load_text(text, "m.yaml", "default")
    found = {
        (w.kind, w.namespace, w.name, tuple(sorted(w.labels.items())), w.in_mesh)
        for w in loaded.workloads
    }
    assert found == {
        ("Pod", "default", "p", (("app", "a"),), True),
        ("WorkloadEntry", "vms", "we", (("app", "vm"), ("team", "x")), True),
        ("CronJob", "jobs", "nightly", (("app", "batch"),), False),
    }


def test_parse_problems_and_invalid_documents() -> None:
    text = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: broken}
spec: {servers: 7}
---
kind: Gateway
metadata: {name: no-version}
---
- a list
---
apiVersion: networking.istio.io/v9
kind: Gateway
metadata: {name: future}
"""
    loaded = load_text(text, "p.yaml", "default")
    assert [(p.index, p.reason) for p in loaded.problems] == [
        (1, "unable to parse resource with no group, version and kind (apiVersion is missing)"),
        (2, "document is a list, not a mapping"),
    ]
    invalid = {r.name: [str(e) for e in r.errors] for r in loaded.resources}
    assert invalid == {
        "broken": ['spec.servers: must be of type array: "integer"'],
        "future": [
            "apiVersion: unsupported version 'v9' of Gateway; supported: networking.istio.io/v1,"
            " networking.istio.io/v1beta1, networking.istio.io/v1alpha3"
        ],
    }
    assert all(r.config is None for r in loaded.resources)


def test_later_documents_replace_earlier_ones() -> None:
    first = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {a: '1'}}\n"
    loaded = load_text(first + "---\n" + first.replace("'1'", "'2'"), "n.yaml", "default")
    assert len(loaded.resources) == 1
    assert loaded.namespace_labels == {"shop": {"a": "2"}}
