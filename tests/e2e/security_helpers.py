"""Helpers for the workload-security end-to-end scenarios (test_security.py): secure sidecar
bootstraps (token + mesh root fetched from istiod's HTTP server, ADS over TLS to the
`secure-grpc` port), the certificates Envoy holds (`/config_dump` SDS secrets), inbound filter
chains, x-forwarded-client-cert parsing, and a two-sidecar mTLS topology.

The topology, all in NONE interception mode on loopback (DESIGN §2.2):

- `httpbin` (namespace default, service account httpbin): a Backend echo server on
  127.0.0.1:<ephemeral> behind a sidecar whose Sidecar resource has an `ingress` listener on
  port 8000 (bound on the workload's own 127.0.x.y) with that backend as `defaultEndpoint`.
  Istio's validation only accepts a loopback or wildcard `defaultEndpoint`
  (`127.0.0.1:<port>`, `0.0.0.0:<port>`, ...), so the application listens on 127.0.0.1 as
  it would inside its pod. The service `httpbin` (a Kubernetes Service, port 8000) has one
  endpoint: a WorkloadEntry at the sidecar's IP with serviceAccount httpbin and no
  `security.istio.io/tlsMode` label, i.e. mTLS-capable for auto mTLS.
- `sleep` (service account sleep): a sidecar whose outbound listener for port 8000 is bound on
  its own 127.0.x.y (NONE mode's local bind) and routes to httpbin.
- optionally more clients like `sleep` (`secure_mesh(extra_clients=["notsleep"])`): each named
  workload gets label `app: <name>`, service account `<name>`, its own 127.0.x.y and its own
  Sidecar resource (egress to port 8000), so it reaches httpbin over mTLS with its own identity
  (`spiffe://cluster.local/ns/default/sa/<name>`).

A DestinationRule sets `maxRequestsPerConnection: 1` for httpbin, so every request the client
sidecar forwards opens a new upstream connection: a fresh (or resumed) mTLS handshake with the
certificates both sides hold at that moment. That is what makes handshake counters and
certificate rotation under load observable per request.
"""

from __future__ import annotations

import base64
import contextlib
import re
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from istioctl.bootstrap import BootstrapOptions, SecureMaterial, XdsApi
from istioctl.istiod_client import fetch_secure_material

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import join_docs, wait_for_backend, write_config
from .net import allocate_ip
from .traffic import Response, request

HTTPBIN_PORT = 8000
HTTPBIN_HOST = "httpbin.default.svc.cluster.local"
TRUST_DOMAIN = "cluster.local"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
MESH_FILE = "mesh.yaml"
POLICY_FILE = "peer-authentication.yaml"


def spiffe_id(namespace: str, service_account: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


# -- secure bootstraps ---------------------------------------------------------------------


def secure_sidecar_options(
    istiod: IstiodProcess,
    name: str,
    ip: str,
    labels: Mapping[str, str],
    service_account: str,
    namespace: str = "default",
    xds_api: XdsApi = "delta",
) -> BootstrapOptions:
    """A NONE-mode sidecar bootstrapped in secure mode: ADS over TLS to istiod's `secure-grpc`
    address, material from its HTTP server (`service_account` is what the node *claims*)."""
    return BootstrapOptions(
        name=name,
        namespace=namespace,
        proxy_type="sidecar",
        ip=ip,
        labels=dict(labels),
        service_account=service_account,
        interception_mode="NONE",
        insecure=False,
        istiod=istiod.secure_grpc_addr,
        istiod_http=istiod.http_url,
        xds_api=xds_api,
    )


def fetch_material(istiod: IstiodProcess, namespace: str, service_account: str) -> SecureMaterial:
    """The mesh root and a bearer token for `namespace`/`service_account`, as
    `istioctl bootstrap` fetches them (GET /v1/root-cert, POST /v1/token)."""
    return fetch_secure_material(istiod.http_url, namespace, service_account, timeout=5.0)


def start_secure_envoy(
    opts: BootstrapOptions,
    workdir: Path,
    material: SecureMaterial,
    *,
    log_level: str = "warning",
) -> EnvoyProcess:
    """Start (not wait for) an Envoy with `opts`' secure bootstrap and `material`."""
    envoy = EnvoyProcess.for_proxy(
        opts, workdir, secure=material, name=f"{opts.name}.{opts.namespace}", log_level=log_level
    )
    return envoy.start()


# -- what Envoy holds ----------------------------------------------------------------------


def secret_certificate(envoy: EnvoyProcess, name: str = "default") -> x509.Certificate | None:
    """The leaf certificate of SDS secret `name` as Envoy has it active (its
    `/config_dump?resource=dynamic_active_secrets`), or None when Envoy holds no such secret."""
    dump = envoy.config_dump(resource="dynamic_active_secrets")
    for entry in dump.get("configs", []):
        if entry.get("name") != name:
            continue
        chain = entry.get("secret", {}).get("tls_certificate", {}).get("certificate_chain", {})
        if "inline_bytes" in chain:
            pem = base64.b64decode(chain["inline_bytes"])
        elif "inline_string" in chain:
            pem = chain["inline_string"].encode()
        else:
            return None
        return x509.load_pem_x509_certificates(pem)[0]
    return None


def default_serial(envoy: EnvoyProcess) -> int | None:
    cert = secret_certificate(envoy)
    return None if cert is None else cert.serial_number


def uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in ext.value.get_values_for_type(x509.UniformResourceIdentifier)]


