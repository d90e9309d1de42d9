"""istiod's HTTP endpoints: /ready, /version and the /debug/* handlers (aiohttp).

Shapes follow istiod (istio-facts.md §1.2): syncz is a list of SyncStatus objects with nonces,
adsz lists clients and their watches, config_dump is an Envoy ConfigDump of what istiod would
send, configz lists every object as a Kubernetes object, registryz every service. Debug handlers
answer loopback callers; others only when `authorize` (istiod passes its admin-credential
check) lets them, else its status (401 without a credential, 403 without admin rights), as
Istio's allowAuthenticatedOrLocalhost.
"""

from __future__ import annotations

import ipaddress
import json
import platform
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from pilot.model.authorization import ApplicablePolicies
from pilot.model.proxy_status import proxy_status
from pilot.model.proxy_view import proxy_view
from pilot.model.push_context import PushContext
from pilot.plan.compute import PlanTarget
from pilot.plan.planner import MAX_CHANGE_BYTES, plan_json
from pilot.simulate.request import RequestError, parse_request
from pilot.xds.config_dump import build_config_dump, to_json
from pilot.xds.connection import Connection
from pilot.xds.debug_xds import istiod_id, type_sync
from pilot.xds.explain import explain_connection
from pilot.xds.history import ProxyHistory
from pilot.xds.history_query import history_query
from pilot.xds.ledger import PushLedger
from pilot.xds.server import DiscoveryServer
from pilot.xds.trace import trace_query
from pkg.version import VERSION
from pkg.xds import typeurls

_SHORT_FIELDS = {
    typeurls.CLUSTER: "cluster",
    typeurls.LISTENER: "listener",
    typeurls.ROUTE: "route",
    typeurls.ENDPOINT: "endpoint",
    typeurls.EXTENSION_CONFIG: "extensionconfig",
}


def _json(data: Any, request: web.Request, status: int = 200) -> web.Response:
    indent = 2 if "pretty" in request.query else None
    return web.Response(
        status=status,
        text=json.dumps(data, indent=indent, sort_keys=False, default=str),
        content_type="application/json",
    )


# Why a non-loopback caller may not see debug endpoints: (HTTP status, reason), or None.
Authorize = Callable[[web.Request], tuple[int, str] | None]


