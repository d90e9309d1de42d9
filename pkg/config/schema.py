"""The registry of supported kinds and the one entry point that turns a document into a Config.

`parse_object(doc)` checks `apiVersion`/`kind`, decodes and validates `metadata`, decodes the
spec against the kind's CRD schema (`pkg.config.decode`) and runs istiod's validation
(`pkg.config.validation`). It never raises: problems come back as `FieldError`s, each naming
the field path. Kubernetes kinds pyistio does not read (Deployment, ServiceAccount, ...) are
`ignored`, which is not an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pkg.config.decode import Issues, decode_into, type_name
from pkg.config.model import Config, GroupVersionKind, Kind, Meta
from pkg.config.specs import extensions, kube, networking, security, telemetry
from pkg.config.validation import validate
from pkg.config.validation.metadata import (
    NameRule,
    check_istio_metadata,
    check_metadata,
    parse_timestamp,
)


@dataclass(frozen=True, slots=True)
class FieldError:
    kind: str  # as written in the document (or "" if missing)
    namespace: str
    name: str
    path: str  # e.g. "spec.http[0].route[1].weight", "metadata.name", "apiVersion"
    reason: str

    def __str__(self) -> str:
        where = f"{self.kind}/{self.namespace}/{self.name}"
        return f"{where}: {self.path}: {self.reason}" if self.path else f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ParseResult:
    config: Config[Any] | None  # None when errors or ignored
    errors: tuple[FieldError, ...]
    ignored: bool = False  # a Kubernetes kind pyistio does not use: not an error
    warnings: tuple[FieldError, ...] = ()

    @property
    def ok(self) -> bool:
        return self.config is not None


@dataclass(frozen=True, slots=True)
class KindSchema:
    kind: Kind
    group: str
    versions: tuple[str, ...]  # the first is the preferred version
    spec_class: type[Any]
    plural: str
    namespaced: bool = True
    # Where the spec is: under "spec", or (None) in these top-level keys of the document.
    spec_key: str | None = "spec"
    top_level_fields: tuple[str, ...] = ()
    spec_required: bool = False
    name_rule: NameRule = NameRule.SUBDOMAIN

    @property
    def gvk(self) -> GroupVersionKind:
        return GroupVersionKind(self.group, self.versions[0], self.kind)

    @property
    def istio(self) -> bool:
        return self.group.endswith("istio.io")


_NETWORKING = ("networking.istio.io", ("v1", "v1beta1", "v1alpha3"))
_SECURITY = ("security.istio.io", ("v1", "v1beta1"))
_TELEMETRY = ("telemetry.istio.io", ("v1", "v1alpha1"))

SCHEMAS: tuple[KindSchema, ...] = (
    KindSchema(Kind.VIRTUAL_SERVICE, *_NETWORKING, networking.VirtualService, "virtualservices"),
    KindSchema(Kind.DESTINATION_RULE, *_NETWORKING, networking.DestinationRule, "destinationrules"),
    KindSchema(Kind.GATEWAY, *_NETWORKING, networking.Gateway, "gateways"),
    KindSchema(
        Kind.SERVICE_ENTRY,
        *_NETWORKING,
        networking.ServiceEntry,
        "serviceentries",
        spec_required=True,
    ),
    KindSchema(
        Kind.WORKLOAD_ENTRY,
        *_NETWORKING,
        networking.WorkloadEntry,
        "workloadentries",
        spec_required=True,
    ),
    KindSchema(
        Kind.WORKLOAD_GROUP,
        *_NETWORKING,
        networking.WorkloadGroup,
        "workloadgroups",
        spec_required=True,
    ),
    KindSchema(Kind.SIDECAR, *_NETWORKING, networking.Sidecar, "sidecars"),
    KindSchema(Kind.ENVOY_FILTER, *_NETWORKING, networking.EnvoyFilter, "envoyfilters"),
    KindSchema(Kind.PROXY_CONFIG, *_NETWORKING, networking.ProxyConfig, "proxyconfigs"),
    KindSchema(
        Kind.AUTHORIZATION_POLICY, *_SECURITY, security.AuthorizationPolicy, "authorizationpolicies"
    ),
    KindSchema(
        Kind.PEER_AUTHENTICATION, *_SECURITY, security.PeerAuthentication, "peerauthentications"
    ),
    KindSchema(
        Kind.REQUEST_AUTHENTICATION,
        *_SECURITY,
        security.RequestAuthentication,
        "requestauthentications",
    ),
    KindSchema(Kind.TELEMETRY, *_TELEMETRY, telemetry.Telemetry, "telemetries"),
    KindSchema(
        Kind.WASM_PLUGIN,
        "extensions.istio.io",
        ("v1alpha1",),
        extensions.WasmPlugin,
        "wasmplugins",
        spec_required=True,
    ),
    KindSchema(Kind.SERVICE, "", ("v1",), kube.ServiceSpec, "services", name_rule=NameRule.DNS1035),
    KindSchema(
        Kind.ENDPOINT_SLICE,
        "discovery.k8s.io",
        ("v1",),
        kube.EndpointSlice,
        "endpointslices",
        spec_key=None,
        top_level_fields=("addressType", "endpoints", "ports"),
    ),
    KindSchema(
        Kind.SECRET,
        "",
        ("v1",),
        kube.Secret,
        "secrets",
        spec_key=None,
        top_level_fields=("type", "data", "stringData", "immutable"),
    ),
    KindSchema(
        Kind.NAMESPACE,
        "",
        ("v1",),
        kube.NamespaceSpec,
        "namespaces",
        namespaced=False,
        name_rule=NameRule.LABEL,
    ),
    KindSchema(
        Kind.POD,
        "",
        ("v1",),
        kube.Pod,
        "pods",
        spec_key=None,
        top_level_fields=("spec", "status"),
    ),
    KindSchema(
        Kind.NODE,
        "",
        ("v1",),
        kube.Node,
        "nodes",
        namespaced=False,
        spec_key=None,
        top_level_fields=("spec", "status"),
    ),
)

_BY_KIND: dict[Kind, KindSchema] = {s.kind: s for s in SCHEMAS}
_BY_GVK: dict[tuple[str, str, str], KindSchema] = {
    (s.group, version, s.kind.value): s for s in SCHEMAS for version in s.versions
}
_GROUPS: dict[str, tuple[KindSchema, ...]] = {}
for _schema in SCHEMAS:
    _GROUPS[_schema.group] = (*_GROUPS.get(_schema.group, ()), _schema)
_COMMON_TOP_LEVEL = frozenset(("apiVersion", "kind", "metadata", "status"))
# Observed state read only by the Kubernetes registry, from the API server. In a standalone
# config dir a Pod or Node document is ignored (like a Deployment): pods there would describe
# workloads that are not running, so they never become endpoints or proxy identities.
OBSERVED_KINDS = frozenset({Kind.POD, Kind.NODE})


def split_api_version(api_version: str) -> tuple[str, str]:
    """`networking.istio.io/v1` → (`networking.istio.io`, `v1`); `v1` → (``, `v1`)."""
    group, slash, version = api_version.rpartition("/")
    return (group, version) if slash else ("", api_version)


def gvk_for(api_version: str, kind: str) -> GroupVersionKind | None:
    """The GroupVersionKind of a supported apiVersion/kind pair, else None."""
    group, version = split_api_version(api_version)
    schema = _BY_GVK.get((group, version, kind))
    return None if schema is None else GroupVersionKind(group, version, schema.kind)


def spec_class(kind: Kind) -> type[Any]:
    """The spec dataclass of a kind (KeyError for pseudo-kinds such as Endpoints)."""
    return _BY_KIND[kind].spec_class


def schema_for(kind: Kind) -> KindSchema:
    return _BY_KIND[kind]


@dataclass(frozen=True, slots=True)
class _Origin:
    """Who a document claims to be, for error messages."""

    kind: str
    namespace: str
    name: str

    def errors(self, issues: Issues) -> tuple[FieldError, ...]:
        return tuple(FieldError(self.kind, self.namespace, self.name, p, r) for p, r in issues)

    def failed(self, issues: Issues, warnings: Issues | None = None) -> ParseResult:
        return ParseResult(None, self.errors(issues), warnings=self.errors(warnings or []))


def parse_object(
    doc: object, *, default_namespace: str = "default", observed: bool = False
) -> ParseResult:
    """Parse and validate one document (a dict as loaded from YAML or JSON). Pods and Nodes
    (`OBSERVED_KINDS`) are parsed only with `observed` (read from an API server); otherwise
    they are ignored like any other Kubernetes kind pyistio does not read."""
    if not isinstance(doc, dict):
        origin = _Origin("", default_namespace, "")
        return origin.failed([("", f"document must be an object, not {type_name(doc)}")])
    raw_kind, raw_api = doc.get("kind"), doc.get("apiVersion")
    origin = _Origin(
        raw_kind if isinstance(raw_kind, str) else "", *_identity(doc, default_namespace)
    )
    header: Issues = []
    for key, value in (("apiVersion", raw_api), ("kind", raw_kind)):
        if value is None:
            header.append((key, "Required value"))
        elif not isinstance(value, str):
            header.append((key, f'must be of type string: "{type_name(value)}"'))
    if header or not isinstance(raw_api, str) or not isinstance(raw_kind, str):
        return origin.failed(header)
    group, version = split_api_version(raw_api)
    schema = _BY_GVK.get((group, version, raw_kind))
    if schema is None:
        problem = _unsupported(group, version, raw_kind)
        return origin.failed([problem]) if problem else ParseResult(None, (), ignored=True)
    if schema.kind in OBSERVED_KINDS and not observed:
        return ParseResult(None, (), ignored=True)
    if not schema.namespaced:
        origin = _Origin(origin.kind, "", origin.name)
    return _parse_known(doc, schema, raw_api, origin)


def _identity(doc: Mapping[str, Any], default_namespace: str) -> tuple[str, str]:
    """(namespace, name) as written, with the default namespace when there is none."""
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        return default_namespace, ""
    name = metadata.get("name")
    namespace = metadata.get("namespace")
    return (
        namespace if isinstance(namespace, str) and namespace else default_namespace,
        name if isinstance(name, str) else "",
    )


def _unsupported(group: str, version: str, kind: str) -> tuple[str, str] | None:
    """An error for an apiVersion/kind pyistio should understand but does not; None to ignore."""
    known = _GROUPS.get(group)
    if known is None:
        if group.endswith("istio.io"):
            return ("apiVersion", f"unsupported API group {group!r}")
        return None
    for schema in known:
        if schema.kind.value == kind:
            versions = ", ".join(f"{group}/{v}" if group else v for v in schema.versions)
            return (
                "apiVersion",
                f"unsupported version {version!r} of {kind}; supported: {versions}",
            )
    if group.endswith("istio.io"):
        kinds = ", ".join(sorted(s.kind.value for s in known))
        return ("kind", f"unknown kind {kind!r} in {group}; supported: {kinds}")
    return None  # another kind of a Kubernetes group (Pod, ConfigMap, ...)


def _parse_known(
    doc: dict[str, Any], schema: KindSchema, api_version: str, origin: _Origin
) -> ParseResult:
    issues: Issues = []
    allowed = _COMMON_TOP_LEVEL | (
        {schema.spec_key} if schema.spec_key else set(schema.top_level_fields)
    )
    for key in doc:
        if key not in allowed:
            issues.append((str(key), f'unknown field "{key}"'))
    object_meta = _decode_metadata(doc, schema, issues)
    spec: object | None
    if schema.spec_key is not None:
        raw_spec = doc.get(schema.spec_key)
        if raw_spec is None and not schema.istio:
            spec = schema.spec_class()  # Kubernetes reads a null spec as an empty one
        elif schema.spec_key in doc:
            spec = decode_into(schema.spec_class, raw_spec, schema.spec_key, issues)
        elif schema.spec_required:
            issues.append((schema.spec_key, "Required value"))
            spec = None
        else:
            spec = schema.spec_class()
    else:
        raw_spec = {k: v for k, v in doc.items() if k in schema.top_level_fields}
        spec = decode_into(schema.spec_class, raw_spec, "", issues)
    if issues or spec is None or object_meta is None:
        return origin.failed(issues)
    meta = Meta(
        kind=schema.kind,
        name=object_meta.name,
        namespace=origin.namespace,
        api_version=api_version,
        labels=object_meta.labels,
        annotations=object_meta.annotations,
        resource_version=object_meta.resource_version,
        generation=object_meta.generation,
        creation_timestamp=(
            parse_timestamp(object_meta.creation_timestamp)
            if object_meta.creation_timestamp
            else 0.0
        ),
        deletion_timestamp=(
            parse_timestamp(object_meta.deletion_timestamp)
            if object_meta.deletion_timestamp
            else 0.0
        ),
    )
    errors, warnings = validate(schema.kind, spec, meta)
    if errors:
        return origin.failed(errors, warnings)
    return ParseResult(Config(meta, spec, doc), (), warnings=origin.errors(warnings))


def _decode_metadata(
    doc: Mapping[str, Any], schema: KindSchema, issues: Issues
) -> kube.ObjectMeta | None:
    raw = doc.get("metadata")
    if raw is None:
        issues.append(("metadata.name", "Required value: name is required"))
        return None
    raw = dict(raw) if isinstance(raw, dict) else raw
    if isinstance(raw, dict) and not isinstance(raw.get("creationTimestamp", ""), str):
        # YAML may turn an unquoted timestamp into a datetime; keep its text form.
        stamp = raw["creationTimestamp"]
        raw["creationTimestamp"] = stamp.isoformat() if hasattr(stamp, "isoformat") else stamp
    before = len(issues)
    meta = decode_into(kube.ObjectMeta, raw, "metadata", issues)
    if meta is None or len(issues) > before:
        return None
    check_metadata(meta, schema.name_rule, schema.namespaced, issues)
    if schema.istio:
        check_istio_metadata(meta, schema.kind == Kind.AUTHORIZATION_POLICY, issues)
    return meta if len(issues) == before else None
