"""`istioctl proxy-config` against real Envoys and a real istiod.

The topology (module scope; every test only reads it): the secure mesh of security_helpers
(istiod, the `httpbin` server sidecar and the `sleep` client sidecar, both bootstrapped in
secure mode so they hold SDS `default` and `ROOTCA`, with auto mTLS between them), plus a
`reviews` service on the same port (two plain backends, v1 and v2) with a DestinationRule
defining subsets v1/v2 and a VirtualService `reviews-route`, and an ingress gateway Envoy with
a Gateway and a VirtualService `bookinfo` bound to it.

The real console script `.venv/bin/istioctl proxy-config ... --admin URL` runs as a
subprocess, and its tables are checked against what each Envoy's own admin API holds
(`/config_dump`, `/clusters?format=json`), computed here independently of istioctl's code;
`-o json` parses back into Envoy's protobuf types equal to Envoy's own resources; no output
shows key material or the proxy's bearer token; and `--istiod URL PROXY` (what istiod would
send the proxy) names the same clusters, listeners and routes as the proxy's admin dump.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import json_format

from istioctl.proxyconfig.configdump import known_type
from tests.helpers.tables import table_rows

from .backend import Backend
from .envoy import EnvoyProcess
from .mesh import gateway_options, join_docs, write_config
from .net import allocate_ip
from .security_helpers import (
    HTTPBIN_HOST,
    HTTPBIN_PORT,
    SecureMesh,
    secret_certificate,
    secure_mesh,
)

ISTIOCTL = str(Path(sys.executable).parent / "istioctl")
REVIEWS = "reviews.default.svc.cluster.local"
CLUSTER_COLUMNS = ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"]
LISTENER_COLUMNS = ["ADDRESSES", "PORT", "MATCH", "DESTINATION"]
ROUTE_COLUMNS = ["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"]
ENDPOINT_COLUMNS = ["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"]
EDS_COLUMNS = ["NAME", "STATUS", "LOCALITY", "CLUSTER"]
SECRET_COLUMNS = [
    "RESOURCE NAME",
    "TYPE",
    "STATUS",
    "VALID CERT",
    "SERIAL NUMBER",
    "NOT AFTER",
    "NOT BEFORE",
    "TRUST DOMAIN",
]


def reviews_yaml(backends: dict[str, Backend]) -> str:
    entries = [
        f"""
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {{name: reviews-{version}, namespace: default}}
        spec:
          address: {backend.ip}
          labels: {{app: reviews, version: {version}}}
          ports: {{http: {backend.port}}}
        """
        for version, backend in sorted(backends.items())
    ]
    return join_docs(
        f"""
        apiVersion: v1
        kind: Service
        metadata: {{name: reviews, namespace: default}}
        spec:
          selector: {{app: reviews}}
          ports:
          - {{name: http, port: {HTTPBIN_PORT}, targetPort: {HTTPBIN_PORT}}}
        """,
        *entries,
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: default}
        spec:
          host: reviews
          subsets:
          - {name: v1, labels: {version: v1}}
          - {name: v2, labels: {version: v2}}
        """,
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews-route, namespace: default}
        spec:
          hosts: [reviews]
          http:
          - match: [{uri: {prefix: /api}}]
            route:
            - {destination: {host: reviews, subset: v1}, weight: 80}
            - {destination: {host: reviews, subset: v2}, weight: 20}
          - route:
            - destination: {host: reviews, subset: v1}
        """,
        """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: bookinfo-gateway, namespace: default}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 8080, name: http, protocol: HTTP}
            hosts: ["*"]
        """,
        f"""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: bookinfo, namespace: default}}
        spec:
          hosts: [bookinfo.example.com]
          gateways: [bookinfo-gateway]
          http:
          - route:
            - destination: {{host: reviews, subset: v1, port: {{number: {HTTPBIN_PORT}}}}}
        """,
    )


@dataclass
class Topology:
    mesh: SecureMesh
    reviews: dict[str, Backend]
    gateway: EnvoyProcess

    @property
    def proxies(self) -> dict[str, EnvoyProcess]:
        return {"sleep": self.mesh.client, "httpbin": self.mesh.server, "gateway": self.gateway}


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    workdir = tmp_path_factory.mktemp("proxy-config")
    with secure_mesh(workdir) as mesh, contextlib.ExitStack() as stack:
        reviews = {}
        for version in ("v1", "v2"):
            backend = Backend(f"reviews-{version}", allocate_ip()).start()
            stack.callback(backend.stop)
            reviews[version] = backend
        write_config(mesh.config_dir, "reviews.yaml", reviews_yaml(reviews))
        opts = gateway_options(mesh.istiod, "istio-ingressgateway", allocate_ip(), "delta")
        gateway = EnvoyProcess.for_proxy(opts, workdir / "gateway")
        stack.callback(gateway.stop)
        gateway.start().wait_live(15.0)
        topology = Topology(mesh, reviews, gateway)
        mesh.client.wait_for(lambda: _client_ready(topology), 15.0, "reviews config and hosts")
        gateway.wait_for(lambda: "http.8080" in route_names(gateway), 15.0, "gateway route")
        yield topology


def _client_ready(topo: Topology) -> bool:
    """sleep holds the reviews subsets, the VirtualService's routes, and live hosts for both."""
    client = topo.mesh.client
    wanted = {f"outbound|{HTTPBIN_PORT}|{v}|{REVIEWS}" for v in ("v1", "v2")}
    dump = client.config_dump()
    if not wanted <= {c["name"] for c in clusters_of(dump)}:
        return False
    managed = [
        r for config in routes_of(dump) for vh in config.get("virtual_hosts", [])
        for r in vh.get("routes", []) if "metadata" in r
    ]  # fmt: skip
    hosts = {
        c["name"]: c.get("host_statuses", []) for c in client.clusters().get("cluster_statuses", [])
    }
    return bool(managed) and all(hosts.get(name) for name in wanted)


