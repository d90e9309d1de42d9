"""Istio's injection policy (pkg/inject/policy.py): namespace label, pod override, already
injected, host network, system namespaces."""

from __future__ import annotations

from typing import Any

import pytest

from pkg.inject.policy import Reason, decide

ENABLED = {"istio-injection": "enabled"}


def pod(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
        **spec: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "metadata": {"labels": labels or {}, "annotations": annotations or {}},
        "spec": {"containers": [{"name": "app", "image": "app"}], **spec},
    }


@pytest.mark.parametrize(
    ("namespace_labels", "reason"),
    [
        (ENABLED, Reason.NAMESPACE_ENABLED),
        ({"istio.io/rev": "canary"}, Reason.NAMESPACE_ENABLED),
        ({}, Reason.NOT_ENABLED),
        ({"istio-injection": "disabled"}, Reason.NAMESPACE_DISABLED),
    ],
)
def test_namespace_label_decides_by_default(
    namespace_labels: dict[str, str], reason: Reason
) -> None:
    decision = decide(pod(), "default", namespace_labels)
    assert decision.reason is reason
    assert decision.inject is (reason is Reason.NAMESPACE_ENABLED)


def test_pod_label_or_annotation_overrides_the_namespace() -> None:
    assert decide(pod({"sidecar.istio.io/inject": "false"}), "default", ENABLED).inject is False
    assert (
        decide(pod(annotations={"sidecar.istio.io/inject": "no"}), "default", ENABLED).reason
        is Reason.POD_DISABLED
    )
    assert decide(pod({"sidecar.istio.io/inject": "true"}), "default", {}).inject is True
    # The label wins over the annotation.
    both = pod({"sidecar.istio.io/inject": "true"}, {"sidecar.istio.io/inject": "false"})
    assert decide(both, "default", {}).reason is Reason.POD_ENABLED
    # A disabled namespace is never injected (its webhook selector excludes it).
    assert decide(pod({"sidecar.istio.io/inject": "true"}), "default",
                  {"istio-injection": "disabled"}).inject is False  # fmt: skip


@pytest.mark.parametrize(
    ("obj", "namespace", "reason"),
    [
        (pod(annotations={"sidecar.istio.io/status": "{}"}), "default", Reason.ALREADY_INJECTED),
        (pod(hostNetwork=True), "default", Reason.HOST_NETWORK),
        (pod({"sidecar.istio.io/inject": "true"}), "kube-system", Reason.IGNORED_NAMESPACE),
        (pod(), "kube-public", Reason.IGNORED_NAMESPACE),
    ],
)
def test_pods_left_alone_whatever_they_ask(
    obj: dict[str, Any], namespace: str, reason: Reason
) -> None:
    decision = decide(obj, namespace, ENABLED)
    assert decision.inject is False
    assert decision.reason is reason
