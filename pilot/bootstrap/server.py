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
import os
import sys
import time
from typing import Any

import grpc
from aiohttp import web

from pilot.bootstrap.environment import Environment
from pilot.bootstrap.jwks_resolver import HttpFetcher, JwksResolver, JwksSettings
from pilot.bootstrap.kube_security import KubeSecurity, KubeSecuritySettings
from pilot.bootstrap.mesh_security import RENEW_CHECK_INTERVAL, MeshSecurity, SecuritySettings
from pilot.bootstrap.options import Address, Options
from pilot.bootstrap.security_http import SecurityHttp, admin_refusal
from pilot.bootstrap.sts_http import StsHttp
from pilot.bootstrap.webhooks import WebhookServer
from pilot.config.file import FileConfigSource
from pilot.config.kube import KubeConfigSource
from pilot.config.last_good import with_status
from pilot.config.store import ConfigStore
from pilot.features import Features
from pilot.model.jwks import jwks_demand
from pilot.model.push_request import PushRequest, TriggerReason
from pilot.webhooks.ca_bundle import CaBundlePatcher
from pilot.xds.debounce import DebounceSettings
from pilot.xds.debug import DebugApp
from pilot.xds.generators import default_generators
from pilot.xds.generators.sds import credential_key
from pilot.xds.history import ProxyHistory
from pilot.xds.ledger import PushLedger
from pilot.xds.metrics_observer import XdsMetrics
from pilot.xds.monitoring import metrics_app, record_build_info
from pilot.xds.rejections import RejectionTracker
from pilot.xds.server import DiscoveryServer, XdsSettings
from pkg.aio import cancel_and_wait, guarded_task
from pkg.config.mesh import MeshConfig, load_mesh_config
from pkg.config.model import ConfigKey, Kind
from pkg.credentials import Identity
from pkg.errors import ConfigError
from pkg.inject.sidecar import InjectionSettings
from pkg.kube.client import KubeClient
from security.server.ca_service import ca_grpc_handler

log = logging.getLogger(__name__)


# Observed state, not configuration: left out of /debug/configz (as Istio's, which lists
# config only); a cluster has thousands of them.
OBSERVED_KINDS = frozenset({Kind.POD, Kind.NODE})
REDACTED = "[redacted]"


def redact_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret with every value hidden (keys kept: they tell which form it has), as
    config_dump redacts private keys; anything else unchanged."""
    if obj.get("kind") != "Secret":
        return obj
    out = dict(obj)
    for field in ("data", "stringData"):
        values = out.get(field)
        if isinstance(values, dict):
            out[field] = dict.fromkeys(values, REDACTED)
    return out


def announce(name: str, address: str) -> None:
    """The contract's start-up line: `listening <name> <host:port>` on stderr."""
    print(f"listening {name} {address}", file=sys.stderr, flush=True)


def _kube_client(options: Options) -> KubeClient:
    """A client from --kubeconfig, else (in a pod) from the in-cluster config."""
    try:
        if options.kubeconfig is not None:
            return KubeClient.from_kubeconfig(str(options.kubeconfig))
        return KubeClient.in_cluster()
    except Exception as e:  # missing file, no current context, bad YAML, no token...
        where = f"--kubeconfig {options.kubeconfig}" if options.kubeconfig else "in-cluster config"
        raise ConfigError(f"{where}: {e}") from e