def _loopback_only(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    authorize: Authorize | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def guarded(request: web.Request) -> web.StreamResponse:
        peer = request.remote or ""
        try:
            allowed = ipaddress.ip_address(peer).is_loopback
        except ValueError:
            allowed = peer == ""
        if not allowed:
            if authorize is None:
                return web.Response(status=401, text="debug endpoints are for loopback callers\n")
            refused = authorize(request)
            if refused is not None:
                status, reason = refused
                return web.Response(status=status, text=f"debug endpoints: {reason}\n")
        return await handler(request)

    return guarded


class DebugApp:
    """Builds the aiohttp application; `extra` providers fill /debug/configz problems etc."""

    def __init__(
        self,
        server: DiscoveryServer,
        configz: Callable[[], list[dict[str, Any]]],
        problems: Callable[[], list[str]],
        ready: Callable[[], bool],
        ledger: PushLedger | None = None,
        authorize: Authorize | None = None,
        history: ProxyHistory | None = None,
        config_sources: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.server = server
        # Where this istiod reads its config from (`istioctl apply` writes there).
        self._config_sources = config_sources
        self.history = history  # what each proxy was sent, over time (history.py)
        self._authorize = authorize
        self.ledger = ledger  # the push ledger behind /debug/trace (ledger.py, trace.py)
        self._configz = configz
        self._problems = problems
        self._ready = ready
        self.started = time.time()

    def app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_get("/ready", self.ready)
        r.add_get("/version", self.version)
        debug = {
            "/debug": self.index,
            "/debug/syncz": self.syncz,
            "/debug/adsz": self.adsz,
            "/debug/config_dump": self.config_dump,
            "/debug/configz": self.configz,
            "/debug/registryz": self.registryz,
            "/debug/push_status": self.push_status,
            "/debug/connections": self.connections,
            "/debug/authorizationz": self.authorizationz,
            "/debug/trace": self.trace,
            "/debug/history": self.history_handler,
            "/debug/configsources": self.configsources,
        }
        for path, handler in debug.items():
            r.add_get(path, _loopback_only(handler, self._authorize))
        # POST: a change file in, its plan out (nothing is applied; pilot/plan/).
        r.add_post("/debug/plan", _loopback_only(self.plan, self._authorize))
        # POST: a request in (JSON), its replay through one proxy's config out (explain.py).
        r.add_post("/debug/explain", _loopback_only(self.explain, self._authorize))
        return app

    async def ready(self, request: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    async def version(self, request: web.Request) -> web.Response:
        return _json(
            {
                "version": VERSION,
                "revision": "default",
                "python_version": platform.python_version(),
                "status": "Clean",
                "tag": VERSION,
            },
            request,
        )

    async def configsources(self, request: web.Request) -> web.Response:
        """`{"mode": "files", "configDirs": [...]}` or `{"mode": "kubernetes", ...}`."""
        info = self._config_sources() if self._config_sources is not None else {}
        return _json(info, request)

    async def index(self, request: web.Request) -> web.Response:
        paths = sorted(str(res.canonical) for res in request.app.router.resources())
        return _json([p for p in paths if p.startswith("/debug/")], request)

    def _push(self) -> PushContext | None:
        return self.server.push_context if self.server.ready else None

    async def syncz(self, request: web.Request) -> web.Response:
        namespace = request.query.get("namespace")
        out = []
        for conn in self.server.connections():
            if namespace and conn.proxy.namespace != namespace:
                continue
            out.append(sync_status(conn))
        return _json(out, request)

    async def adsz(self, request: web.Request) -> web.Response:
        if request.query.get("push") == "true":
            count = self.server.push_all()
            return web.Response(text=f"Pushed to {count} servers\n")
        proxy_id = request.query.get("proxyID", "")
        clients = []
        for conn in self.server.connections():
            if proxy_id and proxy_id not in conn.id:
                continue
            clients.append(
                {
                    "connectionId": conn.id,
                    "connectedAt": _rfc3339(conn.stats.connected_at),
                    "address": conn.peer,
                    "labels": dict(conn.proxy.labels),
                    "metadata": dict(conn.proxy.metadata),
                    "locality": conn.proxy.locality,
                    "delta": conn.delta,
                    "watches": {t: sorted(w.names) for t, w in conn.watches.items()},
                }
            )
        return _json({"totalClients": len(clients), "clients": clients}, request)

    async def connections(self, request: web.Request) -> web.Response:
        clients = [
            {
                "connectionId": c.id,
                "connectedAt": _rfc3339(c.stats.connected_at),
                "address": c.peer,
            }
            for c in self.server.connections()
        ]
        return _json({"totalClients": len(clients), "clients": clients}, request)

    async def config_dump(self, request: web.Request) -> web.Response:
        proxy_id = request.query.get("proxyID")
        if not proxy_id:
            return web.Response(status=400, text="You must provide a proxyID in the query string")
        conn = _find(self.server.connections(), proxy_id)
        push = self._push()
        if conn is None or push is None:
            return web.Response(
                status=404,
                text="Proxy not connected to this Pilot instance. "
                "It may be connected to another instance.",
            )
        types_param = request.query.get("types", "")
        types = [t for t in types_param.split(",") if t] or None
        dump = build_config_dump(conn, push, types, include_eds="include_eds" in request.query)
        return _json(to_json(dump), request)

    async def configz(self, request: web.Request) -> web.Response:
        return _json(self._configz(), request)

    async def registryz(self, request: web.Request) -> web.Response:
        push = self._push()
        services = push.services.services if push is not None else ()
        out = []
        for svc in services:
            data = asdict(svc)
            data["ports"] = [
                {"name": p.name, "port": p.port, "protocol": str(p.protocol)} for p in svc.ports
            ]
            data["source"] = str(svc.source) if svc.source else None
            data["export_to"] = sorted(svc.export_to)
            out.append(data)
        return _json(out, request)

    async def push_status(self, request: web.Request) -> web.Response:
        push = self._push()
        return _json(
            {
                "version": push.version if push is not None else "",
                "problems": self._problems() + (list(push.errors) if push else []),
                "ProxyStatus": proxy_status(push).as_json() if push is not None else {},
            },
            request,
        )

    async def trace(self, request: web.Request) -> web.Response:
        """`?kind=&namespace=&name=`: one object's pushes and which proxies took them."""
        if self.ledger is None:
            return web.Response(status=404, text="the push ledger is not enabled\n")
        status, body = trace_query(self.ledger, request.query)
        response = _json(body, request)
        response.set_status(status)
        return response

    async def plan(self, request: web.Request) -> web.Response:
        """POST a change file (YAML): what each class of connected proxies would receive
        if it were applied (`?resources=true`: also their resources after it)."""
        push = self._push()
        if push is None:
            return web.Response(status=503, text="istiod has no configuration yet\n")
        data = await request.content.read(MAX_CHANGE_BYTES + 1)
        if len(data) > MAX_CHANGE_BYTES:
            return web.Response(status=413, text="the change file is too large\n")
        source = self.server.source
        targets = [PlanTarget(c.proxy, c.generators) for c in self.server.connections()]
        body = plan_json(
            data,
            targets,
            push,
            source.push_inputs(),
            require_pods=bool(getattr(source, "require_pods", False)),
            send_unhealthy=bool(getattr(source, "send_unhealthy_endpoints", False)),
            resources=request.query.get("resources") == "true",
        )
        return _json(body, request)

    async def history_handler(self, request: web.Request) -> web.Response:
        """What proxies were sent, over time; `?proxyID=&dump&version=|time=|ago=` answers a
        config dump of then (history_query.py)."""
        if self.history is None:
            return web.Response(status=404, text="the proxy history is not enabled\n")
        status, body, headers = history_query(self.history, request.query, time.time())
        response = _json(body, request)
        response.set_status(status)
        response.headers.update(headers)
        return response

    async def explain(self, request: web.Request) -> web.Response:
        """POST `?proxyID=` with the request as JSON (pilot/simulate/request.py): the steps
        it takes through that proxy's generated config and the predicted outcome."""
        proxy_id = request.query.get("proxyID", "")
        if not proxy_id:
            return _json({"error": "proxyID is required"}, request, 400)
        try:
            body = json.loads(await request.content.read(1 << 16) or b"{}")
            explain_request = parse_request(body)
        except (ValueError, RequestError) as err:
            return _json({"error": f"request: {err}"}, request, 400)
        conn = _find(self.server.connections(), proxy_id)
        push = self._push()
        if conn is None or push is None:
            error = f"proxy {proxy_id} is not connected to this istiod"
            return _json({"error": error}, request, 404)
        return _json(explain_connection(conn, push, explain_request).as_json(), request)

    async def authorizationz(self, request: web.Request) -> web.Response:
        """istiod's dump of the AuthorizationPolicies by namespace; with `?proxyID=` the ones
        that apply to that proxy, grouped by action (as Istio's AuthorizationPoliciesResult)."""
        push = self._push()
        proxy_id = request.query.get("proxyID", "")
        if not proxy_id:
            index = push.authorization if push is not None else None
            by_namespace = index.by_namespace if index is not None else {}
            return _json(
                {
                    "authorization_policies": {
                        "namespace_to_policies": {
                            ns: [_policy_json(c) for c in configs]
                            for ns, configs in sorted(by_namespace.items())
                        },
                        "root_namespace": index.root_namespace if index is not None else "",
                    }
                },
                request,
            )
        conn = _find(self.server.connections(), proxy_id)
        if conn is None or push is None:
            return web.Response(
                status=404,
                text="Proxy not connected to this Pilot instance. "
                "It may be connected to another instance.\n",
            )
        view = proxy_view(conn.proxy, push)
        policies = push.authorization.policies_for(view.namespace, view.labels)
        return _json({"proxy": conn.proxy.id, **_applicable_json(policies)}, request)


def _policy_json(config: Any) -> dict[str, Any]:
    return {
        "name": config.name,
        "namespace": config.namespace,
        "annotations": dict(config.meta.annotations),
        "spec": (config.raw or {}).get("spec") or {},
    }


def _applicable_json(policies: ApplicablePolicies) -> dict[str, Any]:
    return {
        action: [_policy_json(c) for c in getattr(policies, action)]
        for action in ("custom", "deny", "allow", "audit")
    }


def _find(connections: list[Connection], proxy_id: str) -> Connection | None:
    for conn in connections:
        if proxy_id in conn.id or proxy_id == conn.proxy.id or proxy_id == conn.proxy.name:
            return conn
    return None


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def sync_status(conn: Connection) -> dict[str, Any]:
    """Istio's SyncStatus: sent/acked nonces per type and a per-type-URL resources map; each
    resource also carries its CSDS `status` (SYNCED, NOT_SENT, STALE, ERROR: Istio's rule,
    see pkg/xds/sync_status.py) and when it was last sent (or proven in sync), and the entry
    names the istiod serving it (`istiod`)."""
    out: dict[str, Any] = {
        "cluster_id": conn.proxy.cluster_id,
        "proxy": conn.proxy.id.split("~")[2] if conn.proxy.id.count("~") == 3 else conn.proxy.id,
        "proxy_type": conn.proxy.type.value,
        "proxy_version": conn.proxy.istio_version,
        "istio_version": VERSION,
        "istiod": istiod_id(),
    }
    resources: dict[str, Any] = {}
    for type_url, state in conn.watches.items():
        short = _SHORT_FIELDS.get(type_url)
        if short:
            out[f"{short}_sent"] = state.nonce_sent
            out[f"{short}_acked"] = state.nonce_acked
        resources[type_url] = {
            "sent": state.nonce_sent,
            "acked": state.nonce_acked,
            "sentTime": _rfc3339(state.last_sent_at) if state.last_sent_at else "",
            "lastError": state.nack.message if state.nack is not None else "",
        }
        sync = type_sync(state)
        updated = _rfc3339(sync.last_updated) if sync.last_updated else ""
        resources[type_url].update(status=sync.status.value, lastUpdated=updated)
    out["resources"] = resources
    return out