def dynamic_secret_names(envoy: EnvoyProcess) -> set[str]:
    dump = envoy.config_dump(resource="dynamic_active_secrets")
    return {str(entry.get("name")) for entry in dump.get("configs", [])}


def filter_chain_transports(envoy: EnvoyProcess, listener: str) -> list[str]:
    """`filter_chain_match.transport_protocol` of each chain of the active `listener` (`""`
    for a chain that matches any transport); [] when Envoy has no such listener."""
    dump = envoy.config_dump(resource="dynamic_listeners")
    for entry in dump.get("configs", []):
        if entry.get("name") != listener:
            continue
        active = entry.get("active_state", {}).get("listener", {})
        return [
            str(chain.get("filter_chain_match", {}).get("transport_protocol", ""))
            for chain in active.get("filter_chains", [])
        ]
    return []


# -- x-forwarded-client-cert -----------------------------------------------------------------

_XFCC_PAIR = re.compile(r'([A-Za-z]+)=("(?:[^"\\]|\\.)*"|[^;,]*)')


def parse_xfcc(value: str) -> list[dict[str, str]]:
    """`x-forwarded-client-cert` → one dict per element (`By`, `Hash`, `Subject`, `URI`,
    `DNS`, ...); elements are comma-separated, pairs semicolon-separated, values optionally
    quoted."""
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    pos = 0
    while pos < len(value):
        match = _XFCC_PAIR.match(value, pos)
        if match is None:
            break
        key, raw = match.group(1), match.group(2)
        current[key] = raw[1:-1] if raw.startswith('"') else raw
        pos = match.end()
        if pos < len(value) and value[pos] == ",":
            elements.append(current)
            current = {}
        pos += 1
    if current:
        elements.append(current)
    return elements


# -- istiod's view -------------------------------------------------------------------------


def adsz_client(istiod: IstiodProcess, proxy: str) -> dict[str, Any] | None:
    """The proxy's ADS connection in istiod's /debug/adsz (`proxy` = NAME.NAMESPACE)."""
    for client in istiod.get_json("/debug/adsz").get("clients", []):
        cid = str(client.get("connectionId", ""))  # Istio's form: NAME.NS-N
        if cid.startswith(f"{proxy}-"):
            return dict(client)
    return None


def watching_secrets(istiod: IstiodProcess, proxy: str) -> dict[str, Any] | None:
    """The proxy's connection once it watches its `default` certificate and `ROOTCA` over
    SDS (so it is authenticated and fully subscribed), else None."""
    client = adsz_client(istiod, proxy)
    if client is None:
        return None
    secrets = set(client.get("watches", {}).get(SECRET_TYPE, []))
    return client if {"default", "ROOTCA"} <= secrets else None


def log_lines(path: Path, needle: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if needle in line]


# -- YAML ----------------------------------------------------------------------------------


