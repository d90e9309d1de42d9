"""An Envoy admin config dump (`GET /config_dump`, a saved copy, or istiod's
`/debug/config_dump`) as Envoy's own typed protobufs.

The JSON is proto3 JSON of `envoy.admin.v3.ConfigDump`: a `configs` list of sections
(BootstrapConfigDump, ClustersConfigDump, [EndpointsConfigDump], ListenersConfigDump,
ScopedRoutesConfigDump, RoutesConfigDump, SecretsConfigDump), each an `Any` holding resources
that are `Any`s themselves. Decoding an `Any` needs its message type registered, so every
`@type` in the document is resolved first by importing the generated modules of its protobuf
package (from xds-protos, e.g. `envoy.extensions.filters.network.http_connection_manager.v3`).
A type no installed package defines (a vendor filter in a foreign dump) is kept as an
`xds.type.v3.TypedStruct` carrying the original type URL and fields, the way Envoy carries
configuration for types it was not built with. Fields unknown to the installed protos are
ignored. Key material is removed right after parsing (`redact`).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from envoy.admin.v3 import clusters_pb2, config_dump_pb2, config_dump_shared_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message import Message
from xds.type.v3 import typed_struct_pb2

from istioctl.proxyconfig.redact import redact

TYPE_PREFIX = "type.googleapis.com/"
TYPED_STRUCT = TYPE_PREFIX + typed_struct_pb2.TypedStruct.DESCRIPTOR.full_name
ADMIN_PREFIX = TYPE_PREFIX + "envoy.admin."

# Protobuf packages whose generated modules may be imported to resolve an `@type`.
_ROOTS = frozenset({"envoy", "xds", "udpa", "validate", "google", "opencensus", "opentelemetry"})
_PACKAGE_PART = re.compile(r"[a-z_][a-z0-9_]*")


class DumpError(Exception):
    """The input is not a usable Envoy config dump; the message says why (without origin)."""


class NothingToShow(Exception):
    """The dump holds none of what was asked for (istioctl's "no clusters found")."""


@dataclass(frozen=True)
class ConfigDump:
    """A parsed (and redacted) config dump, with istioctl's views of its sections."""

    message: config_dump_pb2.ConfigDump

    def section(self, message_type: type[Message]) -> Any | None:
        """The first section of `message_type` (e.g. ClustersConfigDump), or None."""
        for config in self.message.configs:
            if config.type_url == TYPE_PREFIX + message_type.DESCRIPTOR.full_name:
                out = message_type()
                config.Unpack(out)
                return out
        return None

    def bootstrap(self) -> Any | None:
        return self.section(config_dump_pb2.BootstrapConfigDump)

    def secrets(self) -> Any | None:
        return self.section(config_dump_pb2.SecretsConfigDump)

    def endpoints(self) -> Any | None:
        return self.section(config_dump_shared_pb2.EndpointsConfigDump)

    def clusters(self) -> list[Any]:
        """Active dynamic clusters, then static ones (istioctl leaves warming ones out)."""
        dump = self.section(config_dump_shared_pb2.ClustersConfigDump)
        if dump is None:
            return []
        entries = [*dump.dynamic_active_clusters, *dump.static_clusters]
        return [_unpack(e.cluster, cluster_pb2.Cluster) for e in entries if e.HasField("cluster")]

    def listeners(self) -> list[Any]:
        """Active dynamic listeners, then static ones."""
        dump = self.section(config_dump_shared_pb2.ListenersConfigDump)
        if dump is None:
            return []
        out = [
            _unpack(e.active_state.listener, listener_pb2.Listener)
            for e in dump.dynamic_listeners
            if e.HasField("active_state") and e.active_state.HasField("listener")
        ]
        out.extend(
            _unpack(e.listener, listener_pb2.Listener)
            for e in dump.static_listeners
            if e.HasField("listener")
        )
        return out

    def routes(self) -> list[Any]:
        """Dynamic route configurations, then static ones."""
        dump = self.section(config_dump_shared_pb2.RoutesConfigDump)
        if dump is None:
            return []
        entries = [*dump.dynamic_route_configs, *dump.static_route_configs]
        return [
            _unpack(e.route_config, route_pb2.RouteConfiguration)
            for e in entries
            if e.HasField("route_config")
        ]

    def load_assignments(self) -> list[Any] | None:
        """Every ClusterLoadAssignment (dynamic, then static); None when the dump has no
        endpoints section (Envoy adds it only for `/config_dump?include_eds`)."""
        dump = self.endpoints()
        if dump is None:
            return None
        entries = [*dump.dynamic_endpoint_configs, *dump.static_endpoint_configs]
        return [
            _unpack(e.endpoint_config, endpoint_pb2.ClusterLoadAssignment)
            for e in entries
            if e.HasField("endpoint_config")
        ]


def _unpack(value: Any, message_type: type[Message]) -> Any:
    out = message_type()
    # Accept any version's type URL for the same message (as istioctl does).
    out.ParseFromString(value.value)
    return out


def is_config_dump(data: object) -> bool:
    return isinstance(data, dict) and isinstance(data.get("configs"), list)


def is_cluster_statuses(data: object) -> bool:
    """Envoy's `GET /clusters?format=json` answer (`{"cluster_statuses": [...]}`)."""
    return isinstance(data, dict) and "cluster_statuses" in data and "configs" not in data


def parse_config_dump(data: object) -> ConfigDump:
    """Decode (and redact) a config dump's JSON; DumpError when it is not one."""
    if not is_config_dump(data):
        raise DumpError('not an Envoy config dump (expected an object with a "configs" list)')
    assert isinstance(data, dict)
    for index, config in enumerate(data["configs"]):
        type_url = config.get("@type") if isinstance(config, dict) else None
        if not isinstance(type_url, str) or not type_url.startswith(ADMIN_PREFIX):
            what = type_url if isinstance(type_url, str) else "section without @type"
            raise DumpError(f"configs[{index}] is a {what}, not an envoy.admin.v3 section")
    message = config_dump_pb2.ConfigDump()
    _parse(data, message)
    redact(message)
    return ConfigDump(message)


def parse_cluster_statuses(data: object) -> Any:
    """Decode Envoy's `/clusters?format=json` answer into `envoy.admin.v3.Clusters`."""
    if not is_cluster_statuses(data):
        raise DumpError('not Envoy /clusters?format=json output (no "cluster_statuses")')
    message = clusters_pb2.Clusters()
    _parse(data, message)
    return message


def _parse(data: Any, message: Message) -> None:
    try:
        json_format.ParseDict(_resolve(data), message, ignore_unknown_fields=True)
    except json_format.ParseError as err:
        raise DumpError(f"cannot decode it as {message.DESCRIPTOR.full_name}: {err}") from None


# -- @type resolution ------------------------------------------------------------------------


def _resolve(node: Any) -> Any:
    """A copy of `node` in which every `@type` is registered, or rewritten as a TypedStruct."""
    if isinstance(node, list):
        return [_resolve(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _resolve(value) for key, value in node.items()}
    type_url = out.get("@type")
    if isinstance(type_url, str) and not known_type(type_url):
        fields = {key: value for key, value in out.items() if key != "@type"}
        return {"@type": TYPED_STRUCT, "type_url": type_url, "value": fields}
    return out


def known_type(type_url: str) -> bool:
    """Whether the message named by `type_url` is (or can be made) available for decoding."""
    return _register(type_url.rsplit("/", 1)[-1])


@cache
def _register(full_name: str) -> bool:
    pool = descriptor_pool.Default()
    if _in_pool(pool, full_name):
        return True
    for module in _package_modules(full_name):
        try:
            importlib.import_module(module)
        except Exception:  # a broken generated module must not stop the others
            continue
    return _in_pool(pool, full_name)


def _in_pool(pool: Any, full_name: str) -> bool:
    try:
        pool.FindMessageTypeByName(full_name)
    except KeyError:
        return False
    return True


def _package_modules(full_name: str) -> Iterator[str]:
    """Generated modules (`*_pb2`) of the protobuf package of `full_name`, if it is one of
    the allowed roots (package segments are lowercase; message names start uppercase)."""
    parts: list[str] = []
    for part in full_name.split("."):
        if not _PACKAGE_PART.fullmatch(part):
            break
        parts.append(part)
    if not parts or parts[0] not in _ROOTS:
        return
    package = ".".join(parts)
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return
    if spec is None or not spec.submodule_search_locations:
        return
    for location in spec.submodule_search_locations:
        for path in sorted(Path(location).glob("*_pb2.py")):
            yield f"{package}.{path.stem}"
