"""The loopback mesh of test_traffic_edge.py: one istiod, a gateway and two NONE-mode sidecars,
each on its own 127.0.x.y, with every config written before istiod starts.

- gateway `edge` (router, istio-system): an HTTPS PASSTHROUGH server on 8443 for
  *.passthrough.test whose `tls` routes send SNI alpha/beta to two TLS backends with
  certificates of their own (ServiceEntries exported to istio-system only); a TCP server on
  31400 forwarding to a TCP echo;
- ServiceEntries reaching a backend on 127.0.0.1 through name resolution: `localhost` by DNS
  (STRICT_DNS) and `logical.local.test` by DNS_ROUND_ROBIN with an endpoint named `localhost`
  (LOGICAL_DNS);
- `near` in namespace default and FAR_SERVICES services in namespace `far`, all on port 9080;
- sidecar `wide` (no Sidecar resource) sees it all; sidecar `narrow` has a Sidecar resource
  importing its own namespace only (./*), with REGISTRY_ONLY.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .backend import Backend, TcpEcho
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import gateway_options, join_docs, sidecar_options, write_config
from .net import allocate_ip
from .tls_backend import TlsBackend

PASSTHROUGH_PORT = 8443
TCP_PORT = 31400
HTTP_PORT = 9080
DNS_PORT, LOGICAL_DNS_PORT = 7000, 7001
FAR_SERVICES = 20


@dataclass
class LoopMesh:
    istiod: IstiodProcess
    gateway: EnvoyProcess
    gateway_ip: str
    wide: EnvoyProcess
    wide_ip: str
    narrow: EnvoyProcess
    narrow_ip: str
    alpha: TlsBackend
    beta: TlsBackend
    echo: TcpEcho
    local: Backend
    near: Backend
    far: Backend


def service_entry(
    name: str,
    ns: str,
    host: str,
    port: int,
    protocol: str,
    backend: str,
    backend_port: int,
    export: str = "*",
) -> str:
    return f"""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: {name}, namespace: {ns}}}
        spec:
          hosts: [{host}]
          exportTo: ["{export}"]
          location: MESH_INTERNAL
          resolution: STATIC
          ports:
          - {{number: {port}, name: {protocol.lower()}, protocol: {protocol}}}
          endpoints:
          - {{address: {backend}, ports: {{{protocol.lower()}: {backend_port}}}}}
        """


def _edge_config(alpha: TlsBackend, beta: TlsBackend, echo: TcpEcho) -> str:
    routes = "".join(
        f"""
          - match:
            - sniHosts: [{b.host}]
            route:
            - destination: {{host: {b.host}, port: {{number: 443}}}}"""
        for b in (alpha, beta)
    )
    return join_docs(
        f"""
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {{name: edge, namespace: istio-system}}
        spec:
          selector: {{istio: ingressgateway}}
          servers:
          - port: {{number: {PASSTHROUGH_PORT}, name: https-passthrough, protocol: HTTPS}}
            hosts: ["*.passthrough.test"]
            tls: {{mode: PASSTHROUGH}}
          - port: {{number: {TCP_PORT}, name: tcp-echo, protocol: TCP}}
            hosts: ["*"]
        """,
        f"""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: passthrough, namespace: default}}
        spec:
          hosts: ["*.passthrough.test"]
          gateways: [istio-system/edge]
          tls:{routes}
        """,
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: echo, namespace: default}
        spec:
          hosts: ["*"]
          gateways: [istio-system/edge]
          tcp:
          - route:
            - destination: {host: echo.tcp.test, port: {number: 9000}}
        """,
        *(
            service_entry(b.name, "default", b.host, 443, "TLS", b.ip, b.port, "istio-system")
            for b in (alpha, beta)
        ),
        service_entry(
            "echo", "default", "echo.tcp.test", 9000, "TCP", echo.ip, echo.port, "istio-system"
        ),
    )


def _sidecar_config(local: Backend, near: Backend, far: Backend) -> str:
    far_entries = [
        service_entry(
            f"far-{i}", "far", f"far-{i}.far.svc.cluster.local", HTTP_PORT, "HTTP", far.ip, far.port
        )
        for i in range(FAR_SERVICES)
    ]
    return join_docs(
        f"""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: local-dns, namespace: default}}
        spec:
          hosts: [localhost]
          location: MESH_EXTERNAL
          resolution: DNS
          ports:
          - {{number: {DNS_PORT}, name: http, protocol: HTTP, targetPort: {local.port}}}
        """,
        f"""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: local-logical-dns, namespace: default}}
        spec:
          hosts: [logical.local.test]
          location: MESH_EXTERNAL
          resolution: DNS_ROUND_ROBIN
          ports:
          - {{number: {LOGICAL_DNS_PORT}, name: http, protocol: HTTP}}
          endpoints:
          - {{address: localhost, ports: {{http: {local.port}}}}}
        """,
        service_entry(
            "near",
            "default",
            "near.default.svc.cluster.local",
            HTTP_PORT,
            "HTTP",
            near.ip,
            near.port,
        ),
        *far_entries,
        """
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: narrow, namespace: default}
        spec:
          workloadSelector:
            labels: {app: narrow}
          egress:
          - hosts: ["./*"]
          outboundTrafficPolicy: {mode: REGISTRY_ONLY}
        """,
    )


@contextlib.contextmanager
def loop_mesh(workdir: Path) -> Iterator[LoopMesh]:
    """Start the backends, istiod (every config written before it starts), the gateway and
    the two sidecars; yield once all are live; stop everything after."""
    started: list[Backend | TcpEcho | TlsBackend | EnvoyProcess | IstiodProcess] = []
    try:
        alpha = TlsBackend("alpha", allocate_ip(), "alpha.passthrough.test").start()
        beta = TlsBackend("beta", allocate_ip(), "beta.passthrough.test").start()
        echo = TcpEcho("echo", allocate_ip()).start()
        local = Backend("local", "127.0.0.1").start()  # what `localhost` resolves to
        near = Backend("near", allocate_ip()).start()
        far = Backend("far", allocate_ip()).start()
        started += [alpha, beta, echo, local, near, far]
        config = workdir / "config"
        config.mkdir()
        write_config(config, "edge.yaml", _edge_config(alpha, beta, echo))
        write_config(config, "sidecars.yaml", _sidecar_config(local, near, far))
        istiod = IstiodProcess(workdir / "istiod", config_dirs=[config])
        started.append(istiod)
        istiod.start()
        ips = {role: allocate_ip() for role in ("gateway", "wide", "narrow")}
        envoys: dict[str, EnvoyProcess] = {}
        for role, ip in ips.items():
            if role == "gateway":
                opts = gateway_options(istiod, "istio-ingressgateway", ip, "sotw")
            else:
                opts = sidecar_options(istiod, role, ip, {"app": role}, "delta")
            envoy = EnvoyProcess.for_proxy(opts, workdir / f"envoy-{role}", name=role)
            started.append(envoy)
            envoys[role] = envoy.start()
        for envoy in envoys.values():
            envoy.wait_live(15.0)
        yield LoopMesh(
            istiod,
            envoys["gateway"],
            ips["gateway"],
            envoys["wide"],
            ips["wide"],
            envoys["narrow"],
            ips["narrow"],
            alpha,
            beta,
            echo,
            local,
            near,
            far,
        )
    finally:
        for item in reversed(started):
            item.stop()
