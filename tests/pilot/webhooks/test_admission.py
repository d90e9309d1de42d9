"""The admission decisions (pilot/webhooks/admission.py) without a server: request parsing,
the validation verdicts, and /inject's use of the namespace's labels when it knows them."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from pilot.webhooks.admission import (
    BadReview,
    Request,
    inject_review,
    parse_review,
    validate_review,
)
from pkg.inject.sidecar import InjectionSettings

VS: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews"},
    "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": ""}}]}]},
}
POD: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                       "spec": {"containers": [{"name": "app", "image": "app"}]}}  # fmt: skip


def request(obj: Any, operation: str = "CREATE", kind: str = "VirtualService") -> Request:
    return Request("u-1", operation, "bookinfo", kind, obj, dry_run=False)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "expected an AdmissionReview object"),
        ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}, "v1beta1"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request"),
    ],
)
def test_bad_reviews_say_why(body: Any, reason: str) -> None:
    with pytest.raises(BadReview, match=reason):
        parse_review(body)


def test_validation_denies_with_object_and_field_path_in_the_request_namespace() -> None:
    response = validate_review(request(VS))["response"]
    assert response["uid"] == "u-1" and response["allowed"] is False
    message = response["status"]["message"]
    assert message.startswith("configuration is invalid: VirtualService/bookinfo/reviews: ")
    assert "spec.http[0].route[0].destination.host" in message
    assert validate_review(request(VS, "DELETE"))["response"]["allowed"] is True
    assert validate_review(request(VS, "CONNECT"))["response"]["allowed"] is True


def test_inject_follows_namespace_labels_when_known() -> None:
    def labels(namespace: str) -> dict[str, str]:
        return {"istio-injection": "enabled"} if namespace == "bookinfo" else {}

    settings = InjectionSettings()
    response = inject_review(request(POD, kind="Pod"), settings, labels)["response"]
    ops = json.loads(base64.b64decode(response["patch"]))
    assert any(op["path"] == "/spec/initContainers" for op in ops)
    elsewhere = Request("u-2", "CREATE", "plain", "Pod", POD, dry_run=False)
    assert "patch" not in inject_review(elsewhere, settings, labels)["response"]
    # Not a pod CREATE: allowed untouched.
    assert "patch" not in inject_review(request(POD, "UPDATE", "Pod"), settings)["response"]
