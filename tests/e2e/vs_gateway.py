"""Shared gateway set-up for tests/e2e/test_traffic_vs.py: one istiod and one ingress gateway
Envoy (router, port 8080, hosts "*/*") per module, STATIC ServiceEntries for backends on their
own 127.0.x.y and VirtualServices bound to the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import GATEWAY_PORT, gateway_options, join_docs, write_config
from .net import allocate_ip, wait_until
from .traffic import Response, request

GATEWAY = """
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: vs-gateway, namespace: istio-system}
    spec:
      selector: {istio: ingressgateway}
      servers:
      - port: {number: 8080, name: http, protocol: HTTP}
        hosts: ["*/*"]
    """


def service_entry(backend: Backend, namespace: str = "default") -> str:
    """`<backend name>.<namespace>.svc.cluster.local:80` → the backend (STATIC)."""
    return f"""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: {backend.name}, namespace: {namespace}}}
        spec:
          hosts: [{backend.name}.{namespace}.svc.cluster.local]
          location: MESH_INTERNAL
          resolution: STATIC
          ports:
          - {{number: 80, name: http, protocol: HTTP}}
          endpoints:
          - address: {backend.ip}
            ports: {{http: {backend.port}}}
        """


def gateway_vs(name: str, host: str, http: str, namespace: str = "default") -> str:
    """A VirtualService for `host` bound to the shared gateway; `http` is its `http:` list."""
    body = "\n".join(f"          {line}" for line in http.strip("\n").splitlines())
    return f"""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          hosts: [{host}]
          gateways: [istio-system/vs-gateway]
          http:
{body}
        """


@dataclass
class Mesh:
    istiod: IstiodProcess
    gateway: EnvoyProcess
    ip: str
    backends: list[Backend] = field(default_factory=list)

    def backend(self, name: str, **kwargs: Any) -> Backend:
        backend = Backend(name, allocate_ip(), **kwargs).start()
        self.backends.append(backend)
        return backend

    def apply(self, filename: str, *docs: str) -> None:
        write_config(self.istiod.config_dir, filename, join_docs(*docs))

    def get(self, host: str, path: str = "/", method: str = "GET", **headers: str) -> Response:
        return request(self.ip, GATEWAY_PORT, method, path, host=host, headers=headers)

    def wait_route(self, host: str, path: str, backend: str, **headers: str) -> None:
        """Wait until the gateway routes `host` + `path` to `backend` (config pushed)."""
        wait_until(
            lambda: self.get(host, path, **headers).headers.get("x-backend") == backend,
            15.0,
            0.05,
            f"{host}{path} → {backend}",
        )


def start_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("vs")
    config = workdir / "config"
    config.mkdir()
    write_config(config, "gateway.yaml", GATEWAY)
    istiod = IstiodProcess(workdir / "istiod", config_dirs=[config]).start()
    gateway: EnvoyProcess | None = None
    out: Mesh | None = None
    try:
        ip = allocate_ip()
        opts = gateway_options(istiod, "istio-ingressgateway", ip, "delta")
        gateway = EnvoyProcess.for_proxy(opts, workdir / "gateway", name="gateway").start()
        gateway.wait_live(10.0)
        out = Mesh(istiod, gateway, ip)
        yield out
    finally:
        for backend in out.backends if out is not None else ():
            backend.stop()
        if gateway is not None:
            gateway.stop()
        istiod.stop()
