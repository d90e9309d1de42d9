"""`istioctl proxy-config` tables and JSON, on config dumps our own generators produced
(`proxyconfig_data.make_dump`): istioctl's columns, cell text, row order and filters, and
`-o json` that parses back into Envoy's types."""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from envoy.admin.v3 import clusters_pb2, config_dump_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from google.protobuf import json_format

from istioctl.cli import main
from istioctl.proxyconfig import secrets
from istioctl.proxyconfig.configdump import parse_config_dump
from istioctl.proxyconfig.routes import describe_domains
from istioctl.proxyconfig.tabwriter import render
from tests.helpers.tables import table_rows
from tests.istioctl.proxyconfig_data import GATEWAY, GeneratedDump, make_dump

REVIEWS = "reviews.default.svc.cluster.local"


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDump:
    return make_dump(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def sidecar_file(sidecar: GeneratedDump, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sidecar.write(tmp_path_factory.mktemp("dump") / "sidecar.json")


@pytest.fixture(scope="module")
def gateway_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dump = make_dump(tmp_path_factory.mktemp("ca"), GATEWAY)
    return dump.write(tmp_path_factory.mktemp("dump") / "gateway.json")


def pc(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run `istioctl proxy-config ARGV...` in-process; its stdout (exit status must be 0)."""
    code = main(["proxy-config", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


# -- tabwriter -----------------------------------------------------------------------------


def test_tabwriter_pads_every_column_but_the_last() -> None:
    text = render([("A", "BB", "C"), ("aaaa", "", "x"), ("", "b", "")], padding=5)
    assert text == "A        BB     C\naaaa            x\n         b      \n"


# -- clusters --------------------------------------------------------------------------------


def test_cluster_table_as_istioctl(capsys: pytest.CaptureFixture[str], sidecar_file: Path) -> None:
    out = pc(capsys, "cluster", "-f", str(sidecar_file))
    assert out == (
        "SERVICE FQDN                          PORT      SUBSET     DIRECTION     TYPE"
        "             DESTINATION RULE\n"
        "BlackHoleCluster                      -         -          -             STATIC"
        "           \n"
        "InboundPassthroughCluster             -         -          -             ORIGINAL_DST"
        "     \n"
        "PassthroughCluster                    -         -          -             ORIGINAL_DST"
        "     \n"
        "mongo.default.svc.cluster.local       27017     -          outbound      EDS"
        "              \n"
        "ratings.default.svc.cluster.local     9080      -          outbound      EDS"
        "              \n"
        f"{REVIEWS}     9080      -          outbound      EDS              reviews.default\n"
        f"{REVIEWS}     9080      v1         outbound      EDS              reviews.default\n"
        f"{REVIEWS}     9080      v2         outbound      EDS              reviews.default\n"
    )


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--fqdn", "reviews"], ["-", "v1", "v2"]),
        (["--subset", "v2"], ["v2"]),
        (["--port", "27017"], ["-"]),
        (["--direction", "outbound", "--fqdn", "ratings"], ["-"]),
        (["--direction", "inbound"], []),
    ],
)
def test_cluster_filters(
    capsys: pytest.CaptureFixture[str], sidecar_file: Path, flags: list[str], expected: list[str]
) -> None:
    out = pc(capsys, "clusters", "-f", str(sidecar_file), *flags)
    rows = table_rows(out, ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE"])
    assert [r["SUBSET"] for r in rows] == expected


def test_cluster_json_round_trips_into_envoy_clusters(
    capsys: pytest.CaptureFixture[str], sidecar: GeneratedDump, sidecar_file: Path
) -> None:
    out = pc(capsys, "c", "-f", str(sidecar_file), "--fqdn", "reviews", "-o", "json")
    items = json.loads(out)
    parsed = [json_format.ParseDict(item, cluster_pb2.Cluster()) for item in items]
    original = {c.name: c for c in parse_config_dump(sidecar.data).clusters()}
    assert [c.name for c in parsed] == [
        f"outbound|9080||{REVIEWS}",
        f"outbound|9080|v1|{REVIEWS}",
        f"outbound|9080|v2|{REVIEWS}",
    ]
    for cluster in parsed:
        assert cluster == original[cluster.name]
    assert "eds_cluster_config" in items[0]  # Envoy's field names, as its /config_dump
    as_yaml = pc(capsys, "c", "-f", str(sidecar_file), "--fqdn", "reviews", "-o", "yaml")
    assert yaml.safe_load(as_yaml) == items


# -- listeners -------------------------------------------------------------------------------


def test_listener_table(capsys: pytest.CaptureFixture[str], sidecar_file: Path) -> None:
    out = pc(capsys, "listener", "-f", str(sidecar_file))
    rows = table_rows(out, ["ADDRESSES", "PORT", "MATCH", "DESTINATION"])
    ports = [int(r["PORT"]) for r in rows]
    assert ports == sorted(ports)
    by_port: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        by_port.setdefault(r["PORT"], []).append((r["MATCH"], r["DESTINATION"]))
    # Chains of one listener come by DESTINATION, descending.
    for chains in by_port.values():
        assert [d for _, d in chains] == sorted((d for _, d in chains), reverse=True)
    assert ("Trans: raw_buffer; App: HTTP", "Route: 9080") in by_port["9080"]
    assert by_port["27017"] == [("ALL", "Cluster: outbound|27017||mongo.default.svc.cluster.local")]
    assert ("ALL", "PassthroughCluster") in by_port["15001"]
    assert ("Addr: *:15006", "Non-HTTP/Non-TCP") in by_port["15006"]  # the BlackHole chain
    assert ("Trans: tls; App: TCP TLS", "InboundPassthroughCluster") in by_port["15006"]
    assert {r["ADDRESSES"] for r in rows} == {"0.0.0.0"}
    # Padding 1 (istioctl's listener writer), unlike the other tables.
    assert out.splitlines()[0].startswith("ADDRESSES PORT  MATCH ")


def test_listener_summary_and_filters(
    capsys: pytest.CaptureFixture[str], sidecar_file: Path
) -> None:
    out = pc(capsys, "l", "-f", str(sidecar_file), "--verbose=false")
    assert out.splitlines() == [
        "ADDRESSES PORT  TYPE",
        "0.0.0.0   9080  HTTP+TCP",
        "0.0.0.0   15001 TCP",
        "0.0.0.0   15006 HTTP+TCP",
        "0.0.0.0   27017 TCP",
    ]
    out = pc(capsys, "listeners", "-f", str(sidecar_file), "--type", "tcp", "--verbose=false")
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["15001", "27017"]
    out = pc(capsys, "listeners", "-f", str(sidecar_file), "--port", "9080", "--address", "0.0.0.0")
    assert {line.split()[1] for line in out.splitlines()[1:]} == {"9080"}
    out = pc(capsys, "listeners", "-f", str(sidecar_file), "--address", "10.9.9.9")
    assert out.splitlines() == ["ADDRESSES PORT MATCH DESTINATION"]


def test_listener_json_round_trips(capsys: pytest.CaptureFixture[str], sidecar_file: Path) -> None:
    items = json.loads(pc(capsys, "l", "-f", str(sidecar_file), "--port", "9080", "-o", "json"))
    (listener,) = [json_format.ParseDict(i, listener_pb2.Listener()) for i in items]
    assert listener.name == "0.0.0.0_9080"
    assert listener.address.socket_address.port_value == 9080


# -- routes ----------------------------------------------------------------------------------


def test_route_table_names_the_virtual_service(
    capsys: pytest.CaptureFixture[str], sidecar_file: Path
) -> None:
    out = pc(capsys, "route", "-f", str(sidecar_file))
    assert out == (
        "NAME     VHOST NAME                                 DOMAINS                      MATCH"
        "     VIRTUAL SERVICE\n"
        "9080     ratings.default.svc.cluster.local:9080     ratings, ratings.default     /*"
        "        \n"
        f"9080     {REVIEWS}:9080     reviews, reviews.default     /api*"
        "     reviews-route.default\n"
        f"9080     {REVIEWS}:9080     reviews, reviews.default     /*"
        "        reviews-route.default\n"
    )
    # The `allow_any` virtual host only routes to the PassthroughCluster: hidden, but counted.
    out = pc(capsys, "routes", "-f", str(sidecar_file), "--verbose=false")
    assert out.splitlines() == ["NAME     VIRTUAL HOSTS", "9080     3"]


def test_gateway_route_and_listener(capsys: pytest.CaptureFixture[str], gateway_file: Path) -> None:
    out = pc(capsys, "r", "-f", str(gateway_file), "--name", "http.8080")
    rows = table_rows(out, ["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"])
    assert rows == [
        {
            "NAME": "http.8080",
            "VHOST NAME": "bookinfo.example.com:8080",
            "DOMAINS": "bookinfo.example.com",
            "MATCH": "/reviews",
            "VIRTUAL SERVICE": "bookinfo.default",
        }
    ]
    out = pc(capsys, "r", "-f", str(gateway_file), "--name", "9080")
    assert out.splitlines() == ["NAME     VHOST NAME     DOMAINS     MATCH     VIRTUAL SERVICE"]
    out = pc(capsys, "l", "-f", str(gateway_file))
    assert out.splitlines()[1].split(None, 3) == ["0.0.0.0", "8080", "ALL", "Route: http.8080"]


def _route_dump(route_configs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
                "dynamic_route_configs": [
                    {
                        "route_config": {
                            "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
                            **config,
                        }
                    }
                    for config in route_configs
                ],
            }
        ]
    }


def test_route_details_404_unknown_provenance_and_order(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dump = _route_dump(
        [
            {"name": "inbound|80||", "virtual_hosts": [{"name": "x", "domains": ["*"]}]},
            {
                "name": "8080",
                "virtual_hosts": [
                    {
                        "name": "many",
                        "domains": [
                            "a.ns.svc.cluster.local",
                            "a",
                            "a.ns",
                            "a.ns.svc",
                            "b",
                            "c:80",
                            "[fd00:10:96::7fc7]",
                            "[fd00:10:96::7fc7]:8090",
                            "d",
                        ],
                        "routes": [
                            {
                                "match": {"path": "/exact"},
                                "route": {"cluster": "c"},
                                "metadata": {"filter_metadata": {"istio": {"config": "/x/y"}}},
                            },
                            {"match": {"safe_regex": {"regex": "/r.*"}}, "route": {"cluster": "c"}},
                            {"match": {"path_separated_prefix": "/p"}, "route": {"cluster": "c"}},
                            {"match": {"prefix": "/"}, "route": {"cluster": "PassthroughCluster"}},
                        ],
                    }
                ],
            },
            {"name": "80", "virtual_hosts": []},
        ]
    )
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(dump))
    out = pc(capsys, "route", "-f", str(path))
    rows = table_rows(out, ["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"])
    many = "a, a.ns + 3 more..."
    assert [tuple(r.values()) for r in rows] == [
        ("8080", "many", many, "/exact", "<unknown>"),
        ("8080", "many", many, "regex /r.*", ""),
        ("8080", "many", many, "PathPrefix:/p", ""),
        ("inbound|80||", "x", "*", "/*", "404"),
    ]
    out = pc(capsys, "route", "-f", str(path), "--verbose=false")
    assert [line.split() for line in out.splitlines()[1:]] == [
        ["80", "0"],
        ["8080", "1"],
        ["inbound|80||", "1"],
    ]


def test_describe_domains() -> None:
    assert describe_domains([]) == ""
    assert describe_domains(["only:80"]) == "only:80"
    domains = ["r.d.svc.cluster.local", "r.d.svc.cluster.local:9080", "r.d", "r.d:9080", "r"]
    assert describe_domains(domains) == "r.d, r"
    assert describe_domains(["a", "b", "c"]) == "a, b + 1 more..."


# -- endpoints -------------------------------------------------------------------------------


def test_eds_table_and_filters(capsys: pytest.CaptureFixture[str], sidecar_file: Path) -> None:
    out = pc(capsys, "eds", "-f", str(sidecar_file))
    rows = table_rows(out, ["NAME", "STATUS", "LOCALITY", "CLUSTER"])
    assert [(r["NAME"], r["CLUSTER"]) for r in rows] == [
        ("10.1.0.4:27017", "outbound|27017||mongo.default.svc.cluster.local"),
        ("10.1.0.3:9080", "outbound|9080||ratings.default.svc.cluster.local"),
        ("10.1.0.1:9080", f"outbound|9080||{REVIEWS}"),
        ("10.1.0.2:9080", f"outbound|9080||{REVIEWS}"),
        ("10.1.0.1:9080", f"outbound|9080|v1|{REVIEWS}"),
        ("10.1.0.2:9080", f"outbound|9080|v2|{REVIEWS}"),
    ]
    assert {r["STATUS"] for r in rows} == {"HEALTHY"}
    out = pc(capsys, "eds", "-f", str(sidecar_file), "--address", "10.1.0.2:9080")
    assert [r["CLUSTER"] for r in table_rows(out, ["NAME", "STATUS", "LOCALITY", "CLUSTER"])] == [
        f"outbound|9080||{REVIEWS}",
        f"outbound|9080|v2|{REVIEWS}",
    ]
    out = pc(capsys, "eds", "-f", str(sidecar_file), "--status", "unhealthy")
    assert len(out.splitlines()) == 1
    items = json.loads(
        pc(
            capsys,
            "eds",
            "-f",
            str(sidecar_file),
            "--cluster",
            f"outbound|9080|v1|{REVIEWS}",
            "-o",
            "json",
        )
    )
    (cla,) = [json_format.ParseDict(i, endpoint_pb2.ClusterLoadAssignment()) for i in items]
    assert [
        lb.endpoint.address.socket_address.address for g in cla.endpoints for lb in g.lb_endpoints
    ] == ["10.1.0.1"]


def _host(address: str, port: int, status: str = "HEALTHY", failed: bool = False) -> dict[str, Any]:
    health: dict[str, Any] = {"eds_health_status": status}
    if failed:
        health["failed_outlier_check"] = True
    return {
        "address": {"socket_address": {"address": address, "port_value": port}},
        "health_status": health,
        "weight": 1,
    }


def test_endpoint_table_from_envoy_clusters_output(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    clusters = {
        "cluster_statuses": [
            {
                "name": "outbound|80||b.ns.svc.cluster.local",
                "host_statuses": [_host("10.0.0.9", 80, failed=True)],
            },
            {
                "name": "outbound|80||a.ns.svc.cluster.local",
                "host_statuses": [_host("10.0.0.10", 80, "UNHEALTHY"), _host("10.0.0.9", 8080)],
            },
            {
                "name": "sds",
                "host_statuses": [
                    {
                        "address": {"pipe": {"path": "/var/run/sds"}},
                        "health_status": {"eds_health_status": "HEALTHY"},
                    }
                ],
            },
            {"name": "BlackHoleCluster"},
        ]
    }
    path = tmp_path / "clusters.json"
    path.write_text(json.dumps(clusters))
    out = pc(capsys, "endpoint", "-f", str(path))
    assert out.splitlines() == [
        "ENDPOINT                STATUS        OUTLIER CHECK     CLUSTER",
        "10.0.0.10:80            UNHEALTHY     OK                "
        "outbound|80||a.ns.svc.cluster.local",
        "10.0.0.9:80             HEALTHY       FAILED            "
        "outbound|80||b.ns.svc.cluster.local",
        "10.0.0.9:8080           HEALTHY       OK                "
        "outbound|80||a.ns.svc.cluster.local",
        "unix:///var/run/sds     HEALTHY       OK                sds",
    ]
    out = pc(capsys, "ep", "-f", str(path), "--status", "healthy", "--port", "80")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["10.0.0.9:80"]
    items = json.loads(
        pc(capsys, "endpoints", "-f", str(path), "--address", "10.0.0.9", "-o", "json")
    )
    parsed = [json_format.ParseDict(i, clusters_pb2.ClusterStatus()) for i in items]
    assert [c.name for c in parsed] == [
        "outbound|80||b.ns.svc.cluster.local",
        "outbound|80||a.ns.svc.cluster.local",
    ]


def test_endpoint_table_from_a_config_dump_uses_its_load_assignments(
    capsys: pytest.CaptureFixture[str], sidecar_file: Path
) -> None:
    out = pc(capsys, "ep", "-f", str(sidecar_file), "--cluster", f"outbound|9080||{REVIEWS}")
    assert out.splitlines() == [
        "ENDPOINT          STATUS      OUTLIER CHECK     CLUSTER",
        f"10.1.0.1:9080     HEALTHY     OK                outbound|9080||{REVIEWS}",
        f"10.1.0.2:9080     HEALTHY     OK                outbound|9080||{REVIEWS}",
    ]


# -- secrets -------------------------------------------------------------------------------


def test_secret_table_shows_the_certificates_held(
    capsys: pytest.CaptureFixture[str], sidecar: GeneratedDump, sidecar_file: Path
) -> None:
    out = pc(capsys, "secret", "-f", str(sidecar_file))
    columns = list(secrets.HEADER)
    rows = {r["RESOURCE NAME"]: r for r in table_rows(out, columns)}
    leaf = x509.load_pem_x509_certificates(sidecar.credential.cert_chain_pem)[0]
    root = x509.load_pem_x509_certificates(sidecar.root_pem)[0]
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
    assert rows["ROOTCA"]["TYPE"] == "CA"
    assert rows["ROOTCA"]["SERIAL NUMBER"] == f"{root.serial_number:032x}"
    assert rows["ROOTCA"]["TRUST DOMAIN"] == "-"
    assert int(rows["default"]["SERIAL NUMBER"], 16) == sidecar.credential.serial
    later = sidecar.credential.not_after + datetime.timedelta(seconds=1)
    expired = secrets.table(parse_config_dump(sidecar.data), now=later)
    assert not isinstance(expired, str)
    assert {r[0]: r[3] for r in expired.rows} == {"default": "false", "ROOTCA": "true"}


def _secret_entry(name: str, secret: dict[str, Any], version: str = "1") -> dict[str, Any]:
    return {
        "name": name,
        "version_info": version,
        "secret": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            "name": name,
            **secret,
        },
    }


def test_secret_states_spiffe_bundles_and_empty(
    capsys: pytest.CaptureFixture[str], sidecar: GeneratedDump, tmp_path: Path
) -> None:
    root = base64.b64encode(sidecar.root_pem).decode()
    spiffe = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
        "SPIFFECertValidatorConfig",
        "trust_domains": [
            {"name": "east.local", "trust_bundle": {"inline_bytes": root}},
            {"name": "west.local", "trust_bundle": {"inline_bytes": root}},
        ],
    }
    dump = {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
                "dynamic_active_secrets": [
                    _secret_entry(
                        "ROOTCA",
                        {
                            "validation_context": {
                                "custom_validator_config": {
                                    "name": "envoy.tls.cert_validator.spiffe",
                                    "typed_config": spiffe,
                                }
                            }
                        },
                    ),
                    _secret_entry("stale", {"tls_certificate": {}}, version="uninitialized"),
                ],
                "dynamic_warming_secrets": [_secret_entry("kubernetes://gw", {})],
            }
        ]
    }
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(dump))
    rows = table_rows(pc(capsys, "s", "-f", str(path)), list(secrets.HEADER))
    assert [
        (r["RESOURCE NAME"], r["STATUS"], r["VALID CERT"], r["TRUST DOMAIN"]) for r in rows
    ] == [
        ("kubernetes://gw", "WARMING", "false", "-"),
        ("ROOTCA", "ACTIVE", "true", "east.local"),
        ("ROOTCA", "ACTIVE", "true", "west.local"),
        ("stale", "UNINITIALIZED", "false", "-"),
    ]
    empty = tmp_path / "empty.json"
    empty.write_text(
        json.dumps({"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"}]})
    )
    assert pc(capsys, "secrets", "-f", str(empty)) == "No active or warming secrets found.\n"


def test_secret_json_round_trips(capsys: pytest.CaptureFixture[str], sidecar_file: Path) -> None:
    out = pc(capsys, "secret", "-f", str(sidecar_file), "-o", "json")
    parsed = json_format.ParseDict(json.loads(out), config_dump_pb2.SecretsConfigDump())
    assert sorted(s.name for s in parsed.dynamic_active_secrets) == ["ROOTCA", "default"]


# -- bootstrap and all --------------------------------------------------------------------


def test_bootstrap_summary_and_json(capsys: pytest.CaptureFixture[str], sidecar_file: Path) -> None:
    assert pc(capsys, "bootstrap", "-f", str(sidecar_file), "-o", "short") == (
        "Istio Version: 1.28.0-pyistio\nEnvoy Version: 1.40.2/Clean/RELEASE/BoringSSL\n"
    )
    out = pc(capsys, "b", "-f", str(sidecar_file))  # json by default
    parsed = json_format.ParseDict(json.loads(out), config_dump_pb2.BootstrapConfigDump())
    assert parsed.bootstrap.node.id == "sidecar~10.1.0.9~sleep.default~default.svc.cluster.local"


def test_all_prints_every_section_with_kind_names(
    capsys: pytest.CaptureFixture[str], sidecar_file: Path
) -> None:
    out = pc(capsys, "all", "-f", str(sidecar_file))
    blocks = out.split("\n\n")
    assert [b.splitlines()[0].split()[0] for b in blocks] == [
        "Istio",
        "NAME",
        "NAME",
        "NAME",
        "RESOURCE",
        "NAME",
    ]
    columns = ["NAME", "SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"]
    cluster_rows = table_rows(blocks[1], columns)
    assert cluster_rows[0] == {
        "NAME": "cluster/BlackHoleCluster",
        "SERVICE FQDN": "cluster/BlackHoleCluster",  # istioctl renames before printing
        "PORT": "-",
        "SUBSET": "-",
        "DIRECTION": "-",
        "TYPE": "STATIC",
        "DESTINATION RULE": "",
    }
    assert cluster_rows[-1]["NAME"] == f"cluster/outbound|9080|v2|{REVIEWS}"
    assert blocks[2].splitlines()[1].split()[:3] == ["listener/0.0.0.0_9080", "0.0.0.0", "9080"]
    assert blocks[3].splitlines()[1].startswith("route/9080")
    assert {line.split()[0] for line in blocks[4].splitlines()[1:]} == {
        "secret/default",
        "secret/ROOTCA",
    }
    assert blocks[5].splitlines()[1].startswith("endpoint/10.1.0.4:27017")
    headed = pc(capsys, "a", "-f", str(sidecar_file), "--with-headers", "--port", "27017")
    assert headed.startswith("------ BOOTSTRAP INFO ------\n\nIstio Version:")
    assert "\n------ ENDPOINTS INFO ------\n\nNAME " in headed
    # --port applies to clusters, listeners and endpoints (not to routes, as in istioctl).
    clusters_part, rest = headed.split("------ LISTENER INFO ------")
    listeners_part, rest = rest.split("------ ROUTE INFO ------")
    routes_part, rest = rest.split("------ SECRET INFO ------")
    endpoints_part = rest.split("------ ENDPOINTS INFO ------")[1]
    for part in (clusters_part, listeners_part, endpoints_part):
        assert "27017" in part and "9080" not in part
    assert "ratings" in routes_part


def test_all_json_is_the_whole_config_dump(
    capsys: pytest.CaptureFixture[str], sidecar_file: Path
) -> None:
    out = pc(capsys, "all", "-f", str(sidecar_file), "-o", "json")
    dump = json_format.ParseDict(json.loads(out), config_dump_pb2.ConfigDump())
    assert [c.type_url.rsplit(".", 1)[-1] for c in dump.configs] == [
        "BootstrapConfigDump",
        "ClustersConfigDump",
        "EndpointsConfigDump",
        "ListenersConfigDump",
        "ScopedRoutesConfigDump",
        "RoutesConfigDump",
        "SecretsConfigDump",
    ]
    assert yaml.safe_load(pc(capsys, "all", "-f", str(sidecar_file), "-o", "yaml")) == json.loads(
        out
    )


def test_command_and_resource_aliases_agree(
    capsys: pytest.CaptureFixture[str], sidecar_file: Path
) -> None:
    for long, short in (("cluster", "c"), ("listener", "l"), ("route", "r"), ("secret", "s")):
        assert pc(capsys, long, "-f", str(sidecar_file)) == pc(
            capsys, short, "-f", str(sidecar_file)
        )
    code = main(["pc", "clusters", "-f", str(sidecar_file)])
    assert code == 0 and capsys.readouterr().out == pc(capsys, "cluster", "-f", str(sidecar_file))
