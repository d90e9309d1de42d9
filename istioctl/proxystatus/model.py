"""Per-proxy sync statuses, read from either of istiod's answers.

- HTTP `/debug/syncz`: Istio's SyncStatus list (`proxy`, `cluster_id`, `proxy_version`, a
  `resources` map of type URL → `{sent, acked, sentTime, lastError}`). pyistio adds `status`
  and `lastUpdated` per type and `istiod` per entry; without them (a real istiod) the status
  is derived from the nonces by Istio's own rule (pkg/xds/sync_status.py).
- `istio.io/debug/syncz` over ADS: a DiscoveryResponse of Any-packed
  `envoy.service.status.v3.ClientConfig`, one per proxy; the istiod is the `ID` in the
  JSON `control_plane.identifier` (`MISSING` / `INVALID` when absent or unreadable, as
  istioctl's CpInfo).

Both become a `SyncReport`: the statuses, plus a DiscoveryResponse for `-o json|yaml` (the raw
one from ADS, an equivalent one built from the HTTP answer).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.status.v3 import csds_pb2
from google.protobuf import any_pb2, struct_pb2, timestamp_pb2

from pkg.xds import typeurls
from pkg.xds.sync_status import ConfigStatus, client_status, config_status

# The per-type fields of Istio's SyncStatus, for answers without a `resources` map.
_SHORT_FIELDS = {
    "cluster": typeurls.CLUSTER,
    "listener": typeurls.LISTENER,
    "route": typeurls.ROUTE,
    "endpoint": typeurls.ENDPOINT,
    "extensionconfig": typeurls.EXTENSION_CONFIG,
}


class SyncError(ValueError):
    """istiod's answer is not a sync status; the message says why."""


@dataclass(frozen=True, slots=True)
class TypeStatus:
    type_url: str
    status: ConfigStatus
    last_updated: float | None = None  # seconds since the epoch
    error: str = ""  # Envoy's NACK message (ERROR)


@dataclass(frozen=True, slots=True)
class ProxyStatus:
    name: str  # NAME.NAMESPACE, as istiod names the proxy
    namespace: str
    cluster: str
    istiod: str
    version: str  # the proxy's ISTIO_VERSION
    types: Mapping[str, TypeStatus] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SyncReport:
    proxies: tuple[ProxyStatus, ...]
    response: discovery_pb2.DiscoveryResponse  # what `-o json|yaml` prints

    def in_namespace(self, namespace: str) -> SyncReport:
        """Only the proxies of `namespace` ("" = all)."""
        if not namespace:
            return self
        response = discovery_pb2.DiscoveryResponse()
        response.CopyFrom(self.response)
        del response.resources[:]
        for resource in self.response.resources:
            config = csds_pb2.ClientConfig()
            resource.Unpack(config)
            if _meta(config.node, "NAMESPACE") == namespace:
                response.resources.append(resource)
        proxies = tuple(p for p in self.proxies if p.namespace == namespace)
        return SyncReport(proxies, response)


# ---- over ADS ----------------------------------------------------------------------------


def istiod_id(response: discovery_pb2.DiscoveryResponse) -> str:
    if not response.HasField("control_plane"):
        return "MISSING"
    try:
        data = json.loads(response.control_plane.identifier)
    except ValueError:
        return "INVALID"
    return str(data.get("ID", "")) if isinstance(data, dict) else "INVALID"


def from_response(response: discovery_pb2.DiscoveryResponse) -> SyncReport:
    istiod = istiod_id(response)
    proxies = []
    for index, resource in enumerate(response.resources):
        config = csds_pb2.ClientConfig()
        if not resource.Unpack(config):
            raise SyncError(f"resources[{index}] is a {resource.type_url}, not a ClientConfig")
        types = {}
        for xds in config.generic_xds_configs:
            updated = (
                xds.last_updated.ToNanoseconds() / 1e9 if xds.HasField("last_updated") else None
            )
            status = ConfigStatus(csds_pb2.ConfigStatus.Name(xds.config_status))
            types[xds.type_url] = TypeStatus(xds.type_url, status, updated, xds.error_state.details)
        proxies.append(
            ProxyStatus(
                name=config.node.id,
                namespace=_meta(config.node, "NAMESPACE") or _namespace_of(config.node.id),
                cluster=_meta(config.node, "CLUSTER_ID"),
                istiod=istiod,
                version=_meta(config.node, "ISTIO_VERSION"),
                types=types,
            )
        )
    return SyncReport(tuple(sorted(proxies, key=lambda p: p.name)), response)


