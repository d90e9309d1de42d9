"""`proxy-status PROXY`: istiod's view of one proxy against the proxy's own config dump
(istioctl/pkg/writer/compare).

For clusters, listeners and routes, in that order, both dumps are reduced as istioctl reduces
them: only dynamic resources (active clusters; listeners with an active state, their draining
state dropped), sorted by name (and a route configuration's virtual hosts too), without what
Envoy adds on receipt (`version_info`, `last_updated`, the listener entry's own `name`).
Each side is then written as indented proto JSON (keys sorted, so map order cannot differ)
and compared line by line. The result is `Clusters Match`, or `Clusters Don't Match` followed
by a unified diff (`--- Istiod Clusters` / `+++ Envoy Clusters`, 7 lines of context); the
routes line ends with `(RDS last loaded at <RFC 1123 time>)`, the newest `last_updated` of
Envoy's route configurations.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from envoy.admin.v3 import config_dump_pb2, config_dump_shared_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from istioctl.proxyconfig.configdump import ConfigDump, known_type
from pkg.xds import typeurls

CONTEXT = 7


@dataclass(frozen=True, slots=True)
class SectionDiff:
    title: str  # Clusters | Listeners | Routes
    diff: str  # "" when both sides match
    note: str = ""

    def render(self) -> str:
        verdict = "Match" if not self.diff else "Don't Match"
        head = f"{self.title} {verdict}{self.note}\n"
        return head if not self.diff else f"{head}{self.diff}\n"


def from_response(response: discovery_pb2.DiscoveryResponse) -> ConfigDump:
    """istiod's `istio.io/debug/config_dump` answer: the dump's sections as resources."""
    message = config_dump_pb2.ConfigDump(configs=response.resources)
    _register(message)
    return ConfigDump(message)


def _register(message: Message) -> None:
    """Make every nested Any's type available for JSON (binary input names them only)."""
    pool = descriptor_pool.Default()
    for value in _nested_anys(message):
        if known_type(value.type_url):
            name = value.type_url.rsplit("/", 1)[-1]
            inner = message_factory.GetMessageClass(pool.FindMessageTypeByName(name))()
            inner.ParseFromString(value.value)
            _register(inner)


def _nested_anys(message: Message) -> Iterator[any_pb2.Any]:
    for fd, value in message.ListFields():
        if fd.message_type is None:
            continue
        if fd.message_type.GetOptions().map_entry:
            items = [v for v in value.values() if isinstance(v, Message)]
        elif fd.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, any_pb2.Any):
                yield item
            else:
                yield from _nested_anys(item)


def compare(istiod: ConfigDump, envoy: ConfigDump) -> list[SectionDiff]:
    return [
        _diff("Clusters", _clusters, istiod, envoy),
        _diff("Listeners", _listeners, istiod, envoy),
        _diff("Routes", _routes, istiod, envoy, _rds_loaded(envoy)),
    ]


def _diff(
    title: str,
    reduce: Callable[[ConfigDump], Any],
    istiod: ConfigDump,
    envoy: ConfigDump,
    note: str = "",
) -> SectionDiff:
    ours, theirs = _text(reduce(istiod), title), _text(reduce(envoy), title)
    lines = difflib.unified_diff(
        ours, theirs, f"Istiod {title}", f"Envoy {title}", n=CONTEXT, lineterm="\n"
    )
    return SectionDiff(title, "".join(lines), note)


def _text(section: Message | None, title: str) -> list[str]:
    if section is None:
        return [f"the config dump has no {title} section\n"]
    try:
        text = json_format.MessageToJson(section, indent=4, sort_keys=True)
    except (TypeError, KeyError) as err:  # an Any of a type no installed package defines
        return [f"cannot show the {title} section: {err}\n"]
    return [line + "\n" for line in text.splitlines()]


def _name(value: any_pb2.Any, message_type: type[Message]) -> str:
    message = message_type()
    message.ParseFromString(value.value)
    return str(getattr(message, "name", ""))


def _clusters(dump: ConfigDump) -> Any:
    section = dump.section(config_dump_shared_pb2.ClustersConfigDump)
    if section is None:
        return None
    out = config_dump_shared_pb2.ClustersConfigDump()
    for entry in sorted(
        section.dynamic_active_clusters, key=lambda e: _name(e.cluster, cluster_pb2.Cluster)
    ):
        kept = out.dynamic_active_clusters.add()
        kept.CopyFrom(entry)
        kept.cluster.type_url = typeurls.CLUSTER
        kept.ClearField("version_info")
        kept.ClearField("last_updated")
    return out


def _listeners(dump: ConfigDump) -> Any:
    section = dump.section(config_dump_shared_pb2.ListenersConfigDump)
    if section is None:
        return None
    out = config_dump_shared_pb2.ListenersConfigDump()
    active = [e for e in section.dynamic_listeners if e.HasField("active_state")]
    for entry in sorted(
        active, key=lambda e: _name(e.active_state.listener, listener_pb2.Listener)
    ):
        kept = out.dynamic_listeners.add()
        kept.CopyFrom(entry)
        kept.ClearField("name")
        kept.ClearField("draining_state")
        kept.active_state.listener.type_url = typeurls.LISTENER
        kept.active_state.ClearField("version_info")
        kept.active_state.ClearField("last_updated")
    return out


def _routes(dump: ConfigDump) -> Any:
    section = dump.section(config_dump_shared_pb2.RoutesConfigDump)
    if section is None:
        return None
    out = config_dump_shared_pb2.RoutesConfigDump()
    for entry in sorted(
        section.dynamic_route_configs,
        key=lambda e: _name(e.route_config, route_pb2.RouteConfiguration),
    ):
        route = route_pb2.RouteConfiguration()
        route.ParseFromString(entry.route_config.value)
        hosts = sorted(route.virtual_hosts, key=lambda v: v.name)
        route.ClearField("virtual_hosts")
        route.virtual_hosts.extend(hosts)
        kept = out.dynamic_route_configs.add()
        kept.route_config.Pack(route, deterministic=True)
    return out


def _rds_loaded(envoy: ConfigDump) -> str:
    section = envoy.section(config_dump_shared_pb2.RoutesConfigDump)
    if section is None:
        return ""
    latest = max((e.last_updated.ToNanoseconds() for e in section.dynamic_route_configs), default=0)
    if latest <= 0:
        return ""
    at = datetime.datetime.fromtimestamp(latest / 1e9).astimezone()
    return f" (RDS last loaded at {at.strftime('%a, %d %b %Y %H:%M:%S %Z')})"
