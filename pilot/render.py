"""`python -m pilot.render FILE...`: the xDS istiod would send representative proxies for a set
of configuration files, as JSON on stdout. It backs `istioctl validate --envoy`.

istioctl never imports pilot (it talks to istiod over the wire), yet Envoy-grade validation of
files needs exactly istiod's generators. So istioctl runs this module as a child process of
the same installation and reads its answer, the way it reads istiod's /debug/config_dump:
the generator code stays in one place, no istiod has to run, and the import boundary holds.

The files are read as the file source reads a config directory (`load_documents` +
`parse_object`; documents that fail validation are left out: `istioctl validate` reports
them). The proxies: a sidecar at every WorkloadEntry (its namespace, labels, service account:
it gets inbound listeners and the policies that select it), a sidecar without a workload in
every namespace the objects use (outbound view), and a router with the selector labels of
every Gateway in the Gateway's namespace, each capped at MAX_PER_ROLE. Each proxy is
authenticated (mesh mTLS, SDS references) and fetches what Envoy would: CDS, EDS of the EDS
clusters, LDS, RDS of the route configurations the listeners name.

Output: `{"proxies": [{"id", "type", "clusters", "endpoints", "listeners", "routes"}]}`, every
resource as Envoy's proto JSON (`@type` on Anys), as in a config dump.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from pilot.model.proxy import Proxy, parse_node
from pilot.model.proxy_view import proxy_view
from pilot.model.push_context import PushContext, PushInputs
from pilot.serviceregistry.aggregate import build_registry
from pilot.xds.generators import default_generators, generators_for
from pkg.config.mesh import MeshConfig, mesh_config_from_dict
from pkg.config.model import Config, ConfigKey, Kind
from pkg.config.schema import parse_object
from pkg.config.yamldocs import list_items, load_documents
from pkg.credentials import Identity
from pkg.xds import typeurls

MAX_PER_ROLE = 8
SIDECAR_IP = "127.0.0.2"  # no WorkloadEntry uses it: an outbound-only view
GATEWAY_IP = "127.0.0.3"
_EDS = 3  # envoy.config.cluster.v3.Cluster.DiscoveryType.EDS


@dataclass(frozen=True, slots=True)
class ProxyRole:
    """One representative proxy: what its node id and metadata say."""

    type: str  # "sidecar" | "router"
    ip: str
    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...] = ()
    service_account: str = "default"

    @property
    def node_id(self) -> str:
        return (
            f"{self.type}~{self.ip}~{self.name}.{self.namespace}~{self.namespace}.svc.cluster.local"
        )

    def proxy(self, trust_domain: str) -> Proxy:
        metadata = {
            "NAMESPACE": self.namespace,
            "INSTANCE_IPS": self.ip,
            "LABELS": dict(self.labels),
            "SERVICE_ACCOUNT": self.service_account,
        }
        proxy = parse_node(self.node_id, metadata)
        identity = Identity(trust_domain, self.namespace, self.service_account)
        return dataclasses.replace(proxy, identity=identity)


def load_configs(paths: Iterable[Path], namespace: str) -> dict[Kind, tuple[Config[Any], ...]]:
    """The valid objects of the files (the first of duplicates wins), grouped by kind."""
    by_key: dict[ConfigKey, Config[Any]] = {}
    for path in paths:
        for doc in load_documents(path.read_bytes(), str(path)):
            if doc.error is not None:
                continue
            for obj in list_items(doc.obj):
                result = parse_object(obj, default_namespace=namespace)
                if result.config is not None:
                    by_key.setdefault(result.config.key, result.config)
    grouped: dict[Kind, list[Config[Any]]] = {}
    for key in sorted(by_key):
        grouped.setdefault(key.kind, []).append(by_key[key])
    return {kind: tuple(configs) for kind, configs in grouped.items()}


def roles(configs: dict[Kind, tuple[Config[Any], ...]], namespace: str) -> list[ProxyRole]:
    """The representative proxies of a set of objects (see the module docstring)."""
    out: list[ProxyRole] = []
    for config in configs.get(Kind.WORKLOAD_ENTRY, ())[:MAX_PER_ROLE]:
        spec = config.spec
        out.append(
            ProxyRole(
                "sidecar",
                str(spec.address),
                config.name,
                config.namespace,
                tuple(sorted(spec.labels.items())),
                spec.service_account or "default",
            )
        )
    namespaces = sorted({c.namespace for cs in configs.values() for c in cs if c.namespace})
    for ns in (namespaces or [namespace])[:MAX_PER_ROLE]:
        out.append(ProxyRole("sidecar", SIDECAR_IP, "validate", ns))
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for config in configs.get(Kind.GATEWAY, ()):
        labels = tuple(sorted(config.spec.selector.items()))
        if (config.namespace, labels) in seen or len(seen) >= MAX_PER_ROLE:
            continue
        seen.add((config.namespace, labels))
        out.append(ProxyRole("router", GATEWAY_IP, "validate-gateway", config.namespace, labels))
    return out


def render(
    configs: dict[Kind, tuple[Config[Any], ...]], role_list: Sequence[ProxyRole], mesh: MeshConfig
) -> dict[str, Any]:
    domain_suffix = "cluster.local"
    registry = build_registry(configs, domain_suffix, mesh.trust_domain)
    push = PushContext.build(
        PushInputs(
            configs=configs,
            services=registry.services,
            endpoints=registry.endpoint_index(),
            mesh=mesh,
            domain_suffix=domain_suffix,
        )
    )
    defaults = default_generators()
    proxies = []
    for role in role_list:
        view = proxy_view(role.proxy(mesh.trust_domain), push)
        generators = generators_for(view.proxy, defaults)

        def fetch(type_url: str, names: Iterable[str] | None) -> list[dict[str, Any]]:
            wanted = None if names is None else frozenset(names)
            built = generators[type_url].generate(view, wanted)  # noqa: B023
            return [_json(r.unpack()) for r in built]

        clusters = fetch(typeurls.CLUSTER, None)
        eds = {
            c.get("edsClusterConfig", {}).get("serviceName") or c["name"]
            for c in clusters
            if c.get("type") == "EDS"
        }
        endpoints = fetch(typeurls.ENDPOINT, sorted(eds))
        listeners = fetch(typeurls.LISTENER, None)
        routes = fetch(typeurls.ROUTE, sorted(set(_rds_names(listeners))))
        proxies.append(
            {
                "id": role.node_id,
                "type": role.type,
                "clusters": clusters,
                "endpoints": endpoints,
                "listeners": listeners,
                "routes": routes,
            }
        )
    return {"proxies": proxies}


def _json(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(value)
    out.pop("@type", None)
    return out


def _rds_names(node: Any) -> Iterator[str]:
    """Every `rds.routeConfigName` anywhere in the listeners' JSON."""
    if isinstance(node, dict):
        rds = node.get("rds")
        if isinstance(rds, dict) and isinstance(rds.get("routeConfigName"), str):
            yield rds["routeConfigName"]
        for value in node.values():
            yield from _rds_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _rds_names(item)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pilot.render", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--mesh-config", type=Path, help="Istio MeshConfig YAML")
    args = parser.parse_args(argv)
    mesh_raw: dict[str, Any] | None = None
    if args.mesh_config is not None:
        import yaml

        mesh_raw = yaml.safe_load(args.mesh_config.read_text(encoding="utf-8")) or {}
    mesh = mesh_config_from_dict(mesh_raw)
    configs = load_configs(args.files, args.namespace)
    json.dump(render(configs, roles(configs, args.namespace), mesh), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
