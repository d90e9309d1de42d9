"""A Bookinfo mesh for Istio's Bookinfo traffic samples (../shared/conformance/bookinfo/).

Topology, all in namespace `default` as the samples expect, on loopback (NONE interception):

- the Kubernetes Services productpage, details, reviews and ratings (port 9080), read in place
  from Istio's `bookinfo/platform/bookinfo.yaml`;
- per workload (`<app>-<version>`: productpage-v1, details-v1/-v2, reviews-v1/-v2/-v3,
  ratings-v1/-v2/-v2-mysql/-v2-mysql-vm, the versions the samples' subsets name) a
  WorkloadEntry at its own 127.0.x.y with labels app/version and service account
  `bookinfo-<app>` (so auto mTLS applies), the application (tests/e2e/bookinfo_apps.py) on
  127.0.0.1:<ephemeral>, and a secure-bootstrapped sidecar Envoy whose Sidecar resource binds
  an ingress listener on the workload's IP:9080 (→ the application) and an egress listener
  for `./*` on a second IP of the workload's own, port 9080 (where its application calls);
- the ingress gateway, an Envoy router `istio-ingressgateway.istio-system` labelled
  `istio: ingressgateway`, with a WorkloadEntry and the Service Istio's installation gives it
  (`istio-ingressgateway`: port 80 → targetPort 8080, 443 → 8443), so bookinfo-gateway's
  server port 8080 and certmanager-gateway's port 80 both listen on its IP:8080;
- `cert-manager-resolver.istio-system:8089` (certmanager-gateway's destination), a plain
  backend without sidecar.

Samples are applied as `kubectl apply -f` would: every document of the file becomes one file
of istiod's config dir named after its kind/namespace/name, so a later sample's object
replaces an earlier one of the same name (`BookinfoMesh.use`).
"""

from __future__ import annotations

import contextlib
import http.client
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from istioctl.bootstrap import BootstrapOptions
from istioctl.istiod_client import fetch_secure_material

from .backend import Backend
from .bookinfo_apps import SERVICE_PORT, App
from .bookinfo_xds import expected_state, wait_state
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import join_docs, remove_config, write_config
from .net import allocate_ip, wait_until
from .traffic import Response, request_on

CONFORMANCE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
SAMPLES = CONFORMANCE / "bookinfo" / "networking"
PLATFORM = CONFORMANCE / "bookinfo" / "platform" / "bookinfo.yaml"
NAMESPACE = "default"
GATEWAY_PORT = 8080  # bookinfo-gateway.yaml's server port
GATEWAY_SA = "istio-ingressgateway-service-account"
RESOLVER_PORT = 8089  # certmanager-gateway.yaml's destination port
VERSIONS = {
    "productpage": ("v1",),
    "details": ("v1", "v2"),
    "reviews": ("v1", "v2", "v3"),
    "ratings": ("v1", "v2", "v2-mysql", "v2-mysql-vm"),
}
BASE_SAMPLES = ("bookinfo-gateway.yaml",)


@dataclass(frozen=True)
class Doc:
    """One document of a sample file, kept as written."""

    kind: str
    name: str
    namespace: str
    text: str
    spec: Mapping[str, Any]

    @property
    def filename(self) -> str:
        return f"{self.kind}.{self.namespace}.{self.name}.yaml".lower()


def sample(name: str) -> tuple[Doc, ...]:
    """The documents of `../shared/conformance/bookinfo/networking/<name>`, read in place."""
    docs = []
    for chunk in re.split(r"^---\s*$", (SAMPLES / name).read_text(encoding="utf-8"), flags=re.M):
        obj = yaml.safe_load(chunk)
        if isinstance(obj, dict):
            meta = obj.get("metadata") or {}
            docs.append(
                Doc(
                    str(obj["kind"]),
                    str(meta["name"]),
                    str(meta.get("namespace", NAMESPACE)),
                    chunk.strip() + "\n",
                    obj.get("spec") or {},
                )
            )
    return tuple(docs)


def gateway_yaml(gateway_ip: str, resolver: Backend) -> str:
    """The gateway's Service and WorkloadEntry as Istio's installation has them, and the
    cert-manager resolver (no service account: plain HTTP, no sidecar)."""
    return join_docs(
        """
        apiVersion: v1
        kind: Service
        metadata: {name: istio-ingressgateway, namespace: istio-system}
        spec:
          selector: {istio: ingressgateway}
          ports:
          - {name: http2, port: 80, targetPort: 8080}
          - {name: https, port: 443, targetPort: 8443}
        """,
        f"""
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {{name: istio-ingressgateway, namespace: istio-system}}
        spec:
          address: {gateway_ip}
          serviceAccount: {GATEWAY_SA}
          labels: {{istio: ingressgateway, app: istio-ingressgateway}}
        """,
        f"""
        apiVersion: v1
        kind: Service
        metadata: {{name: cert-manager-resolver, namespace: istio-system}}
        spec:
          selector: {{app: cert-manager-resolver}}
          ports:
          - {{name: http, port: {RESOLVER_PORT}}}
        """,
        f"""
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {{name: cert-manager-resolver, namespace: istio-system}}
        spec:
          address: {resolver.ip}
          labels: {{app: cert-manager-resolver}}
        """,
    )