def mesh_yaml(server_ip: str, backend_port: int) -> str:
    return join_docs(
        f"""
        apiVersion: v1
        kind: Service
        metadata: {{name: httpbin, namespace: default}}
        spec:
          selector: {{app: httpbin}}
          ports:
          - {{name: http, port: {HTTPBIN_PORT}, targetPort: {HTTPBIN_PORT}}}
        """,
        f"""
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {{name: httpbin, namespace: default}}
        spec:
          address: {server_ip}
          serviceAccount: httpbin
          labels: {{app: httpbin}}
          ports: {{http: {HTTPBIN_PORT}}}
        """,
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: httpbin, namespace: default}
        spec:
          host: httpbin
          trafficPolicy:
            connectionPool: {http: {maxRequestsPerConnection: 1}}
        """,
        # No egress: httpbin imports */* (itself included). Its outbound listener for
        # httpbin:8000 would bind the same <ip>:8000 as its ingress listener (NONE mode on a
        # loopback IP); istiod keeps the ingress one (listener_sidecar).
        f"""
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {{name: httpbin, namespace: default}}
        spec:
          workloadSelector: {{labels: {{app: httpbin}}}}
          ingress:
          - port: {{number: {HTTPBIN_PORT}, protocol: HTTP, name: http}}
            defaultEndpoint: 127.0.0.1:{backend_port}
        """,
        f"""
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {{name: sleep, namespace: default}}
        spec:
          workloadSelector: {{labels: {{app: sleep}}}}
          egress:
          - port: {{number: {HTTPBIN_PORT}, protocol: HTTP, name: http}}
            hosts: ["./*"]
        """,
    )


def client_sidecar_yaml(name: str, namespace: str = "default") -> str:
    """A Sidecar for the client workload `app: <name>`: egress to httpbin's port only (as
    `sleep`'s in `mesh_yaml`)."""
    return f"""
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          workloadSelector: {{labels: {{app: {name}}}}}
          egress:
          - port: {{number: {HTTPBIN_PORT}, protocol: HTTP, name: http}}
            hosts: ["./*"]
        """


def peer_authentication(mode: str, namespace: str = "default") -> str:
    return f"""
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {{name: default, namespace: {namespace}}}
        spec:
          mtls: {{mode: {mode}}}
        """


# -- the topology --------------------------------------------------------------------------


@dataclass
class ClientSidecar:
    """An extra client sidecar (see `secure_mesh(extra_clients=...)`)."""

    ip: str
    opts: BootstrapOptions
    envoy: EnvoyProcess

    @property
    def principal(self) -> str:
        return spiffe_id(self.opts.namespace, self.opts.service_account)

    def request(
        self,
        method: str = "GET",
        path: str = "/",
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 2.0,
    ) -> Response:
        """One request to httpbin through this client's outbound listener (mTLS upstream)."""
        return request(
            self.ip, HTTPBIN_PORT, method, path, host="httpbin", headers=headers, timeout=timeout
        )


@dataclass
class SecureMesh:
    """One istiod, the httpbin backend and the two secure sidecars (see the module doc)."""

    istiod: IstiodProcess
    backend: Backend
    server_ip: str
    client_ip: str
    server_opts: BootstrapOptions
    client_opts: BootstrapOptions
    server: EnvoyProcess
    client: EnvoyProcess
    # name → the extra clients `secure_mesh(extra_clients=...)` started
    clients: dict[str, ClientSidecar] = field(default_factory=dict)

    @property
    def config_dir(self) -> Path:
        return self.istiod.config_dir

    @property
    def inbound_listener(self) -> str:
        return f"{self.server_ip}_{HTTPBIN_PORT}"

    @property
    def client_cluster(self) -> str:
        return f"outbound|{HTTPBIN_PORT}||{HTTPBIN_HOST}"

    def via_client(self, timeout: float = 2.0) -> Response:
        """One request through the client sidecar's outbound listener (mTLS upstream)."""
        return request(self.client_ip, HTTPBIN_PORT, host="httpbin", timeout=timeout)

    def direct(self, timeout: float = 2.0) -> Response:
        """One plaintext request straight to the server sidecar's inbound listener."""
        return request(self.server_ip, HTTPBIN_PORT, host="httpbin", timeout=timeout)

    def server_handshakes(self) -> int:
        return self.server.stat(f"listener.{self.inbound_listener}.ssl.handshake") or 0

    def client_handshakes(self) -> int:
        # Stats use the cluster's alt_stat_name (Istio's: the name plus ";").
        name = re.escape(self.client_cluster)
        stats = self.client.stats(filter=rf"^cluster\.{name};?\.ssl\.handshake$")
        return sum(stats.values())

    def wait_transports(self, expected: set[str], timeout: float = 10.0) -> list[str]:
        """Wait until the server's inbound listener has chains for exactly these transports."""
        result: list[str] = self.server.wait_for(
            lambda: (
                t
                if set(t := filter_chain_transports(self.server, self.inbound_listener)) == expected
                else []
            ),
            timeout,
            f"inbound listener {self.inbound_listener} chains for {sorted(expected)}",
        )
        return result

    def proxies(self) -> tuple[str, str]:
        return (
            f"{self.server_opts.name}.{self.server_opts.namespace}",
            f"{self.client_opts.name}.{self.client_opts.namespace}",
        )


