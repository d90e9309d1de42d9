from __future__ import annotations

import pytest

from pkg.config.specs.networking import Resolution
from tests.pkg.config.support import assert_rejected, assert_valid


def doc(kind: str, body: str) -> str:
    head = f"apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata: {{name: x}}\nspec:\n"
    return head + "".join(f"  {line}\n" for line in body.strip("\n").splitlines())


def test_valid_service_entries() -> None:
    config = assert_valid(
        doc(
            "ServiceEntry",
            """
hosts: [api.example.com]
addresses: [240.0.0.1]
ports:
- {number: 443, name: https, protocol: HTTPS}
- {number: 80, name: http, protocol: HTTP, targetPort: 8080}
location: MESH_EXTERNAL
resolution: STATIC
endpoints:
- {address: 10.0.0.1, ports: {https: 8443}, labels: {app: a}, locality: us/a/b, weight: 2}
""",
        )
    )
    assert config.spec.resolution is Resolution.STATIC
    assert config.spec.endpoints[0].ports == {"https": 8443}
    assert_valid(
        doc(
            "ServiceEntry",
            "hosts: ['*.wiki.org']\nresolution: DYNAMIC_DNS\nports: [{number: 443, name: tls, "
            "protocol: TLS}]",
        )
    )
    assert_valid(
        doc(
            "ServiceEntry",
            "hosts: [db.internal]\nresolution: DNS\nendpoints: [{address: db1.internal}]",
        )
    )
    assert_valid(
        doc(
            "ServiceEntry",
            "hosts: [a.svc]\nworkloadSelector: {labels: {app: a}}\nresolution: STATIC",
        )
    )


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        ("ports: [{number: 80, name: http}]", "spec.hosts", "Required value"),
        ("hosts: []", "spec.hosts", "at least 1 items"),
        ("hosts: ['*']", "spec.hosts[0]", "hostname cannot be wildcard"),
        ("hosts: ['bad host']", "spec.hosts[0]", "invalid"),
        (
            "hosts: [a.com]\naddresses: [1.2.3.4/16]\nresolution: DNS",
            "spec.addresses",
            "CIDR addresses",
        ),
        ("hosts: [a.com]\naddresses: [not-an-ip]", "spec.addresses[0]", "not a valid IP"),
        (
            "hosts: [a.com]\nports: [{number: 80, name: a}, {number: 80, name: b}]",
            "spec.ports",
            "cannot be duplicated",
        ),
        (
            "hosts: [a.com]\nports: [{number: 80, name: a}, {number: 81, name: a}]",
            "spec.ports[1]",
            "Duplicate value",
        ),
        ("hosts: [a.com]\nports: [{number: 0, name: a}]", "spec.ports[0].number", "1-65535"),
        (
            "hosts: [a.com]\nports: [{number: 80, name: A_B}]",
            "spec.ports[0].name",
            "invalid port name",
        ),
        (
            "hosts: [a.com]\nports: [{number: 80, name: a, protocol: SMTP}]",
            "spec.ports[0].protocol",
            "unsupported",
        ),
        (
            "hosts: [a.com]\nendpoints: [{address: 1.1.1.1}]",
            "spec.endpoints",
            "resolution type none",
        ),
        (
            "hosts: [a.com]\nresolution: STATIC\nworkloadSelector: {labels: {a: b}}\nendpoints: "
            "[{address: 1.1.1.1}]",
            "spec",
            "only one of WorkloadSelector or Endpoints",
        ),
        (
            "hosts: [a.com]\nresolution: STATIC\nendpoints: [{address: db.example.com}]",
            "spec.endpoints[0].address",
            "not a valid IP address",
        ),
        (
            "hosts: [a.com]\nresolution: STATIC\nports: [{number: 80, name: http}]\n"
            "endpoints: [{address: 1.1.1.1, ports: {grpc: 90}}]",
            "spec.endpoints[0].ports[grpc]",
            "not defined by the service entry",
        ),
        (
            "hosts: [a.com]\nresolution: STATIC\nendpoints: [{labels: {a: b}}]",
            "spec.endpoints[0].address",
            "Address is required",
        ),
        (
            "hosts: [a.com]\nresolution: DNS_ROUND_ROBIN\nendpoints: [{address: a.com}, {address: "
            "b.com}]",
            "spec.endpoints",
            "0 or 1 endpoint",
        ),
        ("hosts: ['*.b.com']\nresolution: DNS", "spec.hosts[0]", "FQDN"),
        ("hosts: [a.com]\nresolution: DYNAMIC_DNS", "spec.hosts[0]", "must be wildcarded"),
        (
            "hosts: [a.com, b.com]\nresolution: DNS\nports: [{number: 5432, name: tcp, protocol: "
            "TCP}]",
            "spec.ports[0]",
            "multiple hosts provided with non-HTTP",
        ),
        ("hosts: [a.com]\nexportTo: ['~', '.']", "spec.exportTo", "no one (~) and someone"),
    ],
)
def test_service_entry_rules(body: str, path: str, fragment: str) -> None:
    assert_rejected(doc("ServiceEntry", body), path, fragment)