# -- running istioctl --------------------------------------------------------------------


def istioctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ISTIOCTL, "proxy-config", *args], capture_output=True, text=True, timeout=60, check=False
    )


def pc(*args: str) -> str:
    result = istioctl(*args)
    assert result.returncode == 0, f"istioctl proxy-config {' '.join(args)}: {result.stderr}"
    return result.stdout


# -- what Envoy itself holds (read straight from its admin API) ------------------------


def section(dump: dict[str, Any], name: str) -> dict[str, Any]:
    for config in dump.get("configs", []):
        if config.get("@type", "").endswith("." + name):
            return dict(config)
    return {}


def clusters_of(dump: dict[str, Any]) -> list[dict[str, Any]]:
    part = section(dump, "ClustersConfigDump")
    entries = part.get("dynamic_active_clusters", []) + part.get("static_clusters", [])
    return [e["cluster"] for e in entries]


def listeners_of(dump: dict[str, Any]) -> list[dict[str, Any]]:
    part = section(dump, "ListenersConfigDump")
    out = [
        e["active_state"]["listener"]
        for e in part.get("dynamic_listeners", [])
        if "active_state" in e
    ]
    return out + [e["listener"] for e in part.get("static_listeners", [])]


def routes_of(dump: dict[str, Any], *, dynamic_only: bool = False) -> list[dict[str, Any]]:
    part = section(dump, "RoutesConfigDump")
    entries = part.get("dynamic_route_configs", [])
    if not dynamic_only:
        entries = entries + part.get("static_route_configs", [])
    return [e["route_config"] for e in entries]


def route_names(envoy: EnvoyProcess) -> set[str]:
    return {r.get("name", "") for r in routes_of(envoy.config_dump())}


def provenance(resource: dict[str, Any]) -> str:
    path = resource.get("metadata", {}).get("filter_metadata", {}).get("istio", {}).get("config")
    if not path:
        return ""
    pieces = path.split("/")  # /apis/networking.istio.io/v1/namespaces/NS/KIND/NAME
    return f"{pieces[7]}.{pieces[5]}"