def platform_services() -> str:
    """The Kubernetes Service documents of Istio's bookinfo.yaml (namespace default)."""
    docs = yaml.safe_load_all(PLATFORM.read_text(encoding="utf-8"))
    services = [d for d in docs if isinstance(d, dict) and d.get("kind") == "Service"]
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in services)


@dataclass
class Workload:
    app: App
    ip: str  # the WorkloadEntry address: its sidecar's ingress listener
    egress_ip: str  # its sidecar's egress listener (its application calls here)
    envoy: EnvoyProcess | None = None

    @property
    def service_account(self) -> str:
        return f"bookinfo-{self.app.app}"

    def yaml(self) -> str:
        a = self.app
        port = f"{{number: {SERVICE_PORT}, protocol: HTTP, name: http}}"
        return join_docs(
            f"""
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata: {{name: {a.name}, namespace: {NAMESPACE}}}
            spec:
              address: {self.ip}
              serviceAccount: {self.service_account}
              labels: {{app: {a.app}, version: {a.version}}}
            """,
            f"""
            apiVersion: networking.istio.io/v1
            kind: Sidecar
            metadata: {{name: {a.name}, namespace: {NAMESPACE}}}
            spec:
              workloadSelector: {{labels: {{app: {a.app}, version: {a.version}}}}}
              ingress:
              - port: {port}
                defaultEndpoint: 127.0.0.1:{a.port}
              egress:
              - port: {port}
                bind: {self.egress_ip}
                hosts: ["./*"]
            """,
        )


@dataclass
class BookinfoMesh:
    istiod: IstiodProcess
    workloads: dict[str, Workload]
    gateway_ip: str
    resolver: Backend
    gateway: EnvoyProcess | None = None
    applied: dict[str, Doc] = field(default_factory=dict)  # file name → document

    @property
    def sidecars(self) -> list[EnvoyProcess]:
        return [w.envoy for w in self.workloads.values() if w.envoy is not None]

    def app(self, name: str) -> App:
        return self.workloads[name].app

    # -- config ----------------------------------------------------------------------------

    def use(self, *samples: str, dr: str = "destination-rule-all.yaml", wait: bool = True) -> None:
        """Leave the config dir as Istio's docs would after `kubectl apply -f` of the gateway,
        `dr` and `samples` in that order (later objects replace earlier ones of the same
        name), with every other object of an earlier `use` deleted; then wait until every
        sidecar's routes and clusters show it."""
        wanted: dict[str, Doc] = {}
        for name in (*BASE_SAMPLES, dr, *samples):
            for doc in sample(name):
                wanted[doc.filename] = doc
        for filename in sorted(set(self.applied) - set(wanted)):
            remove_config(self.istiod.config_dir, filename)
            del self.applied[filename]
        for filename, doc in wanted.items():
            if self.applied.get(filename) != doc:
                write_config(self.istiod.config_dir, filename, doc.text)
                self.applied[filename] = doc
        if wait:
            self.wait_in_effect()

    def wait_in_effect(self, timeout: float = 15.0) -> None:
        """Every sidecar holds the routes and clusters the applied objects call for, the
        gateway routes /productpage, and no Envoy has rejected an update."""
        wait_state(self.sidecars, expected_state(self.applied.values()), timeout)
        wait_until(
            lambda: self.page().status == 200, timeout, 0.05, "the gateway routes /productpage"
        )
        for envoy in (self.gateway, *self.sidecars):
            assert envoy is not None
            rejected = {k: v for k, v in envoy.stats(filter="update_rejected$").items() if v}
            assert not rejected, f"{envoy.name} rejected config: {rejected}\n{envoy.log_tail()}"

    # -- traffic ---------------------------------------------------------------------------

    def connect(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.gateway_ip, GATEWAY_PORT, timeout=timeout)

    def page(
        self,
        path: str = "/productpage",
        *,
        cookie: str = "",
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Response:
        """One request to the gateway (Host bookinfo.example.com; the Gateway takes "*")."""
        hdrs = {"Host": "bookinfo.example.com", **(headers or {})}
        if cookie:
            hdrs["Cookie"] = cookie
        conn = self.connect(timeout)
        try:
            return request_on(conn, method, path, headers=hdrs, body=body)
        finally:
            conn.close()

    def login(self, user: str) -> str:
        """`POST /login` through the gateway as the Bookinfo page does; the session cookie."""
        resp = self.page(
            "/login",
            method="POST",
            body=f"username={user}".encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": "/productpage",
            },
        )
        assert resp.status == 302, (resp.status, resp.body[:300])
        cookie = resp.headers.get("set-cookie", "").split(";")[0]
        assert cookie == f"user={user}", resp.headers
        return cookie

    def pages(self, n: int, *, cookie: str = "", path: str = "/productpage") -> list[Any]:
        """`n` GETs over one keep-alive connection to the gateway; the JSON bodies (bounded:
        each request has the connection's timeout)."""
        out = []
        hdrs = {"Host": "bookinfo.example.com", **({"Cookie": cookie} if cookie else {})}
        conn = self.connect()
        try:
            for _ in range(n):
                resp = request_on(conn, "GET", path, headers=hdrs)
                assert resp.status == 200, (resp.status, resp.body[:300])
                out.append(resp.json())
        finally:
            conn.close()
        return out

    def timed_page(self, cookie: str = "", timeout: float = 15.0) -> tuple[float, Response]:
        started = time.monotonic()
        resp = self.page(cookie=cookie, timeout=timeout)
        return time.monotonic() - started, resp