def _meta(node: base_pb2.Node, key: str) -> str:
    value = node.metadata.fields.get(key)
    return value.string_value if value is not None else ""


def _namespace_of(name: str) -> str:
    return name.rsplit(".", 1)[1] if "." in name else ""


# ---- over HTTP ---------------------------------------------------------------------------


def from_syncz(entries: object, default_istiod: str) -> SyncReport:
    """istiod's `/debug/syncz` JSON; `default_istiod` names the istiod when entries don't."""
    if not isinstance(entries, list):
        raise SyncError("/debug/syncz did not answer a JSON list")
    proxies = [_from_entry(e, i, default_istiod) for i, e in enumerate(entries)]
    proxies.sort(key=lambda p: p.name)
    istiod = proxies[0].istiod if proxies else default_istiod
    return SyncReport(tuple(proxies), to_response(proxies, istiod))


def _from_entry(entry: object, index: int, default_istiod: str) -> ProxyStatus:
    if not isinstance(entry, dict) or not isinstance(entry.get("proxy"), str):
        raise SyncError(f"/debug/syncz entry {index} has no proxy name")
    resources = entry.get("resources")
    if not isinstance(resources, dict):
        resources = {
            type_url: {"sent": entry.get(f"{short}_sent", ""), "acked": entry[f"{short}_acked"]}
            for short, type_url in _SHORT_FIELDS.items()
            if f"{short}_acked" in entry or f"{short}_sent" in entry
        }
    types = {}
    for type_url, res in resources.items():
        if isinstance(res, dict):
            types[type_url] = _type_status(str(type_url), res)
    name = entry["proxy"]
    if name.count("~") == 3:  # a full node id: istioctl shows NAME.NS
        name = name.split("~")[2]
    return ProxyStatus(
        name=name,
        namespace=_namespace_of(name),
        cluster=str(entry.get("cluster_id", "")),
        istiod=str(entry.get("istiod") or default_istiod),
        version=str(entry.get("proxy_version") or entry.get("istio_version", "")),
        types=types,
    )


def _type_status(type_url: str, res: Mapping[str, Any]) -> TypeStatus:
    error = str(res.get("lastError") or "")
    try:
        status = ConfigStatus(str(res["status"]))
    except (KeyError, ValueError):
        status = config_status(
            nonce_sent=str(res.get("sent") or ""),
            nonce_acked=str(res.get("acked") or ""),
            rejected=bool(error),
        )
    updated = parse_time(res.get("lastUpdated")) or parse_time(res.get("sentTime"))
    return TypeStatus(type_url, status, updated, error if status is ConfigStatus.ERROR else "")


def parse_time(value: object) -> float | None:
    """An RFC 3339 time (Go's, with up to nanoseconds) as epoch seconds; None if unset."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # Python parses at most microseconds
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


# ---- to the ADS shape (for -o json|yaml) -------------------------------------------------


def to_response(proxies: Iterable[ProxyStatus], istiod: str) -> discovery_pb2.DiscoveryResponse:
    response = discovery_pb2.DiscoveryResponse(type_url=typeurls.DEBUG_SYNCZ)
    response.control_plane.identifier = json.dumps({"Component": "istiod", "ID": istiod})
    for proxy in proxies:
        packed = any_pb2.Any()
        packed.Pack(to_client_config(proxy), deterministic=True)
        response.resources.append(packed)
    return response


def to_client_config(proxy: ProxyStatus) -> csds_pb2.ClientConfig:
    metadata = struct_pb2.Struct()
    metadata.update(
        {"CLUSTER_ID": proxy.cluster, "NAMESPACE": proxy.namespace, "ISTIO_VERSION": proxy.version}
    )
    out = csds_pb2.ClientConfig(node=base_pb2.Node(id=proxy.name, metadata=metadata))
    for type_url in sorted(proxy.types):
        status = proxy.types[type_url]
        entry = out.generic_xds_configs.add(
            type_url=type_url,
            config_status=csds_pb2.ConfigStatus.Value(status.status.value),
            client_status=csds_pb2.ClientConfigStatus.Value(client_status(status.status).value),
        )
        if status.last_updated is not None:
            entry.last_updated.CopyFrom(_timestamp(status.last_updated))
        if status.error:
            entry.error_state.details = status.error
    return out


def _timestamp(at: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(at * 1e9))
    return ts
