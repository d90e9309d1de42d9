"""`istioctl proxy-config` sources (`--admin`, `--istiod`, `-f`), their errors, and the
guarantee that no output format ever shows key material."""

from __future__ import annotations

import base64
import io
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import json_format

from istioctl.cli import build_parser, main
from istioctl.proxyconfig.command import request_from_args
from istioctl.proxyconfig.configdump import known_type, parse_config_dump
from istioctl.proxyconfig.sources import IstiodSource
from tests.istioctl.proxyconfig_data import TOKEN, GeneratedDump, make_dump

Answer = tuple[int, str, bytes]  # status, content type, body


@dataclass
class FakeHttp:
    """A real HTTP server on 127.0.0.1 answering `answer(path_with_query)`; records paths."""

    answer: Callable[[str], Answer]
    url: str = ""
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def fake_http() -> Iterator[Callable[[Callable[[str], Answer]], FakeHttp]]:
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[str], Answer]) -> FakeHttp:
        fake = FakeHttp(answer)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake.paths.append(self.path)
                status, content_type, body = fake.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        fake.url = f"http://127.0.0.1:{server.server_address[1]}"
        return fake

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDump:
    return make_dump(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def dump_file(dump: GeneratedDump, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dump.write(tmp_path_factory.mktemp("dump") / "dump.json")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["proxy-config", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return out


def envoy_json(data: dict[str, Any], *, include_eds: bool = True) -> bytes:
    """`data` as Envoy's admin writes it: snake_case field names, EDS only when asked."""
    message = parse_config_dump(data).message  # (registers every type the dump uses)
    out = json_format.MessageToDict(message, preserving_proto_field_name=True)
    if not include_eds:
        out["configs"] = [c for c in out["configs"] if "EndpointsConfigDump" not in c["@type"]]
    return json.dumps(out).encode()


# -- --admin -----------------------------------------------------------------------------


def test_admin_reads_envoys_config_dump_and_clusters(
    capsys: pytest.CaptureFixture[str],
    dump: GeneratedDump,
    dump_file: Path,
    fake_http: Callable[[Callable[[str], Answer]], FakeHttp],
) -> None:
    clusters = {
        "cluster_statuses": [
            {
                "name": "outbound|9080||ratings.default.svc.cluster.local",
                "host_statuses": [
                    {
                        "address": {"socket_address": {"address": "10.1.0.3", "port_value": 9080}},
                        "health_status": {"eds_health_status": "HEALTHY"},
                    }
                ],
            }
        ]
    }

    def answer(path: str) -> Answer:
        if path == "/config_dump":
            return 200, "application/json", envoy_json(dump.data, include_eds=False)
        if path == "/config_dump?include_eds":
            return 200, "application/json", envoy_json(dump.data)
        if path == "/clusters?format=json":
            return 200, "application/json", json.dumps(clusters).encode()
        return 404, "text/plain", b"not found"

    admin = fake_http(answer)
    for resource in ("cluster", "listener", "route", "secret", "eds", "all"):
        assert ok(capsys, resource, "--admin", admin.url) == ok(
            capsys, resource, "-f", str(dump_file)
        ), resource
    host_port = admin.url.removeprefix("http://")
    out = ok(capsys, "endpoint", "--admin", host_port)  # a bare HOST:PORT is http://
    assert out.splitlines()[1].split() == [
        "10.1.0.3:9080",
        "HEALTHY",
        "OK",
        "outbound|9080||ratings.default.svc.cluster.local",
    ]
    assert admin.paths == [
        "/config_dump",
        "/config_dump",
        "/config_dump",
        "/config_dump",
        "/config_dump?include_eds",
        "/config_dump?include_eds",
        "/clusters?format=json",
    ]


def test_admin_errors_name_the_flag_and_url(
    capsys: pytest.CaptureFixture[str],
    closed_port: int,
    fake_http: Callable[[Callable[[str], Answer]], FakeHttp],
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    code, out, err = run(capsys, "cluster", "--admin", url)
    assert (code, out) == (1, "")
    assert err == f"Error: --admin {url}: cannot reach {url}/config_dump: Connection refused\n"

    broken = fake_http(lambda path: (500, "text/plain", b"boom"))
    code, _, err = run(capsys, "listener", "--admin", broken.url)
    assert code == 1
    assert (
        f"--admin {broken.url}: Envoy answered HTTP 500 for {broken.url}/config_dump: boom" in err
    )

    html = fake_http(lambda path: (200, "text/html", b"<html>admin</html>"))
    code, _, err = run(capsys, "route", "--admin", html.url)
    assert code == 1 and "did not answer JSON" in err and html.url in err

    code, _, err = run(capsys, "cluster", "--admin", "ftp://127.0.0.1:1")
    assert code == 2 and "--admin: expected a URL such as http://" in err


# -- --istiod ------------------------------------------------------------------------------


def test_istiod_reads_what_istiod_would_send_the_proxy(
    capsys: pytest.CaptureFixture[str],
    dump: GeneratedDump,
    dump_file: Path,
    fake_http: Callable[[Callable[[str], Answer]], FakeHttp],
) -> None:
    node_id = "sidecar~10.1.0.9~sleep.default~default.svc.cluster.local"

    def answer(path: str) -> Answer:
        parsed = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(parsed.query)
        if parsed.path != "/debug/config_dump":
            return 404, "text/plain", b"404 page not found"
        if query.get("proxyID") not in (["sleep.default"], [node_id]):
            return (
                404,
                "text/plain",
                (
                    b"Proxy not connected to this Pilot instance. "
                    b"It may be connected to another instance."
                ),
            )
        return 200, "application/json", json.dumps(dump.data).encode()

    istiod = fake_http(answer)
    assert ok(capsys, "cluster", "sleep", "--istiod", istiod.url) == ok(
        capsys, "cluster", "-f", str(dump_file)
    )
    assert ok(capsys, "eds", node_id, "--istiod", istiod.url + "/") == ok(
        capsys, "eds", "-f", str(dump_file)
    )
    out = ok(capsys, "ep", "pod/sleep.default", "--istiod", istiod.url)
    assert "10.1.0.4:27017" in out
    assert [urllib.parse.parse_qs(urllib.parse.urlsplit(p).query) for p in istiod.paths] == [
        {"proxyID": ["sleep.default"]},
        {"proxyID": [node_id], "include_eds": ["true"]},
        {"proxyID": ["sleep.default"], "include_eds": ["true"]},
    ]
    code, out, err = run(capsys, "route", "other.shop", "--istiod", istiod.url)
    assert (code, out) == (1, "")
    assert err.startswith(
        f"Error: --istiod {istiod.url}: istiod has no proxy 'other.shop' connected"
    )
    assert "Proxy not connected to this Pilot instance" in err


def test_source_flags_are_checked(capsys: pytest.CaptureFixture[str], dump_file: Path) -> None:
    cases = [
        (
            ["cluster"],
            "proxy-config cluster needs PROXY (read from istiod), --admin URL or -f FILE",
        ),
        (
            ["cluster", "-f", str(dump_file), "--admin", "http://127.0.0.1:1"],
            "give only one source, not --admin and -f",
        ),
        (
            ["listener", "x.y", "-f", str(dump_file)],
            "PROXY 'x.y' is read from istiod; with -f leave it out",
        ),
        (["route", "--istiod", "http://127.0.0.1:1"], "proxy-config route needs PROXY"),
        (["secret", "-f", str(dump_file), "-o", "xml"], "-o: unsupported output format 'xml'"),
        (["all", "-f", str(dump_file), "--timeout", "0"], "--timeout: must be positive"),
    ]
    for argv, message in cases:
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, ""), argv
        assert err.startswith("Error: ") and message in err, (argv, err)
    # `-o table` is accepted for the default table.
    assert ok(capsys, "cluster", "-f", str(dump_file), "-o", "table") == ok(
        capsys, "cluster", "-f", str(dump_file)
    )


# -- -f ------------------------------------------------------------------------------------


def test_file_errors_name_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    not_json = tmp_path / "bad.json"
    not_json.write_text("{configs:")
    not_dump = tmp_path / "list.json"
    not_dump.write_text('{"items": []}')
    wrong_section = tmp_path / "wrong.json"
    wrong_section.write_text(
        json.dumps(
            {"configs": [{"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1s"}]}
        )
    )
    bad_field = tmp_path / "field.json"
    bad_field.write_text(
        json.dumps(
            {
                "configs": [
                    {
                        "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                        "static_clusters": 7,
                    }
                ]
            }
        )
    )
    empty = tmp_path / "empty.json"
    empty.write_text('{"configs": []}')
    cases = [
        (["cluster", "-f", str(missing)], f"-f {missing}: no such file"),
        (["cluster", "-f", str(not_json)], f"-f {not_json}: not JSON"),
        (
            ["cluster", "-f", str(not_dump)],
            f'-f {not_dump}: not an Envoy config dump (expected an object with a "configs" list)',
        ),
        (
            ["cluster", "-f", str(wrong_section)],
            "configs[0] is a type.googleapis.com/google.protobuf.Duration, not an envoy.admin.v3",
        ),
        (
            ["cluster", "-f", str(bad_field)],
            f"-f {bad_field}: cannot decode it as envoy.admin.v3.ConfigDump",
        ),
        (["cluster", "-f", str(empty)], "no clusters found"),
        (["listener", "-f", str(empty)], "no listeners found"),
        (["route", "-f", str(empty)], "no routes found"),
        (
            ["eds", "-f", str(empty)],
            "no endpoints section (Envoy adds it for /config_dump?include_eds)",
        ),
        (["endpoint", "-f", str(not_dump)], f"-f {not_dump}: not an Envoy config dump"),
        (
            ["endpoint", "-f", str(empty)],
            f"-f {empty}: neither /clusters?format=json output nor a config dump",
        ),
        (["bootstrap", "-f", str(empty)], "the config dump has no bootstrap section"),
    ]
    for argv, message in cases:
        code, out, err = run(capsys, *argv)
        assert (code, out) == (1, ""), argv
        assert err.startswith("Error: ") and message in err, (argv, err)


def test_file_from_stdin(
    capsys: pytest.CaptureFixture[str], dump_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = ok(capsys, "secret", "-f", str(dump_file))
    stdin = io.TextIOWrapper(io.BytesIO(dump_file.read_bytes()))
    monkeypatch.setattr("sys.stdin", stdin)
    assert ok(capsys, "secret", "-f", "-") == expected


def test_unknown_types_are_kept_as_typed_structs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    vendor = "type.googleapis.com/acme.filters.v1.Magic"
    assert not known_type(vendor)
    cluster = {
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": "outbound|80||a.ns.svc.cluster.local",
        "type": "EDS",
        "typed_extension_protocol_options": {"acme.magic": {"@type": vendor, "level": 3}},
    }
    path = tmp_path / "vendor.json"
    path.write_text(
        json.dumps(
            {
                "configs": [
                    {
                        "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                        "dynamic_active_clusters": [{"cluster": cluster}],
                    }
                ]
            }
        )
    )
    assert ok(capsys, "cluster", "-f", str(path)).splitlines()[1].split() == [
        "a.ns.svc.cluster.local",
        "80",
        "-",
        "outbound",
        "EDS",
    ]
    (item,) = json.loads(ok(capsys, "cluster", "-f", str(path), "-o", "json"))
    assert item["typed_extension_protocol_options"]["acme.magic"] == {
        "@type": "type.googleapis.com/xds.type.v3.TypedStruct",
        "type_url": vendor,
        "value": {"level": 3},
    }


# -- key material ------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    pem: str
    der: bytes

    def forbidden(self) -> list[str]:
        """Strings that must appear in no output: the PEM, its body lines, base64 forms."""
        body = [line for line in self.pem.splitlines() if line and "-----" not in line]
        return [
            "PRIVATE KEY",
            *body,
            base64.b64encode(self.pem.encode()).decode()[:40],
            base64.b64encode(self.der).decode()[:40],
            TOKEN,
        ]


def _key() -> Keys:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Keys(pem, der)


TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."


def _leaky_dump(dump: GeneratedDump, keys: Keys) -> dict[str, Any]:
    """The generated dump with unredacted keys planted everywhere a key can sit."""
    data = json.loads(json.dumps(dump.data))
    pem_b64 = base64.b64encode(keys.pem.encode()).decode()
    der_b64 = base64.b64encode(keys.der).decode()
    by_type = {c["@type"].rsplit(".", 1)[-1]: c for c in data["configs"]}
    # SDS: the workload key, inline, as a non-Envoy dump might hold it.
    for entry in by_type["SecretsConfigDump"]["dynamicActiveSecrets"]:
        if entry["name"] == "default":
            entry["secret"]["tlsCertificate"]["privateKey"] = {"inlineString": keys.pem}
    by_type["SecretsConfigDump"]["dynamicWarmingSecrets"] = [
        {
            "name": "tickets",
            "secret": {
                "@type": TLS + "Secret",
                "sessionTicketKeys": {"keys": [{"inlineBytes": der_b64}]},
            },
        },
        {
            "name": "generic",
            "secret": {
                "@type": TLS + "Secret",
                "genericSecret": {"secret": {"inlineBytes": der_b64}},
            },
        },
    ]
    # Bootstrap: a static secret (PEM as bytes) and a key pasted in node metadata.
    bootstrap = by_type["BootstrapConfigDump"]["bootstrap"]
    bootstrap["static_resources"]["secrets"] = [
        {
            "name": "static",
            "tls_certificate": {
                "private_key": {"inline_bytes": pem_b64},
                "password": {"inline_string": "hunter2"},
            },
        }
    ]
    bootstrap["node"]["metadata"]["NOTES"] = keys.pem
    # CDS: a DER key in a cluster's upstream TLS context, and a PEM in a vendor extension.
    cluster = by_type["ClustersConfigDump"]["dynamicActiveClusters"][0]["cluster"]
    cluster["transportSocket"] = {
        "name": "envoy.transport_sockets.tls",
        "typedConfig": {
            "@type": TLS + "UpstreamTlsContext",
            "commonTlsContext": {
                "tlsCertificates": [
                    {"privateKey": {"inlineBytes": der_b64}, "pkcs12": {"inlineBytes": der_b64}}
                ]
            },
        },
    }
    cluster["typedExtensionProtocolOptions"] = {
        "acme": {"@type": "type.googleapis.com/acme.v1.Keyring", "key": keys.pem}
    }
    return data


def test_no_output_format_shows_key_material(
    capsys: pytest.CaptureFixture[str], dump: GeneratedDump, tmp_path: Path
) -> None:
    keys = _key()
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(_leaky_dump(dump, keys)))
    raw = path.read_text()
    assert all(s in raw for s in keys.forbidden()[1:])  # the planted keys are there
    outputs = {}
    for resource in ("secret", "bootstrap", "cluster", "all"):
        for fmt in ("short", "json", "yaml"):
            outputs[resource, fmt] = ok(capsys, resource, "-f", str(path), "-o", fmt)
    for (resource, fmt), out in outputs.items():
        for secret in keys.forbidden():
            assert secret not in out, (resource, fmt, secret[:20])
    # The redacted fields say so; certificates, file names and everything else stay.
    secrets_dump = json.loads(outputs["secret", "json"])
    default = next(e for e in secrets_dump["dynamic_active_secrets"] if e["name"] == "default")
    assert default["secret"]["tls_certificate"]["private_key"] == {"inline_string": "[redacted]"}
    assert "certificate_chain" in default["secret"]["tls_certificate"]
    bootstrap = json.loads(outputs["bootstrap", "json"])["bootstrap"]
    static = bootstrap["static_resources"]["secrets"][0]["tls_certificate"]
    assert static["private_key"] == {"inline_bytes": base64.b64encode(b"[redacted]").decode()}
    assert static["password"] == {"inline_string": "[redacted]"}
    metadata = bootstrap["dynamic_resources"]["ads_config"]["grpc_services"][0]["initial_metadata"]
    assert metadata == [{"key": "authorization", "value": "[redacted]"}]
    assert bootstrap["node"]["metadata"]["NOTES"] == "[redacted]"
    assert bootstrap["node"]["metadata"]["NAME"] == "sleep"
    # The secret table still reads the certificates.
    assert "Cert Chain     ACTIVE" in outputs["secret", "short"]


def test_proxy_argument_reads_istiod_by_default() -> None:
    def source(*argv: str) -> object:
        return request_from_args(build_parser().parse_args(["pc", *argv])).source

    assert source("cluster", "sleep") == IstiodSource("http://127.0.0.1:8080", "sleep.default")
    assert source("r", "pod/sleep.shop", "--istiod", "127.0.0.1:9876", "--verbose") == (
        IstiodSource("http://127.0.0.1:9876", "sleep.shop")
    )
    node = "router~10.0.0.1~gw.istio-system~istio-system.svc.cluster.local"
    assert source("all", node, "--timeout", "3") == IstiodSource("http://127.0.0.1:8080", node, 3.0)