def _typed(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource as Envoy dumps it (an Any: `@type` plus fields) as the message itself."""
    return {key: value for key, value in resource.items() if key != "@type"}


def register_types(node: Any) -> None:
    """Make every `@type` in `node` decodable by json_format."""
    if isinstance(node, dict):
        if isinstance(node.get("@type"), str):
            assert known_type(node["@type"]), node["@type"]
        for value in node.values():
            register_types(value)
    elif isinstance(node, list):
        for item in node:
            register_types(item)


# -- tests ---------------------------------------------------------------------------------


def test_cluster_table_matches_envoys_clusters(topo: Topology) -> None:
    for name, envoy in topo.proxies.items():
        dump = envoy.config_dump()
        expected = []
        for cluster in clusters_of(dump):
            parts = cluster["name"].split("|")
            kind, rule = cluster.get("type", "STATIC"), provenance(cluster)
            if len(parts) > 3:
                direction, port, subset, fqdn = parts
                expected.append((fqdn, port, subset or "-", direction, kind, rule))
            else:
                expected.append((cluster["name"], "-", "-", "-", kind, rule))
        rows = table_rows(pc("cluster", "--admin", envoy.admin_url), CLUSTER_COLUMNS)
        got = [tuple(row.values()) for row in rows]
        assert Counter(got) == Counter(expected), name
        # istioctl's order: FQDN, subset, port, direction.
        keys = [
            (r[0], "" if r[2] == "-" else r[2], 0 if r[1] == "-" else int(r[1]), r[3]) for r in got
        ]
        assert keys == sorted(keys), name
    rows = table_rows(
        pc("c", "--admin", topo.mesh.client.admin_url, "--fqdn", "reviews"), CLUSTER_COLUMNS
    )
    assert [(r["SUBSET"], r["TYPE"], r["DESTINATION RULE"]) for r in rows] == [
        ("-", "EDS", "reviews.default"),
        ("v1", "EDS", "reviews.default"),
        ("v2", "EDS", "reviews.default"),
    ]
    rows = table_rows(
        pc("c", "--admin", topo.mesh.client.admin_url, "--fqdn", HTTPBIN_HOST), CLUSTER_COLUMNS
    )
    assert [(r["PORT"], r["DESTINATION RULE"]) for r in rows] == [
        (str(HTTPBIN_PORT), "httpbin.default")
    ]


def test_json_round_trips_into_envoys_own_resources(topo: Topology) -> None:
    client = topo.mesh.client
    dump = client.config_dump()
    register_types(dump)
    for resource, message_type, theirs in (
        ("cluster", cluster_pb2.Cluster, clusters_of(dump)),
        ("listener", listener_pb2.Listener, listeners_of(dump)),
        ("route", route_pb2.RouteConfiguration, routes_of(dump)),
    ):
        ours = json.loads(pc(resource, "--admin", client.admin_url, "-o", "json"))
        parsed = {m.name: m for m in (json_format.ParseDict(i, message_type()) for i in ours)}
        envoys = {
            m.name: m for m in (json_format.ParseDict(_typed(i), message_type()) for i in theirs)
        }
        assert parsed == envoys, resource


def test_listener_table_matches_envoys_listeners(topo: Topology) -> None:
    for name, envoy in topo.proxies.items():
        listeners = listeners_of(envoy.config_dump())
        rows = table_rows(pc("listener", "--admin", envoy.admin_url), LISTENER_COLUMNS)
        expected = Counter(
            (
                lis["address"]["socket_address"]["address"],
                str(lis["address"]["socket_address"]["port_value"]),
            )
            for lis in listeners
            for _ in lis.get("filter_chains", [])
            + ([lis["default_filter_chain"]] if "default_filter_chain" in lis else [])
        )
        assert Counter((r["ADDRESSES"], r["PORT"]) for r in rows) == expected, name
    client_rows = table_rows(pc("l", "--admin", topo.mesh.client.admin_url), LISTENER_COLUMNS)
    assert (topo.mesh.client_ip, str(HTTPBIN_PORT), f"Route: {HTTPBIN_PORT}") in {
        (r["ADDRESSES"], r["PORT"], r["DESTINATION"]) for r in client_rows
    }
    server_rows = table_rows(pc("l", "--admin", topo.mesh.server.admin_url), LISTENER_COLUMNS)
    matches = {r["MATCH"].split(";")[0] for r in server_rows if r["PORT"] == str(HTTPBIN_PORT)}
    assert {"Trans: tls", "Trans: raw_buffer"} <= matches  # mTLS (PERMISSIVE) inbound chains
    gateway_rows = table_rows(pc("l", "--admin", topo.gateway.admin_url), LISTENER_COLUMNS)
    assert [(r["PORT"], r["DESTINATION"]) for r in gateway_rows] == [("8080", "Route: http.8080")]


def test_route_table_shows_the_virtual_service_behind_each_route(topo: Topology) -> None:
    for name, envoy in topo.proxies.items():
        expected = Counter()
        for config in routes_of(envoy.config_dump()):
            for vhost in config.get("virtual_hosts", []):
                routes = vhost.get("routes", [])
                for route in routes:
                    if route.get("route", {}).get("cluster") != "PassthroughCluster":
                        expected[(config.get("name", ""), vhost["name"], provenance(route))] += 1
                if not routes:
                    expected[(config.get("name", ""), vhost["name"], "404")] += 1
        rows = table_rows(pc("route", "--admin", envoy.admin_url), ROUTE_COLUMNS)
        got = Counter((r["NAME"], r["VHOST NAME"], r["VIRTUAL SERVICE"]) for r in rows)
        assert got == expected, name
    rows = table_rows(
        pc("r", "--admin", topo.mesh.client.admin_url, "--name", str(HTTPBIN_PORT)), ROUTE_COLUMNS
    )
    by_vhost: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        by_vhost.setdefault(r["VHOST NAME"], []).append((r["MATCH"], r["VIRTUAL SERVICE"]))
    assert by_vhost[f"{REVIEWS}:{HTTPBIN_PORT}"] == [
        ("/api*", "reviews-route.default"),
        ("/*", "reviews-route.default"),
    ]
    assert by_vhost[f"{HTTPBIN_HOST}:{HTTPBIN_PORT}"] == [("/*", "")]
    rows = table_rows(pc("r", "--admin", topo.gateway.admin_url), ROUTE_COLUMNS)
    assert [(r["NAME"], r["DOMAINS"], r["VIRTUAL SERVICE"]) for r in rows] == [
        ("http.8080", "bookinfo.example.com", "bookinfo.default")
    ]


def test_endpoints_match_envoys_live_hosts(topo: Topology) -> None:
    for name, envoy in topo.proxies.items():
        expected = Counter()
        for cluster in envoy.clusters().get("cluster_statuses", []):
            for host in cluster.get("host_statuses", []):
                sock = host["address"]["socket_address"]
                health = host.get("health_status", {})
                outlier = "FAILED" if health.get("failed_outlier_check") else "OK"
                status = health.get("eds_health_status", "UNKNOWN")
                expected[
                    (f"{sock['address']}:{sock['port_value']}", status, outlier, cluster["name"])
                ] += 1
        rows = table_rows(pc("endpoint", "--admin", envoy.admin_url), ENDPOINT_COLUMNS)
        assert Counter(tuple(r.values()) for r in rows) == expected, name
    rows = table_rows(
        pc("ep", "--admin", topo.mesh.client.admin_url, "--status", "healthy"), ENDPOINT_COLUMNS
    )
    got = {(r["ENDPOINT"], r["CLUSTER"]) for r in rows}
    for version, backend in topo.reviews.items():
        assert (
            f"{backend.ip}:{backend.port}",
            f"outbound|{HTTPBIN_PORT}|{version}|{REVIEWS}",
        ) in got
    assert (
        f"{topo.mesh.server_ip}:{HTTPBIN_PORT}",
        f"outbound|{HTTPBIN_PORT}||{HTTPBIN_HOST}",
    ) in got
    # `eds`: the load assignments Envoy was sent (its /config_dump?include_eds).
    dump = topo.mesh.client.config_dump(include_eds=True)
    part = section(dump, "EndpointsConfigDump")
    expected = Counter()
    for entry in part.get("dynamic_endpoint_configs", []) + part.get("static_endpoint_configs", []):
        cla = entry["endpoint_config"]
        for group in cla.get("endpoints", []):
            for lb in group.get("lb_endpoints", []):
                sock = lb["endpoint"]["address"]["socket_address"]
                addr = f"{sock['address']}:{sock['port_value']}"
                expected[(addr, lb.get("health_status", "UNKNOWN"), cla["cluster_name"])] += 1
    rows = table_rows(pc("eds", "--admin", topo.mesh.client.admin_url), EDS_COLUMNS)
    assert Counter((r["NAME"], r["STATUS"], r["CLUSTER"]) for r in rows) == expected


def test_secrets_match_the_certificates_envoy_holds(topo: Topology) -> None:
    for name, envoy in (("sleep", topo.mesh.client), ("httpbin", topo.mesh.server)):
        rows = {
            r["RESOURCE NAME"]: r
            for r in table_rows(pc("secret", "--admin", envoy.admin_url), SECRET_COLUMNS)
        }
        assert set(rows) == {"default", "ROOTCA"}, name
        leaf = secret_certificate(envoy)
        assert leaf is not None
        assert rows["default"] == {
            "RESOURCE NAME": "default",
            "TYPE": "Cert Chain",
            "STATUS": "ACTIVE",
            "VALID CERT": "true",
            "SERIAL NUMBER": f"{leaf.serial_number:032x}",
            "NOT AFTER": leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "NOT BEFORE": leaf.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "TRUST DOMAIN": "cluster.local",
        }
        root = _root_certificate(envoy)
        assert rows["ROOTCA"]["TYPE"] == "CA"
        assert rows["ROOTCA"]["SERIAL NUMBER"] == f"{root.serial_number:032x}"
        assert rows["ROOTCA"]["VALID CERT"] == "true"


def _root_certificate(envoy: EnvoyProcess) -> x509.Certificate:
    dump = envoy.config_dump(resource="dynamic_active_secrets")
    for entry in dump.get("configs", []):
        if entry.get("name") == "ROOTCA":
            pem = base64.b64decode(
                entry["secret"]["validation_context"]["trusted_ca"]["inline_bytes"]
            )
            return x509.load_pem_x509_certificates(pem)[0]
    raise AssertionError("Envoy holds no ROOTCA")


def test_no_output_shows_key_material_or_the_token(topo: Topology) -> None:
    client = topo.mesh.client
    (metadata,) = client.bootstrap["dynamic_resources"]["ads_config"]["grpc_services"]
    token = metadata["initial_metadata"][0]["value"].removeprefix("Bearer ")
    assert len(token) > 20
    outputs = {
        args: pc(*args, "--admin", client.admin_url)
        for args in (
            ("secret", "-o", "json"),
            ("secret", "-o", "yaml"),
            ("bootstrap",),
            ("bootstrap", "-o", "yaml"),
            ("all", "-o", "json"),
            ("all", "-o", "yaml"),
            ("all",),
        )
    }
    for args, out in outputs.items():
        assert "PRIVATE KEY" not in out, args
        assert token not in out, args
    secrets = json.loads(outputs[("secret", "-o", "json")])["dynamic_active_secrets"]
    default = next(s for s in secrets if s["name"] == "default")
    key = base64.b64decode(default["secret"]["tls_certificate"]["private_key"]["inline_bytes"])
    assert key == b"[redacted]"
    bootstrap = json.loads(outputs[("bootstrap",)])["bootstrap"]
    grpc = bootstrap["dynamic_resources"]["ads_config"]["grpc_services"][0]
    assert grpc["initial_metadata"] == [{"key": "authorization", "value": "[redacted]"}]


def test_istiod_view_names_what_the_proxy_holds(topo: Topology) -> None:
    istiod = topo.mesh.istiod.http_url
    client = topo.mesh.client
    dump = client.config_dump()
    static = {
        "cluster": {
            e["cluster"]["name"]
            for e in section(dump, "ClustersConfigDump").get("static_clusters", [])
        },
        "route": {r.get("name", "") for r in routes_of(dump)}
        - {r["name"] for r in routes_of(dump, dynamic_only=True)},
        "listener": set(),
    }
    for resource in ("cluster", "listener", "route"):
        admin = {
            i["name"] for i in json.loads(pc(resource, "--admin", client.admin_url, "-o", "json"))
        }
        ours = {
            i["name"]
            for i in json.loads(pc(resource, "sleep.default", "--istiod", istiod, "-o", "json"))
        }
        assert ours == admin - static[resource], resource
        assert ours, resource
    # The same table rows too (less Envoy's static xds-grpc cluster), and the certificate
    # istiod would send is the one Envoy holds.
    admin_rows = table_rows(pc("cluster", "--admin", client.admin_url), CLUSTER_COLUMNS)
    istiod_rows = table_rows(pc("cluster", "sleep.default", "--istiod", istiod), CLUSTER_COLUMNS)
    assert istiod_rows == [r for r in admin_rows if r["SERVICE FQDN"] not in static["cluster"]]
    rows = table_rows(pc("secret", "sleep", "--istiod", istiod), SECRET_COLUMNS)
    leaf = secret_certificate(client)
    assert leaf is not None
    assert {r["RESOURCE NAME"]: r["SERIAL NUMBER"] for r in rows}[
        "default"
    ] == f"{leaf.serial_number:032x}"


def test_unreachable_sources_are_named(topo: Topology) -> None:
    dead = f"http://{allocate_ip()}:15000"
    result = istioctl("cluster", "--admin", dead, "--timeout", "5")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"Error: --admin {dead}: cannot reach {dead}/config_dump:")
    result = istioctl("listener", "nosuch.default", "--istiod", topo.mesh.istiod.http_url)
    assert result.returncode == 1
    assert "istiod has no proxy 'nosuch.default' connected" in result.stderr
