"""Prometheus metrics with Istio's names, served at /metrics.

Metrics live in the process registry of `pkg.monitoring`, shared with the CA's citadel_* ones.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import Counter, Gauge

from pkg.monitoring import CONTENT_TYPE, REGISTRY, exposition

XDS_CLIENTS = Gauge(
    "pilot_xds", "Number of endpoints connected to this pilot using XDS.", ["version"],
    registry=REGISTRY,
)  # fmt: skip
XDS_PUSHES = Counter(
    "pilot_xds_pushes", "Pilot build and send errors for lds, rds, cds and eds.", ["type"],
    registry=REGISTRY,
)  # fmt: skip
XDS_REJECTS = Counter(
    "pilot_total_xds_rejects", "Total number of XDS responses from pilot rejected by proxy.",
    ["type"], registry=REGISTRY,
)  # fmt: skip


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE})


def metrics_app() -> web.Application:
    app = web.Application()
    app.router.add_get("", _metrics)
    app.router.add_get("/", _metrics)
    return app
