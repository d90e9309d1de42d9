"""merge_gateways: how servers of the Gateways selecting one router share its ports, as Istio's
mergeGateways (pilot/pkg/model/gateway.go) merges them."""

from __future__ import annotations

from pilot.model.gateway import MergedGateway, ServerPort, ServiceTarget, merge_gateways
from pilot.model.service import Protocol
from pkg.config.model import Kind
from tests.helpers.xds import load_configs

LABELS = {"istio": "ingressgateway"}


def gateway(name: str, servers: str, namespace: str = "istio-system", created: str = "") -> str:
    stamp = f", creationTimestamp: '{created}'" if created else ""
    return f"""
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {namespace}{stamp}}}
spec:
  selector: {{istio: ingressgateway}}
  servers:{servers}
"""


def merge(*docs: str, targets: tuple[ServiceTarget, ...] = ()) -> MergedGateway:
    configs = load_configs(["---\n".join(docs)])
    merged = merge_gateways(configs.get(Kind.GATEWAY, ()), LABELS, targets)
    assert merged is not None
    return merged


def server(number: int, name: str, protocol: str, hosts: str = '["*"]', extra: str = "") -> str:
    return f"""
  - port: {{number: {number}, name: {name}, protocol: {protocol}}}
    hosts: {hosts}{extra}"""


def test_no_selected_gateway_gives_none() -> None:
    configs = load_configs([gateway("gw", server(80, "http", "HTTP"))])
    assert merge_gateways(configs[Kind.GATEWAY], {"app": "other"}, ()) is None


def test_http_servers_of_one_port_share_a_route() -> None:
    merged = merge(
        gateway("a", server(80, "http", "HTTP", "[a.example.com]")),
        gateway("b", server(80, "http2", "HTTP2", "[b.example.com]"), namespace="default"),
    )
    assert merged.ports == (ServerPort(80, Protocol.HTTP, ""),)
    entries = merged.servers_by_route["http.80"]
    assert {e.gateway_name for e in entries} == {"istio-system/a", "default/b"}
    assert merged.route_names[merged.ports[0]] == "http.80"
    assert not merged.rejected


def test_second_tcp_server_on_a_port_is_rejected_unless_bound_elsewhere() -> None:
    merged = merge(
        gateway("a", server(31400, "tcp", "TCP")),
        gateway(
            "b",
            server(31400, "tcp-b", "TCP")
            + server(31400, "tcp-c", "TCP", extra="\n    bind: 10.1.1.1"),
            created="2025-01-01T00:00:00Z",
        ),
    )
    assert merged.ports == (
        ServerPort(31400, Protocol.TCP, ""),
        ServerPort(31400, Protocol.TCP, "10.1.1.1"),
    )
    assert len(merged.rejected) == 1 and "tcp-b" in merged.rejected[0]


def test_http_after_tcp_on_one_port_is_rejected() -> None:
    merged = merge(gateway("a", server(8080, "tcp", "TCP") + server(8080, "http", "HTTP")))
    assert [sp.protocol for sp in merged.ports] == [Protocol.TCP]
    assert "conflicts with an existing TCP server" in merged.rejected[0]


def test_tls_servers_share_a_port_by_sni_and_reject_duplicate_hosts() -> None:
    simple = "\n    tls: {mode: SIMPLE, credentialName: c}"
    passthrough = "\n    tls: {mode: PASSTHROUGH}"
    merged = merge(
        gateway(
            "a",
            server(443, "https-a", "HTTPS", "[a.example.com]", simple)
            + server(443, "https-b", "HTTPS", "[b.example.com]", passthrough)
            + server(443, "tls-c", "TLS", "[c.example.com]", passthrough)
            + server(443, "https-dup", "HTTPS", "[a.example.com]", simple),
        )
    )
    by_port = {sp: [e.server.port.name for e in merged.servers[sp]] for sp in merged.ports}
    assert by_port == {
        ServerPort(443, Protocol.HTTPS, ""): ["https-a", "https-b"],
        ServerPort(443, Protocol.TLS, ""): ["tls-c"],
    }
    # Only the terminating HTTPS server has a route configuration of its own.
    assert set(merged.servers_by_route) == {"https.443.https-a.a.istio-system"}
    assert (
        len(merged.rejected) == 1
        and "duplicate host names ['a.example.com']" in (merged.rejected[0])
    )
    entries = {e.server.port.name: e for sp in merged.ports for e in merged.servers[sp]}
    assert entries["https-a"].terminates_https and not entries["https-b"].terminates_https
    assert entries["tls-c"].is_passthrough and entries["tls-c"].sni_hosts == ("c.example.com",)


def test_plain_text_server_may_join_a_port_of_tls_servers() -> None:
    merged = merge(
        gateway(
            "a",
            server(443, "tls", "TLS", "[a.example.com]", "\n    tls: {mode: PASSTHROUGH}")
            + server(443, "tcp", "TCP"),
        )
    )
    assert [sp.protocol for sp in merged.ports] == [Protocol.TLS, Protocol.TCP]
    assert not merged.rejected


def test_hosts_are_sanitized_and_ports_translated() -> None:
    merged = merge(
        gateway(
            "a",
            server(
                80, "http", "HTTP", '["./a.example.com", "*/b.example.com", "team/c.example.com"]'
            ),
        ),
        targets=(
            ServiceTarget("gw.istio-system.svc", "istio-system", 80, "http", Protocol.HTTP, 8080),
        ),
    )
    (entry,) = merged.servers_by_route["http.8080"]
    assert entry.hosts == ("istio-system/a.example.com", "b.example.com", "team/c.example.com")
    assert entry.port == 8080
    assert merged.port_map == {8080: frozenset({80})}


def test_auto_passthrough_is_flagged() -> None:
    merged = merge(
        gateway(
            "eastwest",
            server(15443, "tls", "TLS", '["*.local"]', "\n    tls: {mode: AUTO_PASSTHROUGH}"),
        )
    )
    assert merged.auto_passthrough
    (entry,) = merged.servers[merged.ports[0]]
    assert entry.is_tls and entry.is_passthrough and not entry.is_http_server
