from __future__ import annotations

import pytest

from pkg.config.specs.kube import AddressType, Protocol, ServiceType
from tests.pkg.config.support import assert_rejected, assert_valid, warnings_of

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: reviews, labels: {app: reviews}}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 9080, protocol: TCP, nodePort: 30080}
  - {name: grpc-api, port: 9090, targetPort: grpc, appProtocol: grpc}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  externalTrafficPolicy: Local
  internalTrafficPolicy: Cluster
  publishNotReadyAddresses: true
status: {loadBalancer: {}}
"""


def test_full_service() -> None:
    config = assert_valid(SERVICE)
    spec = config.spec
    assert spec.type is ServiceType.NODE_PORT
    assert spec.cluster_ip == "10.96.0.10"
    assert spec.ports[1].target_port == "grpc"
    assert spec.ports[0].protocol is Protocol.TCP
    assert spec.session_affinity_config.client_ip.timeout_seconds == 60


@pytest.mark.parametrize(
    ("spec", "path", "fragment"),
    [
        ("{selector: {a: b}}", "spec.ports", "Required value"),
        ("{ports: [{port: 80}, {port: 81}]}", "spec.ports[0].name", "Required value"),
        ("{ports: [{name: a, port: 80}, {name: a, port: 81}]}", "spec.ports[1].name", "Duplicate"),
        ("{ports: [{port: 0}]}", "spec.ports[0].port", "between 1 and 65535"),
        ("{ports: [{targetPort: 80}]}", "spec.ports[0].port", "Required value"),
        (
            "{ports: [{port: 80, targetPort: Not_A_Name}]}",
            "spec.ports[0].targetPort",
            "IANA_SVC_NAME",
        ),
        ("{ports: [{port: 80, protocol: ICMP}]}", "spec.ports[0].protocol", "Unsupported value"),
        ("{ports: [{port: 80}], clusterIP: 10.0.0.300}", "spec.clusterIP", "not a valid IP"),
        ("{ports: [{port: 80}], type: Headless}", "spec.type", "Unsupported value"),
        ("{type: ExternalName}", "spec.externalName", "Required value"),
        ("{ports: [{port: 80}], loadBalancerIp: 1.2.3.4}", "spec.loadBalancerIp", "unknown field"),
    ],
)
def test_service_rules(spec: str, path: str, fragment: str) -> None:
    text = f"apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {spec}\n"
    assert_rejected(text, path, fragment)


def test_headless_and_external_name_services_need_no_ports() -> None:
    assert_valid("apiVersion: v1\nkind: Service\nmetadata: {name: h}\nspec: {clusterIP: None}\n")
    assert_valid(
        "apiVersion: v1\nkind: Service\nmetadata: {name: e}\n"
        "spec: {type: ExternalName, externalName: db.example.com}\n"
    )


def test_port_naming_warnings() -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n"
    assert [p for p, _ in warnings_of(text)] == ["spec.ports[0]"]
    text = text.replace("{port: 80}", "{port: 80, name: web}")
    assert [p for p, _ in warnings_of(text)] == ["spec.ports[0].name"]
    assert warnings_of(text.replace("name: web", "name: http-web")) == []


ENDPOINT_SLICE = """
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-abc
  labels: {kubernetes.io/service-name: reviews}
addressType: IPv4
endpoints:
- addresses: [10.1.0.5]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: node-1
  zone: us-east-1a
  targetRef: {kind: Pod, name: reviews-v1-abc, namespace: default, uid: u}
  hints: {forZones: [{name: us-east-1a}]}
ports:
- {name: http, port: 9080, protocol: TCP, appProtocol: http}
"""


def test_endpoint_slice() -> None:
    config = assert_valid(ENDPOINT_SLICE)
    assert config.spec.address_type is AddressType.IPV4
    assert config.spec.endpoints[0].conditions.ready is True
    assert config.spec.ports[0].port == 9080
    assert config.meta.labels["kubernetes.io/service-name"] == "reviews"


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        ("addressType: IPv4\n", "", "addressType", "Required value"),
        ("[10.1.0.5]", "[10.1.0.500]", "endpoints[0].addresses[0]", "not a valid IP"),
        ("[10.1.0.5]", "['fd00::1']", "endpoints[0].addresses[0]", "not an IPv4 address"),
        ("[10.1.0.5]", "[]", "endpoints[0].addresses", "at least 1 items"),
        ("port: 9080", "port: 90800", "ports[0].port", "between 0 and 65535"),
        ("ready: true", "ready: yes please", "endpoints[0].conditions.ready", "boolean"),
        ("addressType: IPv4\n", "addressType: IPv4\nspec: {}\n", "spec", "unknown field"),
    ],
)
def test_endpoint_slice_rules(old: str, new: str, path: str, fragment: str) -> None:
    assert_rejected(ENDPOINT_SLICE.replace(old, new, 1), path, fragment)


def test_endpoint_slice_without_service_label_warns() -> None:
    text = ENDPOINT_SLICE.replace("  labels: {kubernetes.io/service-name: reviews}\n", "")
    assert [p for p, _ in warnings_of(text)] == ["metadata.labels[kubernetes.io/service-name]"]


def test_tls_secret() -> None:
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: cert}\ntype: kubernetes.io/tls\n"
        "data: {tls.crt: Y2VydA==}\nstringData: {tls.key: key}\n"
    )
    secret = assert_valid(text).spec
    assert secret.get("tls.crt") == b"cert"
    assert secret.get("tls.key") == b"key"
    assert_rejected(text.replace("stringData: {tls.key: key}\n", ""), "data[tls.key]", "Required")
    assert_rejected(text.replace("Y2VydA==", "not-base64!"), "data[tls.crt]", "base64")
    assert_rejected(text.replace("tls.crt:", "'bad key':"), "data[bad key]", "valid config key")


def test_namespace() -> None:
    config = assert_valid(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: bookinfo, labels: {istio-injection: "
        "enabled}}\n"
        "spec: {finalizers: [kubernetes]}\n"
    )
    assert config.spec.finalizers == ("kubernetes",)
    assert_rejected(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: book.info}\n",
        "metadata.name",
        "RFC 1123 label",
    )
