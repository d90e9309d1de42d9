"""The whole mesh: istiod, the apps, the gateway and the sidecars, started in order and
stopped together."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from pathlib import Path

from .addresses import can_bind
from .apps import Apps
from .base import GATEWAY_HOST, NAMESPACE, SERVICE_PORT, DemoError, say
from .istiod import Istiod
from .procs import wait_for
from .proxy import Envoy
from .topology import load_topology
from .web import Reply, http_get


class Mesh:
    def __init__(self, config_dir: Path, workdir: Path, block: int) -> None:
        self.config_dir = config_dir
        self.workdir = workdir
        self.topology = load_topology(config_dir, block)
        self.istiod = Istiod(config_dir, workdir)
        self.apps = Apps(self.topology.workloads)
        t = self.topology
        self.gateway = Envoy(
            "istio-ingressgateway",
            "istio-system",
            "router",
            t.gateway_ip,
            {"istio": "ingressgateway", "app": "istio-ingressgateway"},
            [(t.gateway_ip, t.gateway_port)],
            workdir,
            service_account="istio-ingressgateway-service-account",
        )
        self.sidecars = [
            Envoy(
                w.name,
                NAMESPACE,
                "sidecar",
                w.ip,
                {"app": w.app, "version": w.version},
                [(w.ip, SERVICE_PORT)],
                workdir,
                service_account=f"bookinfo-{w.app}",
            )
            for w in t.workloads
            if w.calls
        ]

    @property
    def envoys(self) -> list[Envoy]:
        return [self.gateway, *self.sidecars]

    def preflight(self) -> None:
        busy = [f"{ip}:{port}" for ip, port in self._all_binds() if not can_bind(ip, port)]
        if busy:
            raise DemoError(
                f"address(es) already in use: {', '.join(busy)} "
                "(is another demo still running? stop it first)"
            )

    def _all_binds(self) -> list[tuple[str, int]]:
        out = [(w.ip, w.port) for w in self.topology.workloads]
        for envoy in self.envoys:
            out.extend(envoy.listen)
        return out

    def start(self, timeout: float) -> float:
        started = time.monotonic()
        deadline = started + timeout

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        self.preflight()
        say(f"starting istiod on {self.config_dir} ...")
        self.istiod.start()
        self.apps.start()
        self.istiod.wait_ready(min(30.0, left()))
        say(
            f"istiod ready at http://{self.istiod.http} (secure xDS {self.istiod.secure_grpc}); "
            f"starting {len(self.envoys)} Envoys ..."
        )
        for envoy in self.envoys:
            envoy.bootstrap(self.istiod.secure_grpc, self.istiod.http)
        for i, envoy in enumerate(self.envoys):
            envoy.start(base_id=os.getpid() % 50000 * 10 + i)
        for envoy in self.envoys:
            wait_for(
                f"envoy {envoy.proxy_id} to be LIVE",
                envoy.is_live,
                min(30.0, left()),
                functools.partial(self._logs_of, envoy),
            )
        say("Envoys LIVE; waiting for a request through the gateway to reach every service ...")
        wait_for(
            "GET /productpage through the gateway to answer 200 with details, reviews and ratings",
            self._healthy,
            left(),
            self.all_logs,
            interval=0.2,
        )
        return time.monotonic() - started

    def _healthy(self) -> bool:
        reply = self.productpage()
        if reply.status != 200:
            raise AssertionError(f"gateway answered {reply.status}: {reply.body[:200]!r}")
        body = reply.json()
        if "ERROR" in body.get("trace", "ERROR"):
            raise AssertionError(f"not every hop answered: {body.get('trace')}")
        return True

    def productpage(
        self,
        host: str = GATEWAY_HOST,
        path: str = "/productpage",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        t = self.topology
        return http_get(t.gateway_ip, t.gateway_port, path, {"Host": host, **(headers or {})})

    def _logs_of(self, envoy: Envoy) -> str:
        return f"{envoy.logs()}\n{self.istiod.logs()}"

    def all_logs(self) -> str:
        parts = [envoy.logs() for envoy in self.envoys]
        parts.append(self.istiod.logs())
        return "\n".join(parts)

    def stop(self) -> None:
        procs = [e.proc for e in self.envoys if e.proc is not None]
        if self.istiod.proc is not None:
            procs.append(self.istiod.proc)
        for proc in procs:  # SIGTERM everyone first, so they all stop in parallel
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for envoy in self.envoys:
            envoy.stop()
        self.istiod.stop()
        self.apps.stop()
