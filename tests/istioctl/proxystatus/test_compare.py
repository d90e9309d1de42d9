"""proxy-status PROXY: istiod's view against Envoy's own dump, as istioctl compares them."""

from __future__ import annotations

import argparse
import io
from typing import Any

from envoy.admin.v3 import config_dump_pb2, config_dump_shared_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2, json_format

from istioctl.cli import build_parser
from istioctl.proxyconfig.configdump import parse_config_dump
from istioctl.proxystatus.command import proxy_status
from istioctl.proxystatus.compare import compare, from_response


def _any(message: Any) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


def dump(regex: str = "v1", envoy: bool = False) -> config_dump_pb2.ConfigDump:
    """A dump with two clusters, a listener and a route configuration; `envoy` adds what
    Envoy adds (versions, times, the listener entry's name, a draining state) and shuffles
    the order of resources and virtual hosts."""
    clusters = config_dump_shared_pb2.ClustersConfigDump()
    names = [
        "outbound|9080||b.default.svc.cluster.local",
        "outbound|9080||a.default.svc.cluster.local",
    ]
    for name in names if envoy else reversed(names):
        entry = clusters.dynamic_active_clusters.add(cluster=_any(cluster_pb2.Cluster(name=name)))
        if envoy:
            entry.version_info = "v-" + name
            entry.last_updated.FromSeconds(1_700_000_000)
    listeners = config_dump_shared_pb2.ListenersConfigDump()
    hcm = hcm_pb2.HttpConnectionManager(stat_prefix="outbound_0.0.0.0_9080")
    hcm.rds.route_config_name = "9080"
    listener = listener_pb2.Listener(name="0.0.0.0_9080")
    listener.filter_chains.add().filters.add(name="hcm", typed_config=_any(hcm))
    entry = listeners.dynamic_listeners.add()
    entry.active_state.listener.CopyFrom(_any(listener))
    if envoy:
        entry.name = "0.0.0.0_9080"
        entry.active_state.version_info = "x"
        entry.active_state.last_updated.FromSeconds(1_700_000_000)
        entry.draining_state.listener.CopyFrom(_any(listener))
    routes = config_dump_shared_pb2.RoutesConfigDump()
    route = route_pb2.RouteConfiguration(name="9080")
    hosts = ["b.default.svc.cluster.local:9080", "a.default.svc.cluster.local:9080"]
    for host in hosts if envoy else reversed(hosts):
        vhost = route.virtual_hosts.add(name=host, domains=[host])
        header = vhost.routes.add().match.headers.add(name="x-version")
        header.string_match.safe_regex.regex = regex
    entry = routes.dynamic_route_configs.add(route_config=_any(route))
    if envoy:
        entry.version_info = "y"
        entry.last_updated.FromSeconds(1_700_000_123)
    out = config_dump_pb2.ConfigDump()
    out.configs.extend(
        [_any(config_dump_pb2.BootstrapConfigDump()), _any(clusters), _any(listeners), _any(routes)]
    )
    return out


def envoy_json(message: config_dump_pb2.ConfigDump) -> Any:
    """Envoy's admin JSON keeps the proto field names."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def test_equal_config_matches_whatever_envoy_adds() -> None:
    istiod = parse_config_dump(json_format.MessageToDict(dump()))  # istiod's camelCase JSON
    envoy = parse_config_dump(envoy_json(dump(envoy=True)))
    text = "".join(s.render() for s in compare(istiod, envoy))
    lines = text.splitlines()
    assert lines[:2] == ["Clusters Match", "Listeners Match"]
    assert lines[2].startswith("Routes Match (RDS last loaded at ")
    assert len(lines) == 3


def test_a_differing_route_is_shown_as_a_unified_diff() -> None:
    response = discovery_pb2.DiscoveryResponse(resources=dump(regex="(a|b){40}").configs)
    istiod = from_response(response)  # over ADS: binary sections
    envoy = parse_config_dump(envoy_json(dump(envoy=True)))
    clusters, listeners, routes = compare(istiod, envoy)
    assert not clusters.diff and not listeners.diff
    text = routes.render()
    assert text.startswith("Routes Don't Match (RDS last loaded at ")
    assert "--- Istiod Routes\n+++ Envoy Routes\n@@ " in text
    changed = [line.split() for line in text.splitlines() if line[:1] in "+-"]
    regexes = [c for c in changed if c[1:2] == ['"regex":']]
    assert regexes == [["-", '"regex":', '"(a|b){40}"'], ["+", '"regex":', '"v1"']] * 2


def test_missing_section_is_a_difference() -> None:
    istiod = parse_config_dump(json_format.MessageToDict(dump()))
    bare = config_dump_pb2.ConfigDump()
    bare.configs.append(_any(config_dump_pb2.BootstrapConfigDump()))
    envoy = parse_config_dump(envoy_json(bare))
    assert [bool(s.diff) for s in compare(istiod, envoy)] == [True, True, True]
    assert "the config dump has no Clusters section" in compare(istiod, envoy)[0].diff


def run(*argv: str) -> tuple[int, str, str]:
    args: argparse.Namespace = build_parser().parse_args(["proxy-status", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = proxy_status(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_bad_invocations_name_the_problem() -> None:
    code, _, err = run("app.default")
    assert code == 1 and "--admin ENVOY_ADMIN_URL" in err and "--file" in err
    code, _, err = run("--admin", "http://127.0.0.1:15000")
    assert code == 1 and "need a PROXY" in err
    code, _, err = run("-o", "xml")
    assert code == 1 and "--output 'xml'" in err
    code, _, err = run("--istiod", "ftp://x")
    assert code == 1 and "--istiod" in err
    code, _, err = run("--xds-address", "127.0.0.1:1", "--timeout", "2")
    assert code == 1 and err.startswith("Error: --xds-address: 127.0.0.1:1: UNAVAILABLE")
