from __future__ import annotations

import pytest
import yaml

from pkg.config.model import GroupVersionKind, Kind
from pkg.config.schema import FieldError, gvk_for, parse_object, spec_class
from pkg.config.specs import kube, networking, security
from tests.pkg.config.support import assert_rejected, assert_valid, issues, parse

VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
"""


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha3"])
@pytest.mark.parametrize(
    "kind",
    [
        "VirtualService",
        "DestinationRule",
        "Gateway",
        "ServiceEntry",
        "WorkloadEntry",
        "WorkloadGroup",
        "Sidecar",
        "EnvoyFilter",
        "ProxyConfig",
    ],
)
def test_networking_versions(version: str, kind: str) -> None:
    gvk = gvk_for(f"networking.istio.io/{version}", kind)
    assert gvk == GroupVersionKind("networking.istio.io", version, Kind(kind))


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("security.istio.io/v1", "AuthorizationPolicy"),
        ("security.istio.io/v1beta1", "PeerAuthentication"),
        ("security.istio.io/v1", "RequestAuthentication"),
        ("telemetry.istio.io/v1", "Telemetry"),
        ("telemetry.istio.io/v1alpha1", "Telemetry"),
        ("extensions.istio.io/v1alpha1", "WasmPlugin"),
        ("v1", "Service"),
        ("v1", "Secret"),
        ("v1", "Namespace"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
    ],
)
def test_other_kinds(api_version: str, kind: str) -> None:
    gvk = gvk_for(api_version, kind)
    assert gvk is not None
    assert gvk.kind == kind
    assert gvk.api_version == api_version


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("security.istio.io/v1alpha1", "AuthorizationPolicy"),
        ("apps/v1", "Deployment"),
        ("v1", "ConfigMap"),
    ],
)
def test_unsupported_pairs_have_no_gvk(api_version: str, kind: str) -> None:
    assert gvk_for(api_version, kind) is None


def test_spec_classes() -> None:
    assert spec_class(Kind.VIRTUAL_SERVICE) is networking.VirtualService
    assert spec_class(Kind.PEER_AUTHENTICATION) is security.PeerAuthentication
    assert spec_class(Kind.SERVICE) is kube.ServiceSpec
    assert spec_class(Kind.ENDPOINT_SLICE) is kube.EndpointSlice
    with pytest.raises(KeyError):
        spec_class(Kind.ENDPOINTS)


def test_parse_builds_a_config_with_meta_and_raw() -> None:
    doc = yaml.safe_load(VS)
    doc["metadata"].update(
        namespace="bookinfo",
        labels={"app": "reviews"},
        annotations={"example.com/note": "x"},
        resourceVersion="42",
        generation=3,
        creationTimestamp="2024-05-01T10:00:00Z",
        uid="1234",
        ownerReferences=[{"apiVersion": "v1", "kind": "Foo", "name": "f", "uid": "u"}],
        finalizers=["example.com/f"],
        managedFields=[{"manager": "kubectl"}],
    )
    doc["status"] = {"anything": True}
    result = parse_object(doc, default_namespace="other")
    assert result.errors == ()
    assert result.config is not None
    meta = result.config.meta
    assert (meta.kind, meta.name, meta.namespace) == (Kind.VIRTUAL_SERVICE, "reviews", "bookinfo")
    assert meta.api_version == "networking.istio.io/v1"
    assert meta.labels == {"app": "reviews"}
    assert meta.annotations == {"example.com/note": "x"}
    assert (meta.resource_version, meta.generation) == ("42", 3)
    assert meta.creation_timestamp == 1714557600.0
    assert result.config.raw is doc
    assert isinstance(result.config.spec, networking.VirtualService)


def test_namespace_defaults() -> None:
    assert assert_valid(VS, namespace="bookinfo").namespace == "bookinfo"
    ns = assert_valid("apiVersion: v1\nkind: Namespace\nmetadata: {name: mesh, labels: {a: b}}\n")
    assert ns.namespace == ""
    assert ns.meta.labels == {"a": "b"}


def test_field_error_format() -> None:
    error = FieldError("VirtualService", "default", "r", "spec.hosts[0]", "bad")
    assert str(error) == "VirtualService/default/r: spec.hosts[0]: bad"
    assert str(FieldError("", "default", "", "", "bad")) == "/default/: bad"


def test_errors_carry_kind_namespace_and_name() -> None:
    result = parse(VS.replace("hosts: [reviews]", "hosts: [1]"), namespace="ns1")
    assert [str(e) for e in result.errors] == [
        'VirtualService/ns1/reviews: spec.hosts[0]: must be of type string: "integer"'
    ]


def test_missing_api_version_and_kind() -> None:
    result = parse_object({"metadata": {"name": "x"}})
    assert issues(result) == [("apiVersion", "Required value"), ("kind", "Required value")]


def test_unknown_istio_kind_names_kind() -> None:
    result = parse(VS.replace("kind: VirtualService", "kind: VirtualServise"))
    assert issues(result)[0][0] == "kind"
    assert "VirtualServise" in issues(result)[0][1]


def test_unknown_istio_version_names_api_version() -> None:
    result = parse(VS.replace("networking.istio.io/v1", "networking.istio.io/v2"))
    assert issues(result)[0][0] == "apiVersion"
    assert "v2" in issues(result)[0][1]
    result = parse(VS.replace("networking.istio.io/v1", "networkin.istio.io/v1"))
    assert issues(result)[0][0] == "apiVersion"


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("apps/v1", "Deployment"),
        ("v1", "ServiceAccount"),
        ("v1", "ConfigMap"),
        ("v1", "Pod"),
        ("gateway.networking.k8s.io/v1", "Gateway"),
    ],
)
def test_other_kubernetes_kinds_are_ignored(api_version: str, kind: str) -> None:
    result = parse_object({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}})
    assert result.ignored
    assert result.config is None
    assert result.errors == ()


def test_an_older_endpoint_slice_version_is_an_error() -> None:
    result = parse_object(
        {
            "apiVersion": "discovery.k8s.io/v1beta1",
            "kind": "EndpointSlice",
            "metadata": {"name": "x"},
        }
    )
    assert not result.ignored
    assert issues(result)[0][0] == "apiVersion"


def test_not_a_mapping() -> None:
    result = parse_object(["a"])
    assert result.config is None
    assert "must be an object" in result.errors[0].reason


def test_unknown_top_level_field() -> None:
    assert_rejected(VS + "specs: {}\n", "specs", 'unknown field "specs"')


@pytest.mark.parametrize(
    ("metadata", "path", "fragment"),
    [
        ("{}", "metadata.name", "Required value"),
        ("{name: Reviews}", "metadata.name", "RFC 1123 subdomain"),
        ("{name: r, namespace: Bad_NS}", "metadata.namespace", "RFC 1123 label"),
        ("{name: r, labels: {app: 'a b'}}", "metadata.labels", "invalid label value"),
        ("{name: r, labels: {'bad key!': a}}", "metadata.labels", "invalid key"),
        ("{name: r, labels: {version: 1}}", "metadata.labels[version]", "must be of type string"),
        ("{name: r, labels: [a]}", "metadata.labels", "must be of type object"),
        ("{name: r, annotations: {'/x': a}}", "metadata.annotations", "prefix part"),
        ("{name: r, creationTimestamp: yesterday}", "metadata.creationTimestamp", "RFC 3339"),
        ("{name: r, nmae: x}", "metadata.nmae", "unknown field"),
    ],
)
def test_metadata_rules(metadata: str, path: str, fragment: str) -> None:
    assert_rejected(
        VS.replace("metadata:\n  name: reviews", f"metadata: {metadata}"), path, fragment
    )


def test_missing_metadata() -> None:
    assert_rejected(VS.replace("metadata:\n  name: reviews\n", ""), "metadata.name", "Required")


def test_service_names_are_dns1035_labels() -> None:
    svc = "apiVersion: v1\nkind: Service\nmetadata: {name: NAME}\nspec: {ports: [{port: 80}]}\n"
    assert_valid(svc.replace("NAME", "reviews"))
    assert_rejected(svc.replace("NAME", "1reviews"), "metadata.name", "DNS-1035")
    assert_rejected(svc.replace("NAME", "a.b"), "metadata.name", "DNS-1035")


def test_reserved_istio_annotations_are_rejected() -> None:
    doc = VS.replace(
        "name: reviews", "name: reviews\n  annotations: {internal.istio.io/parents: x}"
    )
    assert_rejected(doc, "metadata.annotations[internal.istio.io/parents]", "may not be set")


def test_dry_run_annotation_only_on_authorization_policies() -> None:
    doc = VS.replace("name: reviews", "name: reviews\n  annotations: {istio.io/dry-run: 'true'}")
    assert_rejected(doc, "metadata.annotations[istio.io/dry-run]", "unsupported annotation")


def test_spec_null_is_an_error_and_absent_spec_is_empty() -> None:
    assert_rejected(VS.split("spec:")[0] + "spec:\n", "spec", 'must be of type object: "null"')
    result = parse(VS.split("spec:")[0])
    assert issues(result) == [("spec", "http, tcp or tls must be provided in virtual service")]


def test_warnings_do_not_invalidate() -> None:
    result = parse(VS + "  - route:\n    - destination: {host: ratings}\n")
    assert result.config is not None
    assert result.errors == ()
    assert [w.path for w in result.warnings] == ["spec.http[1]"]


def test_kubernetes_types_read_null_as_unset() -> None:
    # `kubectl create --dry-run -o yaml` writes `creationTimestamp: null` and `status: {}`.
    config = assert_valid(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s, creationTimestamp: null}\n"
        "spec: {clusterIP: null, ports: [{port: 80, name: http, targetPort: null}]}\nstatus: {}\n"
    )
    assert config.meta.creation_timestamp == 0.0
    assert config.spec.cluster_ip == ""
    assert (
        assert_valid(VS.replace("name: reviews", "name: reviews\n  labels: null")).meta.labels == {}
    )
    assert_valid("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nspec: null\n")
