"""What a running istiod holds, as analysis input: `/debug/configz` and `/debug/adsz`.

`/debug/configz` is a JSON array of every config object as a Kubernetes object (the document
as written, with the resourceVersion and generation the source stamped). An object a proxy
rejected (a NACK attributed to it, pilot/config/last_good.py) carries the rejection in its
status:

    "status": {"rejected": {"message": ENVOY_MESSAGE, "proxy": "NAME.NAMESPACE",
                            "typeUrl": TYPE_URL, "version": VERSION, "at": RFC3339,
                            "serving": LAST_ACCEPTED_VERSION or ""}}

(a list of such entries is accepted too). Each becomes a `Rejection` on the resource, which
the `pyistio.RejectedByProxyAnalyzer` reports as PYI0001.

`/debug/adsz` lists connected proxies; each is a workload (its node metadata labels and
namespace), so selectors that match only running proxies are not reported as selecting nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from pkg.analysis.loader import Loaded, load_objects
from pkg.analysis.resource import Rejection, Resource, Workload


class ConfigzError(ValueError):
    """The payload is not what istiod's debug endpoints return."""


def from_configz(payload: object, default_namespace: str = "default") -> Loaded:
    """Resources (with their rejections) from a /debug/configz payload."""
    if not isinstance(payload, list):
        raise ConfigzError(f"/debug/configz is not a JSON array but {type(payload).__name__}")
    loaded = load_objects(payload, default_namespace)
    rejected: dict[tuple[str, str, str], tuple[Rejection, ...]] = {}
    for obj in payload:
        found = tuple(_rejections(obj))
        if found:
            rejected[_identity(obj, default_namespace)] = found
    if not rejected:
        return loaded
    resources = tuple(_with_rejections(r, rejected) for r in loaded.resources)
    return replace(loaded, resources=resources)


def _with_rejections(
    r: Resource, rejected: Mapping[tuple[str, str, str], tuple[Rejection, ...]]
) -> Resource:
    found = rejected.get((r.kind, r.namespace, r.name))
    return replace(r, rejections=found) if found else r


def _identity(obj: object, default_namespace: str) -> tuple[str, str, str]:
    if not isinstance(obj, dict):
        return ("", "", "")
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    namespace = meta.get("namespace") or default_namespace
    return (str(obj.get("kind", "")), str(namespace), str(meta.get("name", "")))


def _rejections(obj: object) -> Iterator[Rejection]:
    status = obj.get("status") if isinstance(obj, dict) else None
    marker = status.get("rejected") if isinstance(status, dict) else None
    entries = marker if isinstance(marker, list) else [marker]
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        yield Rejection(
            proxy=str(entry.get("proxy") or "unknown"),
            message=str(entry.get("message") or ""),
            type_url=str(entry.get("typeUrl") or ""),
            serving=str(entry.get("serving") or ""),
        )


def workloads_from_adsz(payload: object) -> tuple[Workload, ...]:
    """Connected proxies as workloads: `{"clients": [{"connectionId", "labels",
    "metadata": {"NAMESPACE", "WORKLOAD_NAME", ...}}]}`."""
    clients = payload.get("clients") if isinstance(payload, dict) else None
    if not isinstance(clients, list):
        raise ConfigzError('/debug/adsz has no "clients" list')
    out: list[Workload] = []
    for client in clients:
        if not isinstance(client, dict):
            continue
        metadata: Any = client.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        labels: Any = client.get("labels")
        labels = labels if isinstance(labels, dict) else {}
        connection = str(client.get("connectionId", ""))
        name = str(metadata.get("WORKLOAD_NAME") or _proxy_name(connection))
        namespace = str(metadata.get("NAMESPACE") or "default")
        out.append(Workload("Proxy", namespace, name, {str(k): str(v) for k, v in labels.items()}))
    return tuple(out)


def _proxy_name(connection_id: str) -> str:
    """`sidecar~IP~NAME.NS~...-N` or `NAME.NS-N` → NAME."""
    parts = connection_id.split("~")
    middle = parts[2] if len(parts) >= 3 else connection_id
    return middle.split(".", 1)[0]
