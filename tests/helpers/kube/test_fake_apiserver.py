"""The fake API server as the real `kubernetes` client sees it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from pkg.kube.client import ApiException, KubeClient, models, status_of
from tests.helpers.kube.conftest import NET, secret, virtual_service
from tests.helpers.kube.fake_apiserver import FakeApiServer


def test_discovery_lists_core_and_istio_groups_in_all_versions(kube: KubeClient) -> None:
    groups = {g.name: g for g in kube.apis().get_api_versions().groups}
    assert [v.version for v in groups["networking.istio.io"].versions] == [
        "v1",
        "v1beta1",
        "v1alpha3",
    ]
    assert [v.version for v in groups["security.istio.io"].versions] == ["v1", "v1beta1"]
    assert "coordination.k8s.io" in groups and "discovery.k8s.io" in groups
    assert kube.core_versions().get_api_versions().versions == ["v1"]
    dyn = kube.dynamic()
    vs_api = dyn.resources.get(api_version="networking.istio.io/v1beta1", kind="VirtualService")
    assert vs_api.namespaced and vs_api.name == "virtualservices"
    vs_api.create(body=virtual_service("r", "a.example"), namespace="default")
    got = dyn.resources.get(api_version="v1", kind="Secret")
    assert got.namespaced
    # one object, served in every version of its kind
    old = kube.custom().get_namespaced_custom_object(
        "networking.istio.io", "v1alpha3", "default", "virtualservices", "r"
    )
    assert old["apiVersion"] == "networking.istio.io/v1alpha3"
    assert old["spec"] == {"hosts": ["a.example"]}


def test_kubeconfig_reaches_the_server(fake_apiserver: FakeApiServer, tmp_path: Path) -> None:
    path = fake_apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    client = KubeClient.from_kubeconfig(str(path))
    try:
        assert client.host == fake_apiserver.url
        assert client.core().list_namespace().items == []
    finally:
        client.close()


def test_secret_round_trip_conflicts_and_not_found(kube: KubeClient) -> None:
    core = kube.core()
    created = core.create_namespaced_secret("istio-system", secret("ca", key="v1"))
    assert created.metadata.uid and created.metadata.resource_version
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_secret("istio-system", secret("ca"))
    assert status_of(exists.value) == 409 and "AlreadyExists" in str(exists.value)

    stale = core.read_namespaced_secret("ca", "istio-system")
    stale.string_data = {"key": "v2"}
    updated = core.replace_namespaced_secret("ca", "istio-system", stale)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    stale.string_data = {"key": "v3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_secret("ca", "istio-system", stale)
    assert status_of(conflict.value) == 409 and "Conflict" in str(conflict.value)

    patched = core.patch_namespaced_secret(
        "ca", "istio-system", {"metadata": {"labels": {"istio.io/ca": "root"}}}
    )
    assert patched.metadata.labels == {"istio.io/ca": "root"}
    assert patched.data == {"key": "djI="} and patched.string_data is None  # as the API does
    names = [s.metadata.name for s in core.list_secret_for_all_namespaces().items]
    assert names == ["ca"]
    core.delete_namespaced_secret("ca", "istio-system")
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_secret("ca", "istio-system")
    assert status_of(gone.value) == 404


def test_writes_istiod_makes_lease_configmap_webhooks(kube: KubeClient) -> None:
    coord = kube.coordination()
    lease = models.V1Lease(
        metadata=models.V1ObjectMeta(name="istio-ca", namespace="istio-system"),
        spec=models.V1LeaseSpec(holder_identity="istiod-a", lease_duration_seconds=15),
    )
    got = coord.create_namespaced_lease("istio-system", lease)
    got.spec.holder_identity = "istiod-b"
    taken = coord.replace_namespaced_lease("istio-ca", "istio-system", got)
    assert taken.spec.holder_identity == "istiod-b"
    with pytest.raises(ApiException) as lost:  # a second replica racing with the old version
        coord.replace_namespaced_lease("istio-ca", "istio-system", got)
    assert status_of(lost.value) == 409

    core = kube.core()
    cm = models.V1ConfigMap(
        metadata=models.V1ObjectMeta(name="istio-ca-root-cert", namespace="app"),
        data={"root-cert.pem": "PEM"},
    )
    core.create_namespaced_config_map("app", cm)
    assert core.read_namespaced_config_map("istio-ca-root-cert", "app").data == {
        "root-cert.pem": "PEM"
    }

    adm = kube.admissionregistration()
    hook = models.V1ValidatingWebhookConfiguration(
        metadata=models.V1ObjectMeta(name="istio-validator-istio-system"),
        webhooks=[
            models.V1ValidatingWebhook(
                name="validation.istio.io",
                admission_review_versions=["v1"],
                side_effects="None",
                client_config=models.AdmissionregistrationV1WebhookClientConfig(
                    url="https://127.0.0.1:15017/validate"
                ),
            )
        ],
    )
    adm.create_validating_webhook_configuration(hook)
    patched = adm.patch_validating_webhook_configuration(
        "istio-validator-istio-system",
        [{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Q0E="}],
    )
    assert patched.webhooks[0].client_config.ca_bundle == "Q0E="


def test_custom_objects_selectors_and_pages(kube: KubeClient) -> None:
    custom = kube.custom()
    for i in range(5):
        ns = "a" if i < 3 else "b"
        custom.create_namespaced_custom_object(
            *NET,
            ns,
            "virtualservices",
            virtual_service(f"r{i}", f"h{i}", {"app": "x" if i % 2 else "y"}),
        )
    everything = custom.list_cluster_custom_object(*NET, "virtualservices")
    assert [o["metadata"]["name"] for o in everything["items"]] == ["r0", "r1", "r2", "r3", "r4"]
    in_a = custom.list_namespaced_custom_object(*NET, "a", "virtualservices")
    assert len(in_a["items"]) == 3
    xs = custom.list_cluster_custom_object(*NET, "virtualservices", label_selector="app=x")
    assert [o["metadata"]["name"] for o in xs["items"]] == ["r1", "r3"]
    not_x = custom.list_cluster_custom_object(
        *NET, "virtualservices", label_selector="app notin (x),app"
    )
    assert [o["metadata"]["name"] for o in not_x["items"]] == ["r0", "r2", "r4"]
    named = custom.list_cluster_custom_object(
        *NET, "virtualservices", field_selector="metadata.name=r4"
    )
    assert [o["metadata"]["namespace"] for o in named["items"]] == ["b"]

    pages: list[str] = []
    token = None
    for _ in range(5):
        page = custom.list_cluster_custom_object(*NET, "virtualservices", limit=2, _continue=token)
        pages += [o["metadata"]["name"] for o in page["items"]]
        assert page["metadata"]["resourceVersion"] == everything["metadata"]["resourceVersion"]
        token = page["metadata"].get("continue")
        if not token:
            break
    assert pages == ["r0", "r1", "r2", "r3", "r4"]

    patched = custom.patch_namespaced_custom_object(
        *NET, "a", "virtualservices", "r0", {"spec": {"hosts": ["new"]}}
    )
    assert patched["spec"]["hosts"] == ["new"] and patched["metadata"]["generation"] == 2
    deleted = custom.delete_namespaced_custom_object(*NET, "a", "virtualservices", "r0")
    assert deleted["metadata"]["name"] == "r0"


def test_token_review_authenticates_registered_tokens(
    kube: KubeClient, fake_apiserver: FakeApiServer
) -> None:
    fake_apiserver.register_token("tok-1", "app", "sleep", ("istio-ca",))
    auth = kube.authentication()

    def review(token: str, audiences: list[str]) -> Any:
        body = models.V1TokenReview(spec=models.V1TokenReviewSpec(token=token, audiences=audiences))
        return auth.create_token_review(body).status

    ok = review("tok-1", ["istio-ca"])
    assert ok.authenticated is True
    assert ok.user.username == "system:serviceaccount:app:sleep"
    assert "system:serviceaccounts:app" in ok.user.groups
    assert ok.audiences == ["istio-ca"]
    wrong_audience = review("tok-1", ["other"])
    assert wrong_audience.authenticated is False and "audiences" in wrong_audience.error
    unknown = review("forged", ["istio-ca"])
    assert unknown.authenticated is False and unknown.error


def test_patch_flavours_as_the_real_server_answers(
    kube: KubeClient, fake_apiserver: FakeApiServer
) -> None:
    core = kube.core()
    core.create_namespaced_config_map(
        "default", models.V1ConfigMap(metadata=models.V1ObjectMeta(name="m"), data={"a": "1"})
    )
    ops = [{"op": "add", "path": "/data/b", "value": "2"}, {"op": "remove", "path": "/data/a"}]
    assert core.patch_namespaced_config_map("m", "default", ops).data == {"b": "2"}
    with pytest.raises(ApiException) as bad:
        core.patch_namespaced_config_map(
            "m", "default", [{"op": "test", "path": "/data/b", "value": "x"}]
        )
    assert status_of(bad.value) == 422
    with pytest.raises(ApiException) as stale:  # a patch may carry a precondition
        core.patch_namespaced_config_map("m", "default", {"metadata": {"resourceVersion": "1"}})
    assert status_of(stale.value) == 409

    custom = kube.custom()
    custom.create_namespaced_custom_object(
        *NET, "default", "virtualservices", virtual_service("r", "h")
    )
    with pytest.raises(ApiException) as smp:
        custom.patch_namespaced_custom_object(
            *NET,
            "default",
            "virtualservices",
            "r",
            {"spec": {"hosts": ["x"]}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert status_of(smp.value) == 415
    assert fake_apiserver.patch_types == [
        "application/json-patch+json",  # the client sends a list as a JSON patch
        "application/json-patch+json",
        "application/strategic-merge-patch+json",  # and a dict to a built-in kind as SMP
        "application/strategic-merge-patch+json",
    ]


def test_held_lists_wait_until_released(fake_apiserver: FakeApiServer, kube: KubeClient) -> None:
    fake_apiserver.hold_lists("virtualservices")
    done = threading.Event()

    def list_vs() -> None:
        kube.custom().list_namespaced_custom_object(*NET, "default", "virtualservices")
        done.set()

    thread = threading.Thread(target=list_vs, daemon=True)
    thread.start()
    kube.core().list_namespaced_secret("default")  # other resources are served meanwhile
    assert not done.wait(0.2)
    fake_apiserver.release_lists()
    assert done.wait(5)
    thread.join(5)