@contextlib.contextmanager
def secure_mesh(
    workdir: Path,
    *,
    istiod_env: Mapping[str, str] | None = None,
    xds_api: XdsApi = "delta",
    backend_keep: int = 1000,
    mesh_config: str | None = None,
    extra_clients: Sequence[str] = (),
) -> Iterator[SecureMesh]:
    """Start the topology (istiod with `istiod_env` and the MeshConfig YAML `mesh_config`,
    backend, both sidecars, plus one client sidecar per name in `extra_clients`), wait until
    every client reaches the backend over mTLS, yield it, and stop everything afterwards."""
    with contextlib.ExitStack() as stack:
        backend = Backend("httpbin", "127.0.0.1", 0, keep_requests=backend_keep).start()
        stack.callback(backend.stop)
        server_ip, client_ip = allocate_ip(), allocate_ip()
        extra_ips = {name: allocate_ip() for name in extra_clients}
        config = workdir / "config"
        config.mkdir(parents=True, exist_ok=True)
        write_config(
            config,
            MESH_FILE,
            join_docs(
                mesh_yaml(server_ip, backend.port),
                *(client_sidecar_yaml(name) for name in extra_clients),
            ),
        )
        mesh_file = None
        if mesh_config is not None:
            mesh_file = workdir / "mesh.yaml"
            mesh_file.write_text(textwrap.dedent(mesh_config), encoding="utf-8")
        istiod = IstiodProcess(
            workdir / "istiod", config_dirs=[config], env=istiod_env, mesh_config=mesh_file
        )
        stack.callback(istiod.stop)
        istiod.start()
        server_opts = secure_sidecar_options(
            istiod, "httpbin", server_ip, {"app": "httpbin"}, "httpbin", xds_api=xds_api
        )
        client_opts = secure_sidecar_options(
            istiod, "sleep", client_ip, {"app": "sleep"}, "sleep", xds_api=xds_api
        )
        extra_opts = [
            secure_sidecar_options(istiod, name, ip, {"app": name}, name, xds_api=xds_api)
            for name, ip in extra_ips.items()
        ]
        envoys = []
        for opts in (server_opts, client_opts, *extra_opts):
            material = fetch_material(istiod, opts.namespace, opts.service_account)
            envoy = start_secure_envoy(opts, workdir / f"envoy-{opts.name}", material)
            stack.callback(envoy.stop)
            envoys.append(envoy)
        for envoy in envoys:
            envoy.wait_live(15.0)
        clients = {
            opts.name: ClientSidecar(opts.ip, opts, envoy)
            for opts, envoy in zip(extra_opts, envoys[2:], strict=True)
        }
        mesh = SecureMesh(
            istiod, backend, server_ip, client_ip, server_opts, client_opts, *envoys[:2], clients
        )
        for ip in (client_ip, *extra_ips.values()):
            wait_for_backend(ip, HTTPBIN_PORT, "httpbin", host="httpbin", confirm=5)
        yield mesh


__all__ = [
    "HTTPBIN_HOST",
    "HTTPBIN_PORT",
    "MESH_FILE",
    "POLICY_FILE",
    "SECRET_TYPE",
    "ClientSidecar",
    "SecureMesh",
    "adsz_client",
    "client_sidecar_yaml",
    "default_serial",
    "dynamic_secret_names",
    "fetch_material",
    "filter_chain_transports",
    "log_lines",
    "mesh_yaml",
    "parse_xfcc",
    "peer_authentication",
    "secret_certificate",
    "secure_mesh",
    "secure_sidecar_options",
    "spiffe_id",
    "start_secure_envoy",
    "uri_sans",
    "watching_secrets",
]
