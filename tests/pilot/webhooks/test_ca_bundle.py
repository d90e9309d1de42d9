"""istiod in Kubernetes mode keeps caBundle of its webhook configurations (manifests/istiod/
webhooks.yaml, created on the fake API server) equal to the mesh root: on start and after the
root changes (a plugged-in CA gets a second root, Istio's root rotation procedure)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import Encoding

from pilot.bootstrap.options import parse_options
from pilot.bootstrap.server import Istiod
from pilot.features import Features
from pilot.webhooks.ca_bundle import MUTATING, VALIDATING, bundle_patch
from pkg.kube.client import KubeClient, models
from tests.helpers.aio import eventually
from tests.helpers.kube.conftest import fake_apiserver, kube  # noqa: F401
from tests.helpers.kube.fake_apiserver import FakeApiServer
from tests.security.util import PluggedCA, install_cacerts, write_plugged_ca

WEBHOOKS = Path(__file__).resolve().parents[3] / "manifests" / "istiod" / "webhooks.yaml"


def _create_manifest_webhooks(client: KubeClient) -> None:
    api = client.admissionregistration()
    for doc in yaml.safe_load_all(WEBHOOKS.read_text()):
        if doc["kind"] == "ValidatingWebhookConfiguration":
            api.create_validating_webhook_configuration(doc)
        else:
            api.create_mutating_webhook_configuration(doc)


def _bundles(client: KubeClient) -> dict[str, list[Any]]:
    api = client.admissionregistration()
    return {
        name: [(h.client_config.ca_bundle, h.failure_policy) for h in config.webhooks]
        for name, config in (
            (VALIDATING, api.read_validating_webhook_configuration(VALIDATING)),
            (MUTATING, api.read_mutating_webhook_configuration(MUTATING)),
        )
    }


def _pem(ca: PluggedCA) -> bytes:
    return ca.root.public_bytes(Encoding.PEM)


def _yesterday() -> datetime:
    return datetime.now(UTC) - timedelta(days=1)


@pytest.fixture
async def istiod(
    tmp_path: Path,
    fake_apiserver: FakeApiServer,  # noqa: F811
    kube: KubeClient,  # noqa: F811
) -> AsyncIterator[tuple[Istiod, Path, PluggedCA]]:
    _create_manifest_webhooks(kube)
    old = write_plugged_ca(tmp_path / "old", not_before=_yesterday())
    cacerts = tmp_path / "cacerts"
    install_cacerts(cacerts, old, [old.root])
    kubeconfig = fake_apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    options = parse_options(
        [
            "--kubeconfig", str(kubeconfig), "--state-dir", str(tmp_path / "state"),
            "--grpc-addr", "127.0.0.1:0", "--secure-grpc-addr", "127.0.0.1:0",
            "--http-addr", "127.0.0.1:0", "--monitoring-addr", "",
            "--webhook-addr", "127.0.0.1:0",
        ]
    )  # fmt: skip
    features = Features(root_ca_dir=str(cacerts), multi_root_mesh=True, debounce_after=0.01)
    server = Istiod(options, features)
    await server.start()
    try:
        yield server, cacerts, old
    finally:
        await server.stop()


async def test_ca_bundle_is_patched_on_start_and_after_a_root_change(
    istiod: tuple[Istiod, Path, PluggedCA],
    kube: KubeClient,  # noqa: F811
    tmp_path: Path,
) -> None:
    server, cacerts, old = istiod
    assert server.security is not None
    first = base64.b64encode(server.security.ca.trust_bundle()).decode()
    assert base64.b64decode(first).strip() == _pem(old).strip()

    def patched(bundle: str) -> bool:
        found = _bundles(kube)
        return all(b == bundle for hooks in found.values() for b, _ in hooks)

    await eventually(lambda: patched(first), timeout=10.0, message="caBundle on start")
    found = _bundles(kube)
    assert len(found[MUTATING]) == 2
    # The validator fails closed once it can be called (the manifest ships Ignore).
    assert {policy for _, policy in found[VALIDATING]} == {"Fail"}

    new = write_plugged_ca(tmp_path / "new", not_before=_yesterday())
    install_cacerts(cacerts, old, [old.root, new.root])
    await eventually(
        lambda: _pem(new).strip() in base64.b64decode(_bundles(kube)[VALIDATING][0][0]),
        timeout=15.0,
        message="caBundle after the root change",
    )
    second = base64.b64encode(server.security.ca.trust_bundle()).decode()
    await eventually(lambda: patched(second), timeout=5.0, message="both configurations")


def test_bundle_patch_only_touches_what_differs() -> None:
    hook = models.V1ValidatingWebhook(
        name="v.istio.io",
        admission_review_versions=["v1"],
        side_effects="None",
        failure_policy="Fail",
        client_config=models.AdmissionregistrationV1WebhookClientConfig(ca_bundle="QQ=="),
    )
    assert bundle_patch([hook], "QQ==", fail_closed=True) == []
    assert bundle_patch([hook], "Qg==", fail_closed=False) == [
        {"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": "Qg=="}
    ]
