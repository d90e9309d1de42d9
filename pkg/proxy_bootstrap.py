"""Build a complete Envoy v3 bootstrap for a proxy that talks to pyistio's istiod (shared by
`istioctl bootstrap` and the sidecar injector, pkg/inject/).

There is no pilot-agent in pyistio: Envoy connects straight to istiod, so this bootstrap is
everything Envoy needs (`envoy -c FILE`). It follows Istio's `envoy_bootstrap.json` where it
matters to istiod (the node id and metadata, the `xds-grpc` cluster, ADS settings) and leaves
out what only the agent uses (the `agent`, `sds-grpc` and `prometheus_stats` clusters).

`build_bootstrap(opts, secure=material)` is pure: options (and, in secure mode, the
already-fetched `SecureMaterial`) in, a JSON-ready dict out. Secure mode, the default, is what
DESIGN §2.2 asks for: the `xds-grpc` cluster speaks TLS to istiod's secure port (SNI and an
exact DNS SAN `istiod.istio-system.svc`, ALPN h2, istiod's certificate verified against the
mesh trust bundle inlined as `trusted_ca`), and the ADS gRPC service carries the proxy's JWT
as `authorization: Bearer <token>` initial metadata. The bootstrap then holds a secret (the
token): write it with care (`istioctl bootstrap -o` creates the file 0600). `--insecure`
(`opts.insecure`) builds plaintext ADS to the plaintext port with no identity.

Fetching the token and the trust bundle from istiod is `istioctl.istiod_client`'s job; this
module never does I/O. `render_bootstrap` is the unvalidated core: the injector passes it
placeholders the kubelet expands (`$(INSTANCE_IP)`) and its own ADS credentials (STS).
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from pkg.version import VERSION

ISTIO_VERSION = VERSION
CLUSTER_ID = "Kubernetes"
MESH_ID = "cluster.local"
DOMAIN_SUFFIX = "svc.cluster.local"
XDS_CLUSTER = "xds-grpc"
INSECURE_XDS_PORT = 15010
SECURE_XDS_PORT = 15012

ProxyType = Literal["sidecar", "router"]
InterceptionMode = Literal["REDIRECT", "NONE"]
XdsApi = Literal["sotw", "delta"]

PROXY_TYPES: tuple[ProxyType, ...] = ("sidecar", "router")
INTERCEPTION_MODES: tuple[InterceptionMode, ...] = ("REDIRECT", "NONE")
XDS_APIS: tuple[XdsApi, ...] = ("sotw", "delta")

DEFAULT_ISTIOD_HTTP = "http://127.0.0.1:8080"
# The name istiod's serving certificate carries (as Istio's): the SNI sent and the one DNS SAN
# accepted, whatever address --istiod dials.
ISTIOD_SAN = "istiod.istio-system.svc"
_TLS_SOCKET = "envoy.transport_sockets.tls"
_UPSTREAM_TLS = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"

# A limit high enough never to apply: Istio's default (math.MaxInt32) for both the downstream
# connection limit and the xds-grpc circuit breakers are effectively "unlimited".
_UNLIMITED = 2_147_483_647
_XDS_CIRCUIT_LIMIT = 100_000
_HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

# Kubernetes label keys and values (the subset of the rules that catches typos).
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_DNS_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")
# A bearer token fit for a header value: visible ASCII only (a JWT is base64url and dots).
_TOKEN = re.compile(r"[\x21-\x7e]+")
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")


class BootstrapError(ValueError):
    """Invalid bootstrap input; `flag` names the CLI flag (or env var) it came from."""

    def __init__(self, flag: str | None, message: str) -> None:
        super().__init__(f"{flag}: {message}" if flag else message)
        self.flag = flag
        self.message = message


@dataclass(frozen=True)
class SecureMaterial:
    """What a secure bootstrap needs from istiod: the proxy's bearer token (a JWT) and the
    mesh trust bundle (PEM, one or more certificates) that istiod's certificate chains to.

    The token is a secret: it is kept out of `repr` so it cannot leak into logs or tracebacks.
    """

    token: str = field(repr=False)
    root_pem: str


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class BootstrapOptions:
    name: str
    namespace: str
    proxy_type: ProxyType = "sidecar"
    ip: str = "127.0.0.1"
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    service_account: str = "default"
    interception_mode: InterceptionMode = "REDIRECT"
    # HOST:PORT of istiod's xDS server, or several comma-separated (one per istiod replica:
    # each becomes an endpoint of the xds-grpc cluster); None = 127.0.0.1 on the secure or
    # plaintext port.
    istiod: str | None = None
    # Where a secure bootstrap fetches its token and the mesh root (unused when insecure);
    # None = DEFAULT_ISTIOD_HTTP.
    istiod_http: str | None = None
    admin_address: str = "127.0.0.1"
    admin_port: int = 15000  # 0 = ephemeral (pair with envoy --admin-address-path)
    insecure: bool = False
    xds_api: XdsApi = "delta"

    def __post_init__(self) -> None:
        # Freeze the labels too, so the value really is immutable.
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    @property
    def node_id(self) -> str:
        dns_domain = f"{self.namespace}.{DOMAIN_SUFFIX}"
        return f"{self.proxy_type}~{self.ip}~{self.name}.{self.namespace}~{dns_domain}"

    @property
    def xds_address(self) -> HostPort:
        """The (first) istiod address."""
        return self.xds_addresses[0]

    @property
    def xds_addresses(self) -> tuple[HostPort, ...]:
        """Every istiod address, in the order given (duplicates are an error)."""
        if self.istiod is None:
            return (HostPort("127.0.0.1", INSECURE_XDS_PORT if self.insecure else SECURE_XDS_PORT),)
        items = [item.strip() for item in self.istiod.split(",")]
        if not all(items):
            raise BootstrapError(
                "--istiod", f"expected HOST:PORT[,HOST:PORT...], got {self.istiod!r}"
            )
        out = tuple(parse_host_port(item, "--istiod") for item in items)
        if len(set(out)) != len(out):
            raise BootstrapError("--istiod", f"an address is repeated in {self.istiod!r}")
        return out

    @property
    def istiod_http_url(self) -> str:
        """istiod's HTTP base URL (no trailing slash); raises BootstrapError if malformed."""
        return parse_http_url(
            DEFAULT_ISTIOD_HTTP if self.istiod_http is None else self.istiod_http, "--istiod-http"
        )


