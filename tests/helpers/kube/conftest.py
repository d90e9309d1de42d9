"""Fixtures and object builders for tests that use the fake API server.

Other test packages reuse them with
`from tests.helpers.kube.conftest import fake_apiserver, kube  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pkg.kube.client import KubeClient, models
from tests.helpers.kube.fake_apiserver import FakeApiServer

NET = ("networking.istio.io", "v1")


@pytest.fixture
def fake_apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer() as api:
        yield api


@pytest.fixture
def kube(fake_apiserver: FakeApiServer) -> Iterator[KubeClient]:
    client = fake_apiserver.client()
    yield client
    client.close()


def secret(name: str, ns: str = "istio-system", **data: str) -> Any:
    return models.V1Secret(metadata=models.V1ObjectMeta(name=name, namespace=ns), string_data=data)


def virtual_service(name: str, host: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"hosts": [host]},
    }