class Istiod:
    def __init__(self, options: Options, features: Features) -> None:
        self.options = options
        self.features = features
        mesh = load_mesh_config(options.mesh_config) if options.mesh_config else MeshConfig()
        if options.trust_domain:
            mesh = dataclasses.replace(mesh, trust_domain=options.trust_domain)
        self.mesh = mesh
        self.store = ConfigStore()
        # Which change went into which push, and who took it (/debug/trace, `istioctl x trace`):
        # it sees every store event, from the first load on.
        self.ledger = PushLedger()
        self.store.add_handler(self.ledger.config_events)
        # --kubeconfig: Istio objects from the API server (Kubernetes mode); else files.
        self.source: FileConfigSource | KubeConfigSource
        self.kube_security: KubeSecurity | None = None
        if options.kubernetes:
            kube = _kube_client(options)
            # Lease, istio-ca-secret, istio-ca-root-cert ConfigMaps, TokenReview.
            security_kube = _kube_client(options)
            self.source = KubeConfigSource(kube, self.store, namespaces=options.watched_namespaces)
            self.kube_security = KubeSecurity(
                security_kube,
                self.store,
                KubeSecuritySettings.from_env(features.leader_election_lease_duration),
            )
        else:
            self.source = FileConfigSource(options.config_dirs, self.store)
        self.environment: Environment | None = None
        self.discovery: DiscoveryServer | None = None
        self.security: MeshSecurity | None = None
        self.jwks = JwksResolver(
            HttpFetcher.from_features(features),
            JwksSettings.from_features(features),
            on_change=self._on_jwks_change,
        )
        self._grpc_servers: list[grpc.aio.Server] = []
        self._runners: list[web.AppRunner] = []
        self._webhooks: WebhookServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = False
        self.bound: dict[str, str] = {}

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        opts = self.options
        kube = isinstance(self.source, KubeConfigSource)
        if isinstance(self.source, FileConfigSource):
            await self.source.load()
        self.environment = Environment(
            self.store,
            self.mesh,
            opts.domain_suffix,
            require_pods=kube,
            send_unhealthy_endpoints=self.features.send_unhealthy_endpoints,
        )
        if isinstance(self.source, KubeConfigSource):
            self.source.start()  # served (and /ready) once every kind's initial list is in
        # RequestAuthentication keys: fetched before the first push, then kept fresh.
        self.environment.jwks = lambda: self.jwks.snapshot
        self.jwks.follow(self.store)
        await self.jwks.prime(jwks_demand(self.store.list(Kind.REQUEST_AUTHENTICATION)))
        settings = XdsSettings(
            debounce=DebounceSettings(
                self.features.debounce_after,
                self.features.debounce_max,
                self.features.enable_eds_debounce,
            ),
            push_throttle=self.features.effective_push_throttle,
            send_timeout=self.features.xds_send_timeout,
            verify_cache=self.features.xds_cache_verify,
        )
        # Root key generation and state files: off the event loop.
        if self.kube_security is not None:  # the root from istio-ca-secret (Lease-elected)
            security = await self.kube_security.create_security(self._security_settings())
        else:
            security = await asyncio.to_thread(MeshSecurity.create, self._security_settings())
        self.security = security
        self.discovery = DiscoveryServer(
            self.environment, settings, default_generators(security.credentials)
        )
        discovery_server = self.discovery
        self.environment.connected_proxies = lambda: [
            c.proxy for c in discovery_server.connections()
        ]
        if not kube:
            self.discovery.initialize()
            self.ledger.serving()
        self.discovery.events.subscribe(self.ledger)
        # What each proxy was sent, over time (/debug/history, `istioctl proxy-config --at`).
        self.history: ProxyHistory | None = None
        if self.features.history_max_bytes > 0:
            self.history = ProxyHistory(self.features.history_max_bytes)
            self.discovery.events.subscribe(self.history)
        # Istio's xDS metrics from what the streams report (pilot/xds/metrics_observer.py).
        self.discovery.events.subscribe(XdsMetrics())
        record_build_info()
        # NACKs attributed to an object revert it to its last good version (last_good.py).
        discovery, environment = self.discovery, self.environment
        self.discovery.events.subscribe(
            RejectionTracker(
                lambda: discovery.push_context,
                environment.reject,
                self.features.revert_rejected_config,
            )
        )
        await self.discovery.start()
        if not kube:
            self.environment.set_push_handler(self.discovery.config_update)
        security.credentials.subscribe(self._on_credentials)

        # Plaintext ADS: development only, unauthenticated (no identity, no keys, no mTLS).
        plain = self._new_grpc_server()
        plain.add_generic_rpc_handlers((self.discovery.grpc_handler(),))
        port = plain.add_insecure_port(str(opts.grpc_addr))
        if port == 0:
            raise OSError(f"cannot listen on --grpc-addr {opts.grpc_addr}")
        await plain.start()
        self._announce("grpc", Address(opts.grpc_addr.host, port))
        if opts.secure_grpc_addr is not None:
            await self._serve_secure("secure-grpc", opts.secure_grpc_addr, client_certs=False)
        if opts.mtls_grpc_addr is not None:
            await self._serve_secure("mtls-grpc", opts.mtls_grpc_addr, client_certs=True)

        def authorize(request: web.Request) -> tuple[int, str] | None:
            refusal = admin_refusal(security, request)
            return None if refusal is None else (refusal.status, refusal.reason)

        debug = DebugApp(
            self.discovery,
            self.configz,
            self.problems,
            lambda: self._ready,
            ledger=self.ledger,
            authorize=authorize,
            history=self.history,
            config_sources=self.config_sources,
        )
        http_app = debug.app()
        SecurityHttp(security).add_routes(http_app)
        # STS for injected sidecars: also on the monitoring port, which the Service exposes.
        StsHttp(security).add_routes(http_app)
        http_app.add_subapp("/metrics", metrics_app())
        await self._serve_http("http", http_app, opts.http_addr)
        if opts.monitoring_addr is not None:
            monitoring = debug.app()
            StsHttp(security).add_routes(monitoring)
            monitoring.add_subapp("/metrics", metrics_app())
            await self._serve_http("monitoring", monitoring, opts.monitoring_addr)
        if opts.webhook_addr is not None:
            await self._serve_webhooks(security, opts.webhook_addr)

        if isinstance(self.source, FileConfigSource):
            self._tasks.append(guarded_task(self.source.watch(), name="config-watch"))
        self._tasks.append(
            guarded_task(security.credentials.run(RENEW_CHECK_INTERVAL), name="ca-renewals")
        )
        self._tasks.append(
            guarded_task(security.renew_serving_certificate(), name="ca-serving-cert")
        )
        if kube:
            self._tasks.append(guarded_task(self._serve_when_synced(), name="config-synced"))
        else:
            self._now_ready()

    async def _serve_when_synced(self) -> None:
        """Kubernetes mode: the first snapshot, pushes and /ready once the caches are synced
        (until then ADS streams are refused with UNAVAILABLE and /ready answers 503)."""
        assert isinstance(self.source, KubeConfigSource)
        assert self.discovery is not None and self.environment is not None
        await self.source.synced.wait()
        await self.jwks.prime(jwks_demand(self.store.list(Kind.REQUEST_AUTHENTICATION)))
        self.discovery.initialize()
        self.ledger.serving()
        self.environment.set_push_handler(self.discovery.config_update)
        self._now_ready()

    def _now_ready(self) -> None:
        assert self.environment is not None
        self._ready = True
        log.info("istiod ready: %d objects, %d services", len(self.store),
                 len(self.environment.registry.services))  # fmt: skip

    def _security_settings(self) -> SecuritySettings:
        custom = os.environ.get("ISTIOD_CUSTOM_HOST", "")
        return SecuritySettings(
            state_dir=self.options.state_dir,
            trust_domain=self.mesh.trust_domain,
            trust_domain_aliases=tuple(self.mesh.trust_domain_aliases),
            domain_suffix=self.options.domain_suffix,
            root_namespace=self.mesh.root_namespace,
            features=self.features,
            custom_hosts=tuple(h for h in custom.split(",") if h.strip()),
        )

    def _new_grpc_server(self) -> grpc.aio.Server:
        options: list[tuple[str, int]] = [
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]
        if self.options.max_server_connection_age > 0:
            # Past age + grace the connection is closed even with a stalled write in it.
            options += [
                ("grpc.max_connection_age_ms", int(self.options.max_server_connection_age * 1e3)),
                (
                    "grpc.max_connection_age_grace_ms",
                    int(self.options.max_server_connection_age_grace * 1e3),
                ),
            ]
        server = grpc.aio.server(options=options)
        self._grpc_servers.append(server)
        return server

    async def _serve_secure(self, name: str, address: Address, client_certs: bool) -> None:
        """ADS (authenticated) and the CSR API over TLS with istiod's CA-issued certificate.
        `client_certs`: the port requires a client certificate from the mesh CA (gRPC Python
        cannot ask for an optional one, so certificate-authenticated callers use this port)."""
        assert self.discovery is not None and self.security is not None
        security = self.security
        security.serve_on(address.host)
        server = self._new_grpc_server()
        server.add_generic_rpc_handlers(
            (
                self.discovery.grpc_handler(security.authenticate),
                ca_grpc_handler(security.ca, security.authenticators),
            )
        )
        port = server.add_secure_port(str(address), security.server_credentials(client_certs))
        if port == 0:
            raise OSError(f"cannot listen on --{name}-addr {address}")
        await server.start()
        self._announce(name, Address(address.host, port))

    async def _serve_webhooks(self, security: MeshSecurity, address: Address) -> None:
        """/validate and /inject over HTTPS (pilot/bootstrap/webhooks.py); in Kubernetes mode
        the webhook configurations' caBundle follows the mesh root."""
        webhooks = WebhookServer(security, InjectionSettings())
        port = await webhooks.start(address.host, address.port)
        self._webhooks = webhooks
        self._tasks.append(guarded_task(webhooks.follow_certificate(), name="webhook-cert"))
        self._announce("webhook", Address(address.host, port))
        if isinstance(self.source, KubeConfigSource):
            patcher = CaBundlePatcher(self.source.kube, security.ca.trust_bundle)

            def on_credentials(identity: Identity | None) -> None:
                if identity is None:  # the trust bundle changed
                    patcher.changed()

            security.credentials.subscribe(on_credentials)
            self._tasks.append(guarded_task(patcher.run(), name="webhook-ca-bundle"))

    def _on_jwks_change(self, keys: frozenset[ConfigKey]) -> None:
        """New public keys for these RequestAuthentications: push their listeners."""
        if self.discovery is not None and keys:
            self.discovery.config_update(
                PushRequest.of(keys, TriggerReason.CONFIG, start=time.monotonic())
            )

    def _on_credentials(self, identity: Identity | None) -> None:
        """A renewed workload certificate (or trust bundle): push SDS to whoever uses it."""
        if self.discovery is None:
            return
        key = credential_key(identity)
        self.discovery.config_update(
            PushRequest.of((key,), TriggerReason.SECRET, start=time.monotonic())
        )

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
        # Refuse new RPCs, then end every ADS stream at once with UNAVAILABLE "istiod is
        # shutting down" (not after the grace period, not with a reset); the grace is only for
        # what is left (streams that never sent a request).
        stopping = [asyncio.ensure_future(s.stop(grace=1.0)) for s in self._grpc_servers]
        await asyncio.sleep(0)
        if self.discovery is not None:
            await self.discovery.stop()
        await asyncio.gather(*stopping)
        for runner in reversed(self._runners):
            await runner.cleanup()
        if self._webhooks is not None:
            await self._webhooks.stop()
        await cancel_and_wait(*self._tasks)
        if isinstance(self.source, KubeConfigSource):
            await self.source.stop()
            self.source.kube.close()
        if self.kube_security is not None:
            await self.kube_security.stop()
            self.kube_security.kube.close()
        await self.jwks.close()
        self._tasks.clear()

    # ---- debug providers -------------------------------------------------------------------

    def configz(self) -> list[dict[str, Any]]:
        # A proxy-rejected object carries its rejection in `status` (pilot/config/last_good.py).
        last_good = self.environment.last_good if self.environment is not None else None
        out = []
        for kind, configs in self.store.by_kind().items():
            if kind in OBSERVED_KINDS:
                continue
            for config in configs:
                status = last_good.status(config.key) if last_good is not None else None
                out.append(redact_secret(with_status(config.raw, status)))
        return out

    def config_sources(self) -> dict[str, Any]:
        if isinstance(self.source, KubeConfigSource):
            return {"mode": "kubernetes", "apiServer": self.source.kube.host}
        return {"mode": "files", "configDirs": [str(d.resolve()) for d in self.options.config_dirs]}

    def problems(self) -> list[str]:
        return [str(p) for p in self.source.problems] + self.jwks.problems()