def parse_host_port(value: str, flag: str) -> HostPort:
    """`host:port` or `[v6]:port` → HostPort; raises BootstrapError naming `flag`."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise BootstrapError(flag, f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        _parse_ip(host, flag)
    elif not _DNS_NAME.match(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise BootstrapError(flag, f"invalid host {host!r} in {value!r}") from None
    port = _parse_port(port_text, flag, allow_zero=False)
    return HostPort(host, port)


def parse_http_url(value: str, flag: str) -> str:
    """An `http://` or `https://` base URL with a host (no query or fragment), without its
    trailing slash; raises BootstrapError naming `flag`."""
    try:
        url = urllib.parse.urlsplit(value)
        url.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as err:
        raise BootstrapError(flag, f"invalid URL {value!r}: {err}") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise BootstrapError(flag, f"expected an http:// or https:// URL, got {value!r}")
    if url.username is not None or url.password is not None:
        # Not quoted back: the value holds a credential.
        raise BootstrapError(flag, "credentials in the URL are not supported")
    if url.query or url.fragment:
        raise BootstrapError(flag, f"expected a base URL without query or fragment, got {value!r}")
    return value.rstrip("/")


def parse_labels(value: str, flag: str = "--labels") -> dict[str, str]:
    """`k=v,k2=v2` → dict; empty string → {}. Raises BootstrapError naming `flag`."""
    labels: dict[str, str] = {}
    if not value.strip():
        return labels
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            raise BootstrapError(flag, f"expected k=v, got {item.strip()!r}")
        _check_label(key, val, flag)
        if key in labels:
            raise BootstrapError(flag, f"duplicate label {key!r}")
        labels[key] = val
    return labels


def validate(opts: BootstrapOptions) -> None:
    """Raise BootstrapError (naming the CLI flag) for the first invalid option."""
    for flag, value in (("--name", opts.name), ("--namespace", opts.namespace)):
        if not value or not _DNS_NAME.match(value):
            raise BootstrapError(flag, f"invalid name {value!r}")
    if not opts.service_account or not _DNS_NAME.match(opts.service_account):
        raise BootstrapError("--service-account", f"invalid name {opts.service_account!r}")
    if opts.proxy_type not in PROXY_TYPES:
        raise BootstrapError("--type", f"must be one of {', '.join(PROXY_TYPES)}")
    if opts.interception_mode not in INTERCEPTION_MODES:
        raise BootstrapError(
            "--interception-mode", f"must be one of {', '.join(INTERCEPTION_MODES)}"
        )
    if opts.xds_api not in XDS_APIS:
        raise BootstrapError("--xds-api", f"must be one of {', '.join(XDS_APIS)}")
    _parse_ip(opts.ip, "--ip")
    _parse_ip(opts.admin_address, "--admin-address")
    if not 0 <= opts.admin_port <= 65535:
        raise BootstrapError("--admin-port", f"port out of range: {opts.admin_port}")
    for key, val in opts.labels.items():
        _check_label(key, val, "--labels")
    opts.xds_addresses  # noqa: B018 - parses --istiod, raising on a bad value
    opts.istiod_http_url  # noqa: B018 - parses --istiod-http, raising on a bad value


def build_bootstrap(opts: BootstrapOptions, secure: SecureMaterial | None = None) -> dict[str, Any]:
    """The Envoy v3 Bootstrap for `opts`, as a JSON-ready dict.

    Secure mode (`opts.insecure` false) needs `secure`, the token and trust bundle fetched
    from istiod; without it this raises BootstrapError. `secure` is ignored when insecure.
    """
    validate(opts)
    material = None if opts.insecure else _check_material(secure)
    transport = None if material is None else xds_transport({"inline_string": material.root_pem})
    grpc_service: dict[str, Any] = {"envoy_grpc": {"cluster_name": XDS_CLUSTER}}
    if material is not None:
        grpc_service["initial_metadata"] = [
            {"key": "authorization", "value": f"Bearer {material.token}"}
        ]
    return render_bootstrap(opts, grpc_service, transport)


def render_bootstrap(
    opts: BootstrapOptions, grpc_service: dict[str, Any], transport: dict[str, Any] | None
) -> dict[str, Any]:
    """The bootstrap for already-validated `opts`: ADS through `grpc_service`, the `xds-grpc`
    cluster with `transport` (None = plaintext)."""
    xds = opts.xds_addresses
    return {
        "node": build_node(opts),
        "admin": {"address": _socket_address(opts.admin_address, opts.admin_port)},
        "layered_runtime": {
            "layers": [
                {
                    "name": "global config",
                    "static_layer": {"re2.max_program_size.error_level": 32768},
                },
                {"name": "admin", "admin_layer": {}},
            ]
        },
        # Stats: Envoy's defaults, deliberately (no stats_matcher). Istio's sidecar bootstrap
        # keeps only an inclusion list, which drops the very stats tests and operators read
        # here (cluster.*.upstream_rq_*, listener.*, http.*.rds.*.update_rejected,
        # cluster_manager.*, control_plane.*); there is no Istio telemetry filter to feed.
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if opts.xds_api == "delta" else "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [grpc_service],
                "set_node_on_first_message_only": True,
            },
            "cds_config": _ads_source(),
            "lds_config": _ads_source(),
        },
        "static_resources": {"clusters": [_xds_cluster(xds, transport)]},
        # The downstream connection limit as Istio sets it today. Measured on Envoy 1.40: with
        # no limit it warns at every start, and the older runtime key
        # `overload.global_downstream_max_connections` still warns and adds a deprecation
        # warning; this resource monitor silences both.
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors"
                        ".downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": _UNLIMITED,
                    },
                }
            ]
        },
    }


def build_node(opts: BootstrapOptions) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "NAMESPACE": opts.namespace,
        "LABELS": dict(opts.labels),
        "SERVICE_ACCOUNT": opts.service_account,
        "INSTANCE_IPS": opts.ip,
        "INTERCEPTION_MODE": opts.interception_mode,
        "WORKLOAD_NAME": opts.name,
        "NAME": opts.name,
        "CLUSTER_ID": CLUSTER_ID,
        "MESH_ID": MESH_ID,
        "ISTIO_VERSION": ISTIO_VERSION,
        "PROXY_CONFIG": {
            "discoveryAddress": str(opts.xds_address),
            "proxyAdminPort": opts.admin_port,
            "controlPlaneAuthPolicy": "NONE" if opts.insecure else "MUTUAL_TLS",
            "serviceCluster": f"{opts.name}.{opts.namespace}",
        },
    }
    return {"id": opts.node_id, "cluster": f"{opts.name}.{opts.namespace}", "metadata": metadata}


def _check_material(secure: SecureMaterial | None) -> SecureMaterial:
    """The material of a secure bootstrap, minimally checked (the token must be usable as a
    header value; the bundle must hold a PEM certificate). Messages never quote the token."""
    if secure is None:
        raise BootstrapError(
            None, "secure mode needs the token and mesh root from istiod (or pass --insecure)"
        )
    if not secure.token or not _TOKEN.fullmatch(secure.token):
        raise BootstrapError(
            None, "the token is empty or not a valid header value (printable ASCII, no spaces)"
        )
    if not _PEM_CERT.search(secure.root_pem):
        raise BootstrapError(None, "the mesh root holds no PEM certificate")
    return secure


def xds_transport(trusted_ca: dict[str, Any]) -> dict[str, Any]:
    """TLS to istiod: its certificate must chain to the mesh root (`trusted_ca`, an Envoy
    DataSource: inline or a file) and name ISTIOD_SAN."""
    return {
        "name": _TLS_SOCKET,
        "typed_config": {
            "@type": f"type.googleapis.com/{_UPSTREAM_TLS}",
            "sni": ISTIOD_SAN,
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "validation_context": {
                    "trusted_ca": trusted_ca,
                    "match_typed_subject_alt_names": [
                        {"san_type": "DNS", "matcher": {"exact": ISTIOD_SAN}}
                    ],
                },
            },
        },
    }


def _xds_cluster(xds: tuple[HostPort, ...], transport: dict[str, Any] | None) -> dict[str, Any]:
    """istiod's addresses as the endpoints of one cluster: each new ADS stream (one per
    connection) goes to one of them, round robin, so a proxy whose istiod goes away reconnects
    to another replica."""
    all_ips = all(address.is_ip for address in xds)
    limits = {
        "max_connections": _XDS_CIRCUIT_LIMIT,
        "max_pending_requests": _XDS_CIRCUIT_LIMIT,
        "max_requests": _XDS_CIRCUIT_LIMIT,
        "max_retries": _XDS_CIRCUIT_LIMIT,
    }
    cluster: dict[str, Any] = {
        "name": XDS_CLUSTER,
        "type": "STATIC" if all_ips else "STRICT_DNS",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": _socket_address(a.host, a.port)}} for a in xds
                    ]
                }
            ],
        },
        "circuit_breakers": {
            "thresholds": [{"priority": "DEFAULT", **limits}, {"priority": "HIGH", **limits}]
        },
        "upstream_connection_options": {"tcp_keepalive": {"keepalive_time": 300}},
        # gRPC needs HTTP/2; without it Envoy speaks HTTP/1.1, gets 502 and never initializes.
        "typed_extension_protocol_options": {
            _HTTP_PROTOCOL_OPTIONS: {
                "@type": f"type.googleapis.com/{_HTTP_PROTOCOL_OPTIONS}",
                # One stream per connection, as Istio: a reconnect opens a new connection,
                # so proxies rebalance across istiod replicas.
                "common_http_protocol_options": {"max_requests_per_connection": 1},
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
    }
    if not all_ips:
        cluster["dns_lookup_family"] = "V4_PREFERRED"
        cluster["respect_dns_ttl"] = True
    if transport is not None:
        cluster["transport_socket"] = transport
    return cluster


def _ads_source() -> dict[str, Any]:
    # initial_fetch_timeout 0s: wait for istiod however long it takes (as Istio does).
    return {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}


def _socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _parse_ip(value: str, flag: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise BootstrapError(flag, f"invalid IP address {value!r}") from None


def _parse_port(text: str, flag: str, *, allow_zero: bool) -> int:
    if not text.isdigit():
        raise BootstrapError(flag, f"invalid port {text!r}")
    port = int(text)
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise BootstrapError(flag, f"port out of range: {port}")
    return port


def _check_label(key: str, value: str, flag: str) -> None:
    name = key.rpartition("/")[2]
    if not key or len(name) > 63 or not _LABEL_KEY.match(key):
        raise BootstrapError(flag, f"invalid label key {key!r}")
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise BootstrapError(flag, f"invalid label value {value!r} for {key!r}")
