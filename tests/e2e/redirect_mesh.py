"""A REDIRECT-mode mesh in network namespaces (see netns.py for the topology): Bookinfo's
productpage calling reviews v1/v2, each workload in its own namespace with Istio's capture
rules, a secure sidecar Envoy (`istioctl bootstrap`, interception mode REDIRECT, the
namespace's IP) running as the proxy user, and an application that knows nothing of the mesh.

- reviews-v1 / reviews-v2: a Backend bound on 0.0.0.0:9080 in its namespace. The Service
  `reviews` (a Kubernetes Service, clusterIP 10.96.77.10) selects both through WorkloadEntries
  at the namespaces' IPs (service account reviews: mTLS-capable for auto mTLS); a
  DestinationRule has subsets v1/v2 and a VirtualService splits 70/30.
  reviews-v1 also runs a TcpEcho on 0.0.0.0:9000, the endpoint of the TCP Service `echo`
  (clusterIP 10.96.77.20, port name `tcp`).
- productpage: no server; the tests are its application: they call `http://reviews:9080/` by
  the ClusterIP from inside its namespace (`RedirectMesh.call_reviews`), with Host
  `reviews:9080`, and `echo` at 10.96.77.20:9000.
- outsider: a namespace on the same bridge with no rules and no sidecar (a process that
  bypasses the mesh), running a Backend on 0.0.0.0:8000 that no service describes.

istiod stays on the host (127.0.0.1, ephemeral ports). In a pod Envoy gets its xDS from
pilot-agent on localhost, which relays to istiod; here `XdsRelay` plays that part: it listens
on 127.0.0.1:15012 inside the workload's namespace and copies bytes to istiod's secure port on
the host (TLS and the bearer token pass through untouched; the capture rules leave the proxy's
own traffic and 127.0.0.1 alone). The token and mesh root are fetched by the test on the host.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from istioctl.bootstrap import BootstrapOptions

from .backend import Backend, TcpEcho, tcp_exchange
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import join_docs, write_config
from .net import split_host_port, wait_until
from .netns import PROXY_GID, PROXY_UID, Netns, Topology, install_capture, pod_ip, service_vip
from .security_helpers import fetch_material
from .traffic import Response, count_backends, request

PORT = 9080
REVIEWS_VIP = service_vip(10)
ECHO_VIP = service_vip(20)
ECHO_PORT = 9000
OUTSIDER_PORT = 8000
XDS_LISTEN = ("127.0.0.1", 15012)
SPLIT = {"v1": 70, "v2": 30}
MESH_FILE = "mesh.yaml"
POLICY_FILE = "peer-authentication.yaml"
# role → (host part of 10.77.0.N, service account, labels)
WORKLOADS: dict[str, tuple[int, str, dict[str, str]]] = {
    "productpage-v1": (10, "productpage", {"app": "productpage", "version": "v1"}),
    "reviews-v1": (11, "reviews", {"app": "reviews", "version": "v1"}),
    "reviews-v2": (12, "reviews", {"app": "reviews", "version": "v2"}),
}
OUTSIDER_HOST = 99


class XdsRelay:
    """Listens at `listen` inside `ns` and relays each connection to `target` on the host."""

    def __init__(self, ns: Netns, target: tuple[str, int], listen: tuple[str, int]) -> None:
        self.ns, self.target, self.listen = ns, target, listen
        self._stopped = threading.Event()
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> XdsRelay:
        def bind() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self.listen)
            sock.listen(16)
            return sock

        self._server = self.ns.run(bind)  # lives in the namespace; accepted there
        self._server.settimeout(0.1)
        self._spawn(self._accept_loop)
        return self

    def _spawn(self, fn: Any, *args: Any) -> None:
        thread = threading.Thread(target=fn, args=args, name=f"relay-{self.ns.role}", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stopped.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=5.0)  # host namespace
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._socks += [conn, upstream]
            self._spawn(self._pump, conn, upstream)
            self._spawn(self._pump, upstream, conn)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5.0)
        for sock in [*socks, *([self._server] if self._server else [])]:
            sock.close()


class NetnsEnvoy(EnvoyProcess):
    """An Envoy inside a namespace, as Istio's proxy user (uid and gid 1337); its admin API
    (127.0.0.1 there) is read from inside the namespace."""

    def __init__(self, bootstrap: Any, workdir: Path, *, netns: Netns, **kwargs: Any) -> None:
        prefix = netns.command((), uid=PROXY_UID, gid=PROXY_GID)
        super().__init__(bootstrap, workdir, command_prefix=prefix, **kwargs)
        self.netns = netns

    def admin_get(self, path: str, timeout: float = 5.0) -> Response:
        return self.netns.run(EnvoyProcess.admin_get, self, path, timeout)

    def admin_post(self, path: str, timeout: float = 5.0) -> Response:
        return self.netns.run(EnvoyProcess.admin_post, self, path, timeout)


@dataclass
class Workload:
    ns: Netns
    opts: BootstrapOptions
    envoy: NetnsEnvoy
    app: Backend | None = None


@dataclass
class RedirectMesh:
    istiod: IstiodProcess
    topology: Topology
    workloads: dict[str, Workload]
    outsider: Netns
    outsider_app: Backend
    echo: TcpEcho
    captured: dict[str, str] = field(default_factory=dict)  # role → `iptables-save -t nat`

    @property
    def client(self) -> Workload:
        return self.workloads["productpage-v1"]

    def app(self, role: str) -> Backend:
        app = self.workloads[role].app
        assert app is not None, role
        return app

    def call_reviews(self, n: int = 1, *, timeout: float = 2.0) -> Counter[str]:
        """productpage's application calling `http://reviews:9080/` n times over keep-alive
        (by the ClusterIP, as after a DNS lookup): counts by backend."""
        return self.client.ns.run(
            count_backends, REVIEWS_VIP, PORT, n, host=f"reviews:{PORT}", timeout=timeout
        )

    def client_get(self, ip: str, port: int, host: str, *, timeout: float = 2.0) -> Response:
        """One call by productpage's application on a fresh connection."""
        return self.client.ns.run(request, ip, port, host=host, timeout=timeout)

    def get_reviews(self, *, timeout: float = 2.0) -> Response:
        return self.client_get(REVIEWS_VIP, PORT, f"reviews:{PORT}", timeout=timeout)

    def echo_exchange(self, payload: bytes = b"ping\n") -> str:
        """productpage's application talking TCP to `echo` by its ClusterIP: the greeting."""
        return self.client.ns.run(tcp_exchange, ECHO_VIP, ECHO_PORT, payload)

    def outsider_get(self, role: str, *, timeout: float = 2.0) -> Response:
        """A plaintext call from the outsider namespace straight to `role`'s IP:9080."""
        ip = self.workloads[role].ns.ip
        return self.outsider.run(request, ip, PORT, host=f"reviews:{PORT}", timeout=timeout)


