"""Helpers for the core-mesh end-to-end scenarios: Bookinfo-style workloads and their YAML,
atomic edits of istiod's config dir, proxies, routing waits, Envoy update counters and the
istiod ⇄ Envoy consistency checks (/debug/syncz, /debug/config_dump).

The YAML is our own, modelled on Istio's Bookinfo samples (../shared/conformance/bookinfo):
reviews v1/v2/v3 as a MESH_INTERNAL STATIC ServiceEntry whose endpoints map the service port
name to each backend's real port; details as a Kubernetes Service plus a WorkloadEntry.
"""

from __future__ import annotations

import os
import re
import tempfile
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from istioctl.bootstrap import BootstrapOptions, XdsApi

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .net import WaitTimeout, wait_until
from .traffic import count_backends

XDS_APIS: tuple[XdsApi, ...] = ("sotw", "delta")
SERVICE_PORT = 9080
GATEWAY_PORT = 8080

# -- config dir edits ----------------------------------------------------------------------


def write_config(config_dir: Path, filename: str, text: str) -> Path:
    """Write `text` to `config_dir/filename` atomically: a hidden temp file in the same
    directory (istiod skips dot-files), then os.replace onto the target."""
    target = config_dir / filename
    fd, tmp = tempfile.mkstemp(dir=config_dir, prefix=f".{filename}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(textwrap.dedent(text).lstrip())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def remove_config(config_dir: Path, filename: str) -> None:
    (config_dir / filename).unlink()


# -- workloads and their YAML --------------------------------------------------------------


@dataclass
class Bookinfo:
    """Small backends answering with their name, plus YAML describing them to istiod."""

    backends: dict[str, Backend] = field(default_factory=dict)
    namespace: str = "default"

    @classmethod
    def start(
        cls,
        backend_factory: Callable[..., Backend],
        names: Iterable[str] = ("reviews-v1", "reviews-v2", "reviews-v3", "details-v1"),
        namespace: str = "default",
    ) -> Bookinfo:
        return cls({name: backend_factory(name) for name in names}, namespace)

    def __getitem__(self, name: str) -> Backend:
        return self.backends[name]

    def fqdn(self, service: str) -> str:
        return f"{service}.{self.namespace}.svc.cluster.local"

    def service_entry(self, service: str) -> str:
        """A MESH_INTERNAL STATIC ServiceEntry for `service` with one endpoint per backend
        named `<service>-<version>` (labels app, version; port http → the backend's port)."""
        endpoints = []
        for name, backend in sorted(self.backends.items()):
            svc, _, version = name.rpartition("-")
            if svc != service:
                continue
            endpoints.append(
                f"""
                  - address: {backend.ip}
                    ports: {{http: {backend.port}}}
                    labels: {{app: {service}, version: {version}}}"""
            )
        assert endpoints, f"no backend for service {service}"
        return f"""
            apiVersion: networking.istio.io/v1
            kind: ServiceEntry
            metadata: {{name: {service}, namespace: {self.namespace}}}
            spec:
              hosts: [{self.fqdn(service)}]
              location: MESH_INTERNAL
              resolution: STATIC
              ports:
              - {{number: {SERVICE_PORT}, name: http, protocol: HTTP}}
              endpoints:{"".join(endpoints)}
            """

    def kube_service(self, service: str) -> str:
        """A Kubernetes Service selecting app=<service>, plus one WorkloadEntry per backend
        `<service>-<version>` (its `ports: {http: PORT}` gives the backend's real port)."""
        docs = [
            f"""
            apiVersion: v1
            kind: Service
            metadata: {{name: {service}, namespace: {self.namespace}}}
            spec:
              selector: {{app: {service}}}
              ports:
              - {{name: http, port: {SERVICE_PORT}, targetPort: {SERVICE_PORT}}}
            """
        ]
        for name, backend in sorted(self.backends.items()):
            svc, _, version = name.rpartition("-")
            if svc != service:
                continue
            docs.append(
                f"""
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata: {{name: {name}, namespace: {self.namespace}}}
            spec:
              address: {backend.ip}
              labels: {{app: {service}, version: {version}}}
              ports: {{http: {backend.port}}}
            """
            )
        return "---".join(docs)

    def subsets(self, service: str, versions: Iterable[str] = ("v1", "v2", "v3")) -> str:
        subsets = "".join(
            f"""
              - name: {v}
                labels: {{version: {v}}}"""
            for v in versions
        )
        return f"""
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {{name: {service}, namespace: {self.namespace}}}
            spec:
              host: {service}
              trafficPolicy:
                loadBalancer: {{simple: RANDOM}}
              subsets:{subsets}
            """

    def weighted_vs(self, service: str, weights: Mapping[str, int], name: str | None = None) -> str:
        """A mesh VirtualService for `service` splitting over subsets by weight."""
        routes = "".join(
            f"""
                - destination: {{host: {service}, subset: {subset}}}
                  weight: {weight}"""
            for subset, weight in weights.items()
        )
        return f"""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {{name: {name or service}, namespace: {self.namespace}}}
            spec:
              hosts: [{service}]
              http:
              - route:{routes}
            """


def join_docs(*docs: str) -> str:
    return "\n---\n".join(textwrap.dedent(d).strip() for d in docs) + "\n"


# -- proxies -------------------------------------------------------------------------------


def sidecar_options(
    istiod: IstiodProcess,
    name: str,
    ip: str,
    labels: Mapping[str, str],
    xds_api: XdsApi,
    namespace: str = "default",
) -> BootstrapOptions:
    return BootstrapOptions(
        name=name,
        namespace=namespace,
        proxy_type="sidecar",
        ip=ip,
        labels=dict(labels),
        interception_mode="NONE",
        insecure=True,
        istiod=istiod.grpc_addr,
        xds_api=xds_api,
    )


def gateway_options(
    istiod: IstiodProcess,
    name: str,
    ip: str,
    xds_api: XdsApi,
    namespace: str = "istio-system",
    labels: Mapping[str, str] | None = None,
) -> BootstrapOptions:
    return BootstrapOptions(
        name=name,
        namespace=namespace,
        proxy_type="router",
        ip=ip,
        labels=dict(labels or {"istio": "ingressgateway"}),
        insecure=True,
        istiod=istiod.grpc_addr,
        xds_api=xds_api,
    )


def bound_addresses(envoy: EnvoyProcess) -> set[tuple[str, int]]:
    """(ip, port) of every listener Envoy has bound (`/listeners`)."""
    out = set()
    for status in envoy.listeners().get("listener_statuses", []):
        for address in [
            status.get("local_address", {}),
            *status.get("additional_local_addresses", []),
        ]:
            sock = address.get("socket_address")
            if sock:
                out.add((sock["address"], int(sock.get("port_value", 0))))
    return out


# -- traffic -------------------------------------------------------------------------------


def wait_for_backend(
    ip: str,
    port: int,
    expected: str,
    *,
    host: str | None = None,
    headers: Mapping[str, str] | None = None,
    path: str = "/",
    timeout: float = 10.0,
    confirm: int = 30,
) -> Counter[str]:
    """Wait until requests land on `expected` only (20 in a row, so that a random pick among
    several backends cannot pass by chance), then check that `confirm` more all do too;
    returns the confirming counts."""
    last: list[Counter[str]] = [Counter()]

    def only_expected() -> bool:
        last[0] = count_backends(ip, port, 20, host=host, path=path, headers=headers)
        return last[0] == {expected: 20}

    try:
        wait_until(only_expected, timeout, 0.02)
    except WaitTimeout:
        raise WaitTimeout(
            f"timed out after {timeout:g}s waiting for {host or ip}:{port}{path} "
            f"{dict(headers or {})} to reach {expected} only; last sample: {dict(last[0])}"
        ) from None
    counts = count_backends(ip, port, confirm, host=host, path=path, headers=headers)
    assert counts == {expected: confirm}, f"{host} {dict(headers or {})}: {dict(counts)}"
    return counts


def sample(
    ip: str,
    port: int,
    n: int,
    *,
    host: str | None = None,
    headers: Mapping[str, str] | None = None,
    path: str = "/",
) -> Counter[str]:
    """`n` requests over keep-alive, counted by backend name (`<STATUS>` if not 200)."""
    return count_backends(ip, port, n, host=host, path=path, headers=headers)


# -- Envoy xDS update counters -------------------------------------------------------------

_UPDATE_STAT = re.compile(
    r"^(cluster_manager\.cds|listener_manager\.lds|http\..*\.rds\..*|cluster\..*)"
    r"\.(update_attempt|update_success|update_rejected|update_empty|update_failure)$"
)


def update_counters(envoy: EnvoyProcess) -> dict[str, int]:
    """Every xDS subscription counter of `envoy` (CDS, LDS, each RDS route config and each
    EDS cluster): update_attempt, _success, _rejected, _empty and _failure."""
    stats = envoy.stats(filter=r"update_(attempt|success|rejected|empty|failure)$")
    return {name: value for name, value in stats.items() if _UPDATE_STAT.match(name)}


def received_updates(counters: Mapping[str, int]) -> dict[str, int]:
    """What Envoy was *sent*, per subscription: responses received (update_attempt counts
    stream failures too, so minus update_failure), accepted and rejected. Unchanged values
    mean the control plane sent this Envoy nothing in between."""
    out: dict[str, int] = {}
    for name, value in counters.items():
        prefix, _, stat = name.rpartition(".")
        if stat == "update_attempt":
            out[f"{prefix}.responses"] = value - counters.get(f"{prefix}.update_failure", 0)
        elif stat in ("update_success", "update_rejected"):
            out[name] = value
    return out


def summarize_counters(counters: Mapping[str, int]) -> dict[str, int]:
    """Totals by kind: cds/lds/rds/eds, by counter counter."""
    out: Counter[str] = Counter()
    for name, value in counters.items():
        kind = (
            "cds" if name.startswith("cluster_manager.cds.")
            else "lds" if name.startswith("listener_manager.lds.")
            else "rds" if name.startswith("http.")
            else "eds"
        )  # fmt: skip
        out[f"{kind}.{name.rsplit('.', 1)[1]}"] += value
    return dict(sorted(out.items()))


# -- istiod ⇄ Envoy consistency ------------------------------------------------------------


def proxy_key(opts: BootstrapOptions) -> str:
    return f"{opts.name}.{opts.namespace}"


SYNC_TYPES = ("cluster", "listener", "endpoint", "route")


def syncz_entry(istiod: IstiodProcess, proxy: str) -> dict[str, Any] | None:
    for entry in istiod.get_json("/debug/syncz"):
        if entry.get("proxy") == proxy:
            return dict(entry)
    return None


def is_synced(entry: Mapping[str, Any] | None, types: Iterable[str] = SYNC_TYPES) -> bool:
    """Istio's SYNCED for each of `types` (syncz short names): a nonce was sent and acked; and
    nothing sent on any other type is waiting for its ACK."""
    if not entry:
        return False
    for short in types:
        if not entry.get(f"{short}_sent"):
            return False
    for short in SYNC_TYPES:
        if entry.get(f"{short}_acked", "") != entry.get(f"{short}_sent", ""):
            return False
    return True


def wait_synced(
    istiod: IstiodProcess,
    proxy: str,
    timeout: float = 10.0,
    types: Iterable[str] = SYNC_TYPES,
) -> dict[str, Any]:
    types = tuple(types)
    entry: dict[str, Any] = wait_until(
        lambda: e if is_synced(e := syncz_entry(istiod, proxy), types) and e else {},
        timeout,
        0.05,
        f"/debug/syncz shows {proxy} synced ({', '.join(types)} sent and acked)",
    )
    return entry


def _get(obj: Mapping[str, Any], snake: str) -> Any:
    """A field of a config dump in either proto-JSON spelling (snake_case or lowerCamel)."""
    if snake in obj:
        return obj[snake]
    head, *rest = snake.split("_")
    return obj.get(head + "".join(part.title() for part in rest))


def dump_names(dump: Mapping[str, Any]) -> dict[str, set[str]]:
    """Names of the dynamic (xDS-delivered) clusters, listeners and route configs."""
    out: dict[str, set[str]] = {"clusters": set(), "listeners": set(), "routes": set()}
    for section in dump.get("configs", []):
        kind = str(section.get("@type", "")).rsplit(".", 1)[-1]
        if kind == "ClustersConfigDump":
            for entry in (_get(section, "dynamic_active_clusters") or []) + (
                _get(section, "dynamic_warming_clusters") or []
            ):
                out["clusters"].add(entry["cluster"]["name"])
        elif kind == "ListenersConfigDump":
            for entry in _get(section, "dynamic_listeners") or []:
                active = _get(entry, "active_state") or _get(entry, "warming_state") or {}
                name = entry.get("name") or active.get("listener", {}).get("name")
                if name:
                    out["listeners"].add(name)
        elif kind == "RoutesConfigDump":
            for entry in _get(section, "dynamic_route_configs") or []:
                out["routes"].add(_get(entry, "route_config")["name"])
    return out


def assert_config_dump_matches(istiod: IstiodProcess, envoy: EnvoyProcess, proxy: str) -> None:
    """istiod's /debug/config_dump?proxyID= names exactly the clusters, listeners and route
    configs Envoy holds from xDS (its own /config_dump, static resources left out)."""
    ours = dump_names(istiod.get_json(f"/debug/config_dump?proxyID={proxy}"))
    theirs = dump_names(envoy.config_dump())
    for kind in ("clusters", "listeners", "routes"):
        assert theirs[kind], f"Envoy {proxy} holds no dynamic {kind}: {theirs}"
        assert ours[kind] == theirs[kind], (
            f"{kind}: istiod /debug/config_dump?proxyID={proxy} ≠ Envoy /config_dump: "
            f"only in istiod {sorted(ours[kind] - theirs[kind])}, "
            f"only in Envoy {sorted(theirs[kind] - ours[kind])}"
        )


def problems(istiod: IstiodProcess) -> list[str]:
    return [str(p) for p in istiod.get_json("/debug/push_status").get("problems", [])]


def configz_object(istiod: IstiodProcess, kind: str, namespace: str, name: str) -> Any:
    for obj in istiod.get_json("/debug/configz"):
        meta = obj.get("metadata", {})
        if (
            obj.get("kind") == kind
            and meta.get("name") == name
            and meta.get("namespace", "default") == namespace
        ):
            return obj
    return None


__all__ = [
    "GATEWAY_PORT",
    "SERVICE_PORT",
    "XDS_APIS",
    "Bookinfo",
    "WaitTimeout",
    "assert_config_dump_matches",
    "bound_addresses",
    "configz_object",
    "dump_names",
    "gateway_options",
    "is_synced",
    "join_docs",
    "problems",
    "proxy_key",
    "received_updates",
    "remove_config",
    "sample",
    "sidecar_options",
    "summarize_counters",
    "syncz_entry",
    "update_counters",
    "wait_for_backend",
    "wait_synced",
    "write_config",
]
