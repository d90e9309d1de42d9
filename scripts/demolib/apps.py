"""The Bookinfo apps, as small stdlib HTTP servers in this process; the ones that call other
services do so through their own sidecar (GET <own ip>:9080 with `Host: <service>`)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .base import SERVICE_PORT, DemoError
from .topology import Workload
from .web import http_get

PROPAGATE = ("end-user", "x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled")

BOOK = {
    "id": 0,
    "title": "The Comedy of Errors",
    "author": "William Shakespeare",
    "year": 1595,
    "type": "paperback",
    "pages": 200,
    "language": "English",
}
REVIEWS = [
    {"reviewer": "Reviewer1", "text": "An extremely entertaining play by Shakespeare."},
    {"reviewer": "Reviewer2", "text": "Absolutely fun and entertaining."},
]
RATINGS = {"Reviewer1": 5, "Reviewer2": 4}
STARS = {"v2": "black", "v3": "red"}


class AppServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    workload: Workload


class AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    timeout = 30
    server: AppServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def call(self, service: str) -> dict[str, Any]:
        """GET http://<own ip>:9080/ with `Host: <service>`: the sidecar routes it."""
        me = self.server.workload
        headers = {"Host": service}
        for name in PROPAGATE:
            if value := self.headers.get(name):
                headers[name] = value
        try:
            reply = http_get(me.ip, SERVICE_PORT, f"/{service}", headers, timeout=5.0)
        except OSError as err:
            return {"error": f"{service} unreachable through the sidecar: {err}"}
        if reply.status != 200:
            text = reply.body[:200].decode("utf-8", "replace")
            return {"error": f"{service} answered {reply.status}: {text}"}
        try:
            answer: dict[str, Any] = reply.json()
        except ValueError:
            return {"error": f"{service} answered no JSON"}
        return answer

    def do_GET(self) -> None:
        me = self.server.workload
        # "trace" (who answered, hop by hop) comes first and is the only place workload
        # names appear, so `grep -o 'reviews-v[0-9]'` finds exactly one per request.
        body: dict[str, Any] = {
            "trace": me.name,
            "service": me.app,
            "version": me.version,
            "address": f"{me.ip}:{me.port}",
        }
        upstream = {svc: self.call(svc) for svc in me.calls}
        traces = {svc: _trace(answer) for svc, answer in upstream.items()}
        for answer in upstream.values():
            answer.pop("trace", None)
        trace = f"{me.name}"
        if me.app == "productpage":
            body["path"] = self.path
            body["end-user"] = self.headers.get("end-user", "")
            body["details"] = upstream["details"]
            body["reviews"] = upstream["reviews"]
            parts = [traces["details"], traces["reviews"]]
            trace = f"{me.name} -> ({', '.join(parts)})"
        elif me.app == "details":
            body["book"] = BOOK
        elif me.app == "reviews":
            reviews: list[dict[str, Any]] = [dict(r) for r in REVIEWS]
            if "ratings" in upstream:
                ratings = upstream["ratings"]
                for review in reviews:
                    if "error" in ratings:
                        review["rating"] = {"error": "ratings unavailable"}
                    else:
                        stars = ratings.get("ratings", {}).get(review["reviewer"], 0)
                        review["rating"] = {"stars": stars, "color": STARS.get(me.version)}
                trace = f"{me.name} -> {traces['ratings']}"
            body["reviews"] = reviews
        elif me.app == "ratings":
            body["ratings"] = RATINGS
        body["trace"] = trace
        data = (json.dumps(body, indent=2) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _trace(answer: dict[str, Any]) -> str:
    if "error" in answer:
        return "ERROR"
    return str(answer.get("trace", "?"))


class Apps:
    def __init__(self, workloads: tuple[Workload, ...]) -> None:
        self.workloads = workloads
        self.servers: list[AppServer] = []

    def start(self) -> None:
        for w in self.workloads:
            try:
                server = AppServer((w.ip, w.port), AppHandler)
            except OSError as err:
                raise DemoError(f"app {w.name} cannot listen on {w.ip}:{w.port}: {err}") from None
            server.workload = w
            self.servers.append(server)
            threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"app-{w.name}",
                daemon=True,
            ).start()

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers.clear()