def mesh_yaml() -> str:
    entries = [
        f"""
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {{name: {role}, namespace: default}}
        spec:
          address: {pod_ip(host)}
          serviceAccount: {sa}
          labels: {{{", ".join(f"{k}: {v}" for k, v in labels.items())}}}
        """
        for role, (host, sa, labels) in WORKLOADS.items()
    ]
    routes = "".join(
        f"""
            - destination: {{host: reviews, subset: {subset}}}
              weight: {weight}"""
        for subset, weight in SPLIT.items()
    )
    return join_docs(
        f"""
        apiVersion: v1
        kind: Service
        metadata: {{name: reviews, namespace: default}}
        spec:
          clusterIP: {REVIEWS_VIP}
          selector: {{app: reviews}}
          ports:
          - {{name: http, port: {PORT}, targetPort: {PORT}}}
        """,
        *entries,
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: default}
        spec:
          host: reviews
          subsets:
          - {name: v1, labels: {version: v1}}
          - {name: v2, labels: {version: v2}}
        """,
        f"""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: reviews, namespace: default}}
        spec:
          hosts: [reviews]
          http:
          - route:{routes}
        """,
        f"""
        apiVersion: v1
        kind: Service
        metadata: {{name: echo, namespace: default}}
        spec:
          clusterIP: {ECHO_VIP}
          selector: {{app: reviews, version: v1}}
          ports:
          - {{name: tcp, port: {ECHO_PORT}, targetPort: {ECHO_PORT}}}
        """,
    )


def _options(istiod: IstiodProcess, role: str, ip: str) -> BootstrapOptions:
    _, sa, labels = WORKLOADS[role]
    return BootstrapOptions(
        name=role,
        namespace="default",
        proxy_type="sidecar",
        ip=ip,
        labels=labels,
        service_account=sa,
        interception_mode="REDIRECT",
        insecure=False,
        istiod=f"{XDS_LISTEN[0]}:{XDS_LISTEN[1]}",
        istiod_http=istiod.http_url,
    )


@contextlib.contextmanager
def redirect_mesh(workdir: Path) -> Iterator[RedirectMesh]:
    """Build the namespaces, start istiod, the apps, relays and sidecars, wait until
    productpage reaches reviews through both sidecars, yield; tear everything down after."""
    with contextlib.ExitStack() as stack:
        topology = stack.enter_context(Topology())
        namespaces = {role: topology.add(role, host) for role, (host, _, _) in WORKLOADS.items()}
        outsider = topology.add("outsider", OUTSIDER_HOST)
        captured = {role: install_capture(ns) for role, ns in namespaces.items()}
        config = workdir / "config"
        config.mkdir(parents=True, exist_ok=True)
        write_config(config, MESH_FILE, mesh_yaml())
        istiod = IstiodProcess(workdir / "istiod", config_dirs=[config])
        stack.callback(istiod.stop)
        istiod.start()
        target = split_host_port(istiod.secure_grpc_addr)
        outsider_app = Backend("outsider", "0.0.0.0", OUTSIDER_PORT)
        outsider.run(outsider_app.start)
        stack.callback(outsider_app.stop)
        echo = TcpEcho("echo", "0.0.0.0", ECHO_PORT)
        namespaces["reviews-v1"].run(echo.start)
        stack.callback(echo.stop)
        workloads = {}
        for role, ns in namespaces.items():
            app = None
            if role.startswith("reviews"):
                app = Backend(role, "0.0.0.0", PORT)
                ns.run(app.start)
                stack.callback(app.stop)
            relay = XdsRelay(ns, target, XDS_LISTEN).start()
            stack.callback(relay.stop)
            opts = _options(istiod, role, ns.ip)
            material = fetch_material(istiod, opts.namespace, opts.service_account)
            envoy = NetnsEnvoy.for_proxy(
                opts, workdir / f"envoy-{role}", secure=material, netns=ns, name=role
            )
            stack.callback(envoy.stop)
            envoy.start()
            workloads[role] = Workload(ns, opts, envoy, app)
        for workload in workloads.values():
            workload.envoy.wait_live(20.0)
        mesh = RedirectMesh(istiod, topology, workloads, outsider, outsider_app, echo, captured)
        wait_until(
            lambda: set(mesh.call_reviews(10)) <= {"reviews-v1", "reviews-v2"},
            20.0,
            0.1,
            "productpage → reviews through both sidecars",
        )
        yield mesh


__all__ = [
    "ECHO_PORT",
    "ECHO_VIP",
    "MESH_FILE",
    "OUTSIDER_PORT",
    "POLICY_FILE",
    "PORT",
    "REVIEWS_VIP",
    "SPLIT",
    "NetnsEnvoy",
    "RedirectMesh",
    "Workload",
    "XdsRelay",
    "mesh_yaml",
    "redirect_mesh",
]
