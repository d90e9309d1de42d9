"""Istiod: the composition root. Builds the store, sources, environment, discovery server and
HTTP servers; starts them in order and stops them in reverse.

Start: load config → first PushContext → gRPC (ADS) → HTTP (/ready, /debug) → monitoring →
debounce/push workers and file watcher → ready. Stop: refuse new work, close ADS streams
(Envoy keeps its last config and reconnects), stop HTTP, cancel background tasks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from typing import Any

import grpc
from aiohttp import web

from pilot.bootstrap.environment import Environment
from pilot.bootstrap.options import Address, Options
from pilot.config.file import FileConfigSource
from pilot.config.store import ConfigStore
from pilot.features import Features
from pilot.xds.debounce import DebounceSettings
from pilot.xds.debug import DebugApp
from pilot.xds.monitoring import metrics_app
from pilot.xds.server import DiscoveryServer, XdsSettings
from pkg.aio import cancel_and_wait, guarded_task
from pkg.config.mesh import MeshConfig, load_mesh_config

log = logging.getLogger(__name__)


def announce(name: str, address: str) -> None:
    """The contract's start-up line: `listening <name> <host:port>` on stderr."""
    print(f"listening {name} {address}", file=sys.stderr, flush=True)


class Istiod:
    def __init__(self, options: Options, features: Features) -> None:
        self.options = options
        self.features = features
        mesh = load_mesh_config(options.mesh_config) if options.mesh_config else MeshConfig()
        if options.trust_domain:
            mesh = dataclasses.replace(mesh, trust_domain=options.trust_domain)
        self.mesh = mesh
        self.store = ConfigStore()
        self.source = FileConfigSource(options.config_dirs, self.store)
        self.environment: Environment | None = None
        self.discovery: DiscoveryServer | None = None
        self._grpc: grpc.aio.Server | None = None
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = False
        self.bound: dict[str, str] = {}

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        opts = self.options
        await self.source.load()
        self.environment = Environment(self.store, self.mesh, opts.domain_suffix)
        settings = XdsSettings(
            debounce=DebounceSettings(
                self.features.debounce_after,
                self.features.debounce_max,
                self.features.enable_eds_debounce,
            ),
            push_throttle=self.features.effective_push_throttle,
        )
        self.discovery = DiscoveryServer(self.environment, settings)
        self.discovery.initialize()
        await self.discovery.start()
        self.environment.set_push_handler(self.discovery.config_update)

        self._grpc = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 4 * 1024 * 1024),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ]
        )
        self._grpc.add_generic_rpc_handlers((self.discovery.grpc_handler(),))
        port = self._grpc.add_insecure_port(str(opts.grpc_addr))
        if port == 0:
            raise OSError(f"cannot listen on --grpc-addr {opts.grpc_addr}")
        await self._grpc.start()
        self._announce("grpc", Address(opts.grpc_addr.host, port))

        debug = DebugApp(self.discovery, self.configz, self.problems, lambda: self._ready)
        http_app = debug.app()
        http_app.add_subapp("/metrics", metrics_app())
        await self._serve_http("http", http_app, opts.http_addr)
        if opts.monitoring_addr is not None:
            monitoring = debug.app()
            monitoring.add_subapp("/metrics", metrics_app())
            await self._serve_http("monitoring", monitoring, opts.monitoring_addr)

        self._tasks.append(guarded_task(self.source.watch(), name="config-watch"))
        self._ready = True
        log.info("istiod ready: %d objects, %d services", len(self.store),
                 len(self.environment.registry.services))  # fmt: skip

    def _announce(self, name: str, address: Address) -> None:
        self.bound[name] = str(address)
        announce(name, str(address))

    async def _serve_http(self, name: str, app: web.Application, address: Address) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, address.host, address.port, reuse_address=True)
        await site.start()
        self._runners.append(runner)
        port = address.port
        server = site._server
        if isinstance(server, asyncio.base_events.Server) and server.sockets:
            port = server.sockets[0].getsockname()[1]
        self._announce(name, Address(address.host, port))

    async def stop(self) -> None:
        self._ready = False
        if self._grpc is not None:
            await self._grpc.stop(grace=1.0)
        if self.discovery is not None:
            await self.discovery.stop()
        for runner in reversed(self._runners):
            await runner.cleanup()
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()

    # ---- debug providers -------------------------------------------------------------------

    def configz(self) -> list[dict[str, Any]]:
        out = []
        for configs in self.store.by_kind().values():
            for config in configs:
                out.append(dict(config.raw))
        return out

    def problems(self) -> list[str]:
        return [str(p) for p in self.source.problems]