def _options(
    istiod: IstiodProcess,
    name: str,
    ns: str,
    ip: str,
    labels: Mapping[str, str],
    sa: str,
    *,
    router: bool = False,
) -> BootstrapOptions:
    """A secure bootstrap (token and mesh root from istiod's HTTP server, ADS over TLS)."""
    return BootstrapOptions(
        name=name,
        namespace=ns,
        proxy_type="router" if router else "sidecar",
        ip=ip,
        labels=dict(labels),
        service_account=sa,
        interception_mode="NONE",
        insecure=False,
        istiod=istiod.secure_grpc_addr,
        istiod_http=istiod.http_url,
    )


def _start_envoy(istiod: IstiodProcess, opts: BootstrapOptions, workdir: Path) -> EnvoyProcess:
    material = fetch_secure_material(
        istiod.http_url, opts.namespace, opts.service_account, timeout=5.0
    )
    envoy = EnvoyProcess.for_proxy(opts, workdir / f"envoy-{opts.name}", secure=material)
    return envoy.start()


def healthy(mesh: BookinfoMesh) -> bool:
    resp = mesh.page(timeout=5.0)
    if resp.status != 200:
        return False
    body = resp.json()
    return bool(body["detailsStatus"] == 200 and body["reviewsStatus"] == 200)


@contextlib.contextmanager
def bookinfo_mesh(workdir: Path) -> Iterator[BookinfoMesh]:
    """Start the applications, istiod and every Envoy with the gateway and
    destination-rule-all applied; wait until a page through the gateway reaches details and
    reviews."""
    with contextlib.ExitStack() as stack:
        workloads: dict[str, Workload] = {}
        for app_name, versions in VERSIONS.items():
            for version in versions:
                app = App(app_name, version)
                app.egress = (allocate_ip(), SERVICE_PORT)
                stack.callback(app.start().stop)
                workloads[app.name] = Workload(app, allocate_ip(), app.egress[0])
        resolver = Backend("cert-manager-resolver", allocate_ip(), RESOLVER_PORT).start()
        stack.callback(resolver.stop)
        gateway_ip = allocate_ip()
        config = workdir / "config"
        config.mkdir(parents=True)
        topology = [
            platform_services(),
            gateway_yaml(gateway_ip, resolver),
            *(w.yaml() for w in workloads.values()),
        ]
        write_config(config, "topology.yaml", "---\n".join(topology))
        istiod = IstiodProcess(workdir / "istiod", config_dirs=[config])
        stack.callback(istiod.stop)
        mesh = BookinfoMesh(istiod, workloads, gateway_ip, resolver)
        mesh.use(wait=False)
        istiod.start()
        labels = {"istio": "ingressgateway", "app": "istio-ingressgateway"}
        gateway = _options(
            istiod,
            "istio-ingressgateway",
            "istio-system",
            gateway_ip,
            labels,
            GATEWAY_SA,
            router=True,
        )
        mesh.gateway = _start_envoy(istiod, gateway, workdir)
        stack.callback(mesh.gateway.stop)
        for w in workloads.values():
            a = w.app
            labels = {"app": a.app, "version": a.version}
            opts = _options(istiod, a.name, NAMESPACE, w.ip, labels, w.service_account)
            w.envoy = _start_envoy(istiod, opts, workdir)
            stack.callback(w.envoy.stop)
        for envoy in (mesh.gateway, *mesh.sidecars):
            envoy.wait_live(20.0)
        mesh.wait_in_effect(timeout=20.0)
        wait_until(lambda: healthy(mesh), 20.0, 0.1, "/productpage reaches details and reviews")
        yield mesh
