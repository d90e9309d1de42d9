"""Change files: validated as `istioctl validate` does, deletions by annotation, and applied to
a copy of the config (the given mapping is never modified)."""

from __future__ import annotations

import dataclasses

from pilot.plan.change import DELETE_ANNOTATION, apply_change, parse_change
from pkg.config.model import Kind
from tests.helpers.ads import parse_all

VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
"""


def deleting(doc: str) -> str:
    annotation = f'annotations: {{{DELETE_ANNOTATION}: "true"}}'
    return doc.replace("namespace: default}", f"namespace: default, {annotation}}}")


def test_invalid_documents_make_the_change_invalid() -> None:
    change = parse_change(VS.replace("{host: reviews}}", "{host: reviews}, weight: -1}"))
    assert not change.valid
    assert any(e.startswith("VirtualService/default/reviews: ") for e in change.errors)
    assert not parse_change("").valid  # nothing to plan


def test_a_delete_annotation_plans_a_deletion() -> None:
    change = parse_change(deleting(VS))
    assert change.valid and not change.upserts
    assert [str(k) for k in change.deletes] == ["VirtualService/default/reviews"]


def test_apply_change_copies_and_keeps_creation_time() -> None:
    (current,) = parse_all(VS)
    stamped = dataclasses.replace(
        current, meta=dataclasses.replace(current.meta, creation_timestamp=42.0)
    )
    configs = {Kind.VIRTUAL_SERVICE: (stamped,)}
    updated = apply_change(configs, parse_change(VS.replace("[reviews]", "[reviews, ratings]")))
    assert configs == {Kind.VIRTUAL_SERVICE: (stamped,)}
    (new,) = updated[Kind.VIRTUAL_SERVICE]
    assert new.meta.creation_timestamp == 42.0 and len(new.spec.hosts) == 2
    doc = VS.replace(
        "namespace: default}", f'namespace: default, annotations: {{{DELETE_ANNOTATION}: "true"}}}}'
    )
    assert Kind.VIRTUAL_SERVICE not in apply_change(configs, parse_change(doc))
