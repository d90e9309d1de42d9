"""A fake discovery pipeline for tests: YAML in, decoded Envoy resources out.

`FakeDiscovery(yaml_text)` parses Istio/Kubernetes documents exactly as the file source does
(`load_documents` + `parse_object`, invalid documents are an error here), builds the aggregate
registry and a `PushContext`. `FakeDiscovery.resources(ProxySpec(...))` then runs every
generator for that proxy the way a real Envoy subscribes:

1. CDS wildcard;
2. EDS for every EDS-type cluster CDS returned (its `eds_cluster_config.service_name`);
3. LDS wildcard;
4. RDS for every route configuration an HTTP connection manager in those listeners names.

A proxyless gRPC client (node metadata `GENERATOR: grpc`) subscribes top-down instead, with
explicit names: LDS for `ProxySpec.listeners` (the `xds:///` targets it dials), RDS for what
their ApiListeners name, CDS for every cluster those routes name, then EDS.

The answer, `XdsResources`, keeps the built resources (for byte-level checks) and their decoded
protobufs keyed by type URL and name (Istio's `pilot/test/xds/fake.go` plays the same role).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from pilot.model.proxy import Proxy, parse_node
from pilot.model.proxy_view import ProxyView, proxy_view
from pilot.model.push_context import PushContext, PushInputs
from pilot.serviceregistry.aggregate import RegistrySnapshot, build_registry
from pilot.xds.generators import default_generators, generators_for
from pilot.xds.generators.verify import verifying
from pilot.xds.wire import BuiltResource
from pkg.config.mesh import MeshConfig, mesh_config_from_dict
from pkg.config.model import Config, Kind
from pkg.config.schema import parse_object
from pkg.config.yamldocs import load_documents
from pkg.credentials import CredentialSource, Identity
from pkg.xds import typeurls

CLUSTER = typeurls.CLUSTER
ENDPOINT = typeurls.ENDPOINT
LISTENER = typeurls.LISTENER
ROUTE = typeurls.ROUTE

HCM_TYPE = "type.googleapis.com/" + hcm_pb2.HttpConnectionManager.DESCRIPTOR.full_name


class ConfigLoadError(AssertionError):
    """A test input document failed to load or validate."""


# ---- proxies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxySpec:
    """What a test says about a proxy; `node_id()`/`metadata()` are what Envoy would send."""

    type: str = "sidecar"
    ip: str = "10.0.0.1"
    name: str = "app.default"  # NAME.NS (the middle part of the node id)
    labels: Mapping[str, str] = field(default_factory=dict)
    interception_mode: str = "REDIRECT"
    service_account: str = ""
    extra_metadata: Mapping[str, Any] = field(default_factory=dict)
    # Connected over the secure port with a verified token: the proxy has a SPIFFE identity
    # (namespace + service account, "default" when unset) and gets mesh mTLS.
    authenticated: bool = False
    # LDS names a proxyless gRPC client (metadata GENERATOR: grpc) subscribes to: the
    # `HOST:PORT` of each `xds:///HOST:PORT` it dials (empty: wildcard). Envoy always asks for
    # every listener, so Envoy proxies ignore this.
    listeners: tuple[str, ...] = ()

    @property
    def namespace(self) -> str:
        return self.name.rsplit(".", 1)[1] if "." in self.name else "default"

    def node_id(self) -> str:
        return f"{self.type}~{self.ip}~{self.name}~{self.namespace}.svc.cluster.local"

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "NAMESPACE": self.namespace,
            "INSTANCE_IPS": self.ip,
            "INTERCEPTION_MODE": self.interception_mode,
            "LABELS": dict(self.labels),
        }
        if self.service_account:
            out["SERVICE_ACCOUNT"] = self.service_account
        out.update(self.extra_metadata)
        return out

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ProxySpec:
        """From a golden case's `proxy:` section (camelCase keys, as in node metadata)."""
        known = {
            "type",
            "ip",
            "name",
            "labels",
            "interceptionMode",
            "serviceAccount",
            "metadata",
            "authenticated",
            "listeners",
        }
        unknown = set(raw) - known
        if unknown:
            raise ConfigLoadError(f"proxy: unknown keys {sorted(unknown)}")
        return cls(
            type=str(raw.get("type", "sidecar")),
            ip=str(raw.get("ip", "10.0.0.1")),
            name=str(raw.get("name", "app.default")),
            labels={str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
            interception_mode=str(raw.get("interceptionMode", "REDIRECT")),
            service_account=str(raw.get("serviceAccount", "")),
            extra_metadata=dict(raw.get("metadata") or {}),
            authenticated=bool(raw.get("authenticated", False)),
            listeners=tuple(str(n) for n in raw.get("listeners") or ()),
        )


# ---- configs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigSource:
    """One YAML stream: its text, where it came from, and the namespace for objects without."""

    text: str
    source: str = "<test>"
    default_namespace: str = "default"


def load_configs(sources: Iterable[ConfigSource | str]) -> dict[Kind, tuple[Config[Any], ...]]:
    """Parse documents into configs by kind; any invalid document raises ConfigLoadError."""
    by_key: dict[Any, Config[Any]] = {}
    problems: list[str] = []
    for item in sources:
        src = item if isinstance(item, ConfigSource) else ConfigSource(item)
        for doc in load_documents(src.text, src.source):
            if doc.error is not None:
                problems.append(f"{doc.location}: {doc.error}")
                continue
            result = parse_object(doc.obj, default_namespace=src.default_namespace)
            if result.ignored:
                continue
            if result.config is None:
                problems.extend(f"{doc.location}: {e}" for e in result.errors)
                continue
            if result.config.key in by_key:
                problems.append(f"{doc.location}: duplicate object {result.config.key}")
            by_key[result.config.key] = result.config
    if problems:
        raise ConfigLoadError("invalid test configs:\n  " + "\n  ".join(problems))
    grouped: dict[Kind, list[Config[Any]]] = {}
    for key in sorted(by_key):
        grouped.setdefault(key.kind, []).append(by_key[key])
    return {kind: tuple(configs) for kind, configs in grouped.items()}


# ---- decoding -----------------------------------------------------------------------------


def decode_any(value: any_pb2.Any) -> Message:
    """The message inside an Any, by its type URL (the type must be importable/registered)."""
    full_name = value.type_url.rsplit("/", 1)[-1]
    descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    message: Message = message_factory.GetMessageClass(descriptor)()
    message.ParseFromString(value.value)
    return message


def http_connection_managers(listener: Any) -> Iterator[tuple[Any, Any]]:
    """(filter chain, HttpConnectionManager) for every HCM of a listener; an ApiListener's
    (proxyless gRPC) comes with its ApiListener in place of a chain."""
    if listener.HasField("api_listener"):
        api = listener.api_listener
        if api.api_listener.type_url == HCM_TYPE:
            hcm = hcm_pb2.HttpConnectionManager()
            api.api_listener.Unpack(hcm)
            yield api, hcm
    chains = list(listener.filter_chains)
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    for chain in chains:
        for f in chain.filters:
            if f.typed_config.type_url == HCM_TYPE:
                hcm = hcm_pb2.HttpConnectionManager()
                f.typed_config.Unpack(hcm)
                yield chain, hcm


def eds_service_name(cluster: Any) -> str:
    return str(cluster.eds_cluster_config.service_name or cluster.name)


def route_cluster_names(route_config: Any) -> set[str]:
    """Every cluster a route configuration's routes send to (single or weighted)."""
    out: set[str] = set()
    for vhost in route_config.virtual_hosts:
        for route in vhost.routes:
            if route.WhichOneof("action") != "route":
                continue
            if route.route.WhichOneof("cluster_specifier") == "cluster":
                out.add(route.route.cluster)
            out.update(w.name for w in route.route.weighted_clusters.clusters)
    return out


# ---- the pipeline ------------------------------------------------------------------------


@dataclass
class XdsResources:
    """One proxy's generated resources: built (bytes) and decoded, by type URL then name."""

    view: ProxyView
    built: dict[str, list[BuiltResource]]
    decoded: dict[str, dict[str, Any]]  # decoded Envoy messages (no stubs: Any)
    eds_requested: tuple[str, ...]
    rds_requested: tuple[str, ...]

    @property
    def clusters(self) -> dict[str, Any]:
        return self.decoded[CLUSTER]

    @property
    def endpoints(self) -> dict[str, Any]:
        return self.decoded[ENDPOINT]

    @property
    def listeners(self) -> dict[str, Any]:
        return self.decoded[LISTENER]

    @property
    def routes(self) -> dict[str, Any]:
        return self.decoded[ROUTE]


class FakeDiscovery:
    """Configs → registry → PushContext, and per-proxy generation."""

    def __init__(
        self,
        configs: str | Sequence[ConfigSource | str] = "",
        *,
        mesh: MeshConfig | Mapping[str, Any] | None = None,
        domain_suffix: str = "cluster.local",
        credentials: CredentialSource | None = None,
    ) -> None:
        sources = [configs] if isinstance(configs, str) else list(configs)
        if isinstance(mesh, MeshConfig):
            self.mesh = mesh
        else:
            self.mesh = mesh_config_from_dict(mesh)
        self.domain_suffix = domain_suffix
        self.configs = load_configs(sources)
        self.registry: RegistrySnapshot = build_registry(
            self.configs, domain_suffix, self.mesh.trust_domain
        )
        self.push = PushContext.build(
            PushInputs(
                configs=self.configs,
                services=self.registry.services,
                endpoints=self.registry.endpoint_index(),
                mesh=self.mesh,
                domain_suffix=domain_suffix,
            ),
            version="test",
        )
        self.generators = default_generators(credentials)

    def proxy(self, spec: ProxySpec) -> Proxy:
        proxy = parse_node(spec.node_id(), spec.metadata())
        if not spec.authenticated:
            return proxy
        identity = Identity(
            self.mesh.trust_domain, spec.namespace, spec.service_account or "default"
        )
        return dataclasses.replace(proxy, identity=identity)

    def view(self, spec: ProxySpec) -> ProxyView:
        return proxy_view(self.proxy(spec), self.push)

    def generate(
        self, view: ProxyView, type_url: str, names: Iterable[str] | None
    ) -> list[BuiltResource]:
        wanted = None if names is None else frozenset(names)
        # Cache verification on: every answer is also rebuilt from scratch and compared, so
        # every test that generates config also checks the shared caches' keys.
        return verifying(generators_for(view.proxy, self.generators))[type_url].generate(
            view, wanted
        )

    def resources(self, spec: ProxySpec) -> XdsResources:
        view = self.view(spec)
        built: dict[str, list[BuiltResource]] = {}
        decoded: dict[str, dict[str, Any]] = {}

        def fetch(type_url: str, names: Iterable[str] | None) -> dict[str, Any]:
            resources = self.generate(view, type_url, names)
            built[type_url] = list(resources)
            decoded[type_url] = {r.name: decode_any(r.unpack()) for r in resources}
            return decoded[type_url]

        if view.proxy.is_proxyless_grpc:
            return self._grpc_resources(spec, view, built, decoded, fetch)
        clusters = fetch(CLUSTER, None)
        eds = sorted(
            {eds_service_name(c) for c in clusters.values() if c.type == cluster_pb2.Cluster.EDS}
        )
        fetch(ENDPOINT, eds)
        listeners = fetch(LISTENER, None)
        rds = sorted(
            {
                hcm.rds.route_config_name
                for listener in listeners.values()
                for _, hcm in http_connection_managers(listener)
                if hcm.HasField("rds")
            }
        )
        fetch(ROUTE, rds)
        return XdsResources(view, built, decoded, tuple(eds), tuple(rds))

    def _grpc_resources(
        self,
        spec: ProxySpec,
        view: ProxyView,
        built: dict[str, list[BuiltResource]],
        decoded: dict[str, dict[str, Any]],
        fetch: Callable[[str, Iterable[str] | None], dict[str, Any]],
    ) -> XdsResources:
        """gRPC's order: LDS by name → RDS → CDS of the routes' clusters → EDS."""
        listeners = fetch(LISTENER, spec.listeners or None)
        rds = sorted(
            {
                hcm.rds.route_config_name
                for listener in listeners.values()
                for _, hcm in http_connection_managers(listener)
                if hcm.HasField("rds")
            }
        )
        routes = fetch(ROUTE, rds)
        wanted = sorted(
            {name for config in routes.values() for name in route_cluster_names(config)}
        )
        clusters = fetch(CLUSTER, wanted)
        eds = sorted(
            {eds_service_name(c) for c in clusters.values() if c.type == cluster_pb2.Cluster.EDS}
        )
        fetch(ENDPOINT, eds)
        return XdsResources(view, built, decoded, tuple(eds), tuple(rds))