def test_service_entry_may_export_to_no_one() -> None:
    assert_valid(doc("ServiceEntry", "hosts: [a.com]\nexportTo: ['~']"))


def test_workload_entries() -> None:
    config = assert_valid(
        doc("WorkloadEntry", "address: 10.1.2.3\nserviceAccount: sa\nports: {http: 8080}")
    )
    assert config.spec.address == "10.1.2.3"
    assert_valid(doc("WorkloadEntry", "address: vm1.example.com"))
    assert_rejected(
        doc("WorkloadEntry", "address: 'not an address'"), "spec.address", "not a valid FQDN"
    )
    assert_rejected(
        doc("WorkloadEntry", "address: 1.1.1.1\nlabels: {'a b': c}"), "spec.labels", "invalid tag"
    )
    assert_rejected(doc("WorkloadEntry", "address: unix://@s\nports: {a: 1}"), "spec.ports", "UDS")


def test_workload_groups() -> None:
    body = (
        "template: {serviceAccount: sa}\nprobe: {exec: {command: [cat, /ready]}, periodSeconds: 5}"
    )
    config = assert_valid(doc("WorkloadGroup", body))
    assert config.spec.probe.exec.command == ("cat", "/ready")
    assert_rejected(
        doc("WorkloadGroup", "metadata: {labels: {a: b}}"), "spec.template", "Required value"
    )
    assert_rejected(
        doc("WorkloadGroup", "template: {}\nprobe: {periodSeconds: -1, tcpSocket: {port: 80}}"),
        "spec.probe.periodSeconds",
        "greater than or equal to 0",
    )
    assert_rejected(
        doc("WorkloadGroup", "template: {}\nprobe: {exec: {command: [a]}, tcpSocket: {port: 1}}"),
        "spec.probe",
        "only one of httpGet, tcpSocket, exec, grpc",
    )
    assert_rejected(
        doc("WorkloadGroup", "template: {}\nprobe: {httpGet: {port: 80, scheme: FTP}}"),
        "spec.probe.httpGet.scheme",
        "HTTP, HTTPS",
    )
    assert_rejected(
        doc(
            "WorkloadGroup",
            "template: {}\nprobe: {httpGet: {port: 80, httpHeaders: [{name: a_b}]}}",
        ),
        "spec.probe.httpGet.httpHeaders[0].name",
        "not a valid header name",
    )
    assert_rejected(
        doc("WorkloadGroup", "template: {}\nprobe: {periodSeconds: 1}"),
        "spec.probe",
        "health check",
    )
    assert_rejected(
        doc("WorkloadGroup", "template: {address: 'unix:///a.sock', ports: {http: 80}}"),
        "spec.template.ports",
        "UDS may not include ports",
    )


def test_unix_socket_endpoints_need_exactly_one_service_port() -> None:
    head = "hosts: [u.local]\nresolution: STATIC\n"
    endpoints = "endpoints: [{address: 'unix:///var/run/u.sock'}]"
    assert_valid(doc("ServiceEntry", head + "ports: [{number: 80, name: http}]\n" + endpoints))
    two_ports = "ports: [{number: 80, name: http}, {number: 81, name: b}]\n"
    assert_rejected(
        doc("ServiceEntry", head + two_ports + endpoints),
        "spec.endpoints[0].address",
        "exactly 1 service port required for unix endpoints",
    )
