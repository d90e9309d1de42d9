"""The Bookinfo applications for end-to-end tests, as small stdlib HTTP servers.

Each one listens on 127.0.0.1:<ephemeral> behind its own sidecar (the Sidecar resource's
ingress `defaultEndpoint`) and calls other services through that sidecar's egress listener
(`<egress ip>:9080`, `Host: <service>:9080`). They keep the behaviour of Istio's Bookinfo
sources (samples/bookinfo/src) that the traffic samples and their docs rely on:

- productpage: `POST /login` (form `username`) keeps the user in a cookie, `GET /logout` drops
  it; every call it makes carries `end-user: <user>`. It calls details once with a 3 s timeout
  and reviews up to twice with a 3 s timeout each (the "bug introduced explicitly" of the
  fault-injection task), and shows "Sorry, product ... are currently unavailable for this
  book." when a call fails. The page is JSON rather than HTML.
- reviews: v1 never calls ratings; v2 (black stars) calls it with a 10 s timeout, v3 (red
  stars) with 2.5 s; a failed call gives "Ratings service is currently unavailable".
- details and ratings answer fixed data.

Every answer says which workload served it (`served_by`), which ratings workload a reviews
answer used (`ratings_by`), and which peer identity the inbound sidecar saw (`peer`, the URI
of the last x-forwarded-client-cert element).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

SERVICE_PORT = 9080
PROPAGATE = ("end-user", "x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled")
BOOK = {
    "id": 0,
    "author": "William Shakespeare",
    "year": 1595,
    "type": "paperback",
    "pages": 200,
    "publisher": "PublisherA",
    "language": "English",
    "ISBN-10": "1234567890",
    "ISBN-13": "123-1234567890",
}
REVIEWS = (
    ("Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is "),
    ("Reviewer2", "Absolutely fun and entertaining. The play lacks thematic depth when "),
)
RATINGS = {"Reviewer1": 5, "Reviewer2": 4}
STAR_COLOR = {"v2": "black", "v3": "red"}
RATINGS_TIMEOUT = {"v2": 10.0, "v3": 2.5}  # reviews → ratings, as Istio's reviews app
REVIEWS_TIMEOUT, REVIEWS_TRIES, DETAILS_TIMEOUT = 3.0, 2, 3.0  # productpage → reviews/details
DETAILS_ERROR = "Sorry, product details are currently unavailable for this book."
REVIEWS_ERROR = "Sorry, product reviews are currently unavailable for this book."
RATINGS_ERROR = "Ratings service is currently unavailable"


@dataclass
class Seen:
    """One request an app received."""

    path: str
    headers: dict[str, str]
    at: float


@dataclass
class App:
    """One Bookinfo workload's application (`<app>-<version>`)."""

    app: str
    version: str
    egress: tuple[str, int] | None = None  # its sidecar's egress listener
    seen: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return f"{self.app}-{self.version}"

    @property
    def port(self) -> int:
        assert self._server is not None, f"{self.name} not started"
        return int(self._server.server_address[1])

    def start(self) -> App:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.app = self  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(target=server.serve_forever, name=self.name, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def record(self, path: str, headers: Mapping[str, str]) -> None:
        with self._lock:
            self.seen.append(Seen(path, dict(headers), time.monotonic()))
            del self.seen[:-500]  # bounded

    def seen_since(self, since: float) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.at >= since]

    def call(
        self, service: str, path: str, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, dict[str, Any]]:
        """GET through the sidecar's egress listener; (status, JSON body), (0, {}) on a
        transport failure or timeout."""
        assert self.egress is not None, f"{self.name} has no egress listener"
        conn = http.client.HTTPConnection(*self.egress, timeout=timeout)
        try:
            conn.request("GET", path, headers={**headers, "Host": f"{service}:{SERVICE_PORT}"})
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException):
            return 0, {}
        finally:
            conn.close()
        try:
            data = json.loads(body)
        except ValueError:
            data = {"body": body.decode("utf-8", "replace")}
        return resp.status, data if isinstance(data, dict) else {"body": data}

    # -- the applications ------------------------------------------------------------------

    def answer(self, path: str, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        forward = {k: v for k in PROPAGATE if (v := headers.get(k))}
        if self.app == "details":
            return 200, dict(BOOK)
        if self.app == "ratings":
            return 200, {"id": 0, "ratings": dict(RATINGS)}
        if self.app == "reviews":
            return 200, self._reviews(forward)
        return self._productpage(path, headers, forward)

    def _reviews(self, forward: Mapping[str, str]) -> dict[str, Any]:
        reviews: list[dict[str, Any]] = [{"reviewer": r, "text": t} for r, t in REVIEWS]
        out: dict[str, Any] = {"id": "0", "reviews": reviews}
        if self.version in RATINGS_TIMEOUT:
            status, ratings = self.call(
                "ratings", "/ratings/0", forward, RATINGS_TIMEOUT[self.version]
            )
            out["ratings_by"] = ratings.get("served_by") if status == 200 else None
            out["ratings_peer"] = ratings.get("peer") if status == 200 else None
            out["ratings_status"] = status
            for review in reviews:
                if status == 200:
                    stars = ratings.get("ratings", {}).get(review["reviewer"])
                    review["rating"] = {"stars": stars, "color": STAR_COLOR[self.version]}
                else:
                    review["rating"] = {"error": RATINGS_ERROR}
        return out

    def _productpage(
        self, path: str, headers: Mapping[str, str], forward: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        user = _cookie(headers.get("cookie", ""), "user")
        if user:
            forward["end-user"] = user
        if path == "/api/v1/products":
            return 200, {"products": [{"id": 0, "title": "The Comedy of Errors"}]}
        if path.startswith("/static/"):
            return 200, {"static": path}
        if path.startswith("/api/v1/products/0/reviews"):
            return self._product_reviews(forward)
        if path != "/productpage":
            return 404, {"error": f"no page {path}"}
        details_status, details = self.call("details", "/details/0", forward, DETAILS_TIMEOUT)
        if details_status != 200:
            details = {"error": DETAILS_ERROR}
        reviews_status, reviews = self._product_reviews(forward)
        return 200, {
            "user": user,
            "detailsStatus": details_status or 500,
            "details": details,
            "reviewsStatus": reviews_status,
            "reviews": reviews,
        }

    def _product_reviews(self, forward: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        status = 0
        for _ in range(REVIEWS_TRIES):
            status, reviews = self.call("reviews", "/reviews/0", forward, REVIEWS_TIMEOUT)
            if status == 200:
                return 200, reviews
        return status or 500, {"error": REVIEWS_ERROR}


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def peer_uri(xfcc: str) -> str:
    """The URI of the last x-forwarded-client-cert element (the peer of the last hop)."""
    last = xfcc.split(",")[-1] if xfcc else ""
    for part in last.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "uri":
            return value.strip('"')
    return ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A caller that gave up (productpage's 3 s timeout) closed the connection: the
        late answer has nowhere to go, which is expected, not an error."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def app(self) -> App:
        return self.server.app  # type: ignore[attr-defined,no-any-return]

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.app.record(self.path, headers)
        if self.app.app == "productpage" and self.path.startswith("/logout"):
            self._redirect(headers, "user=; Path=/; Max-Age=0")
            return
        status, body = self.app.answer(self.path, headers)
        # An API answer passed through from another service keeps that service's marks.
        body.setdefault("served_by", self.app.name)
        body.setdefault("peer", peer_uri(headers.get("x-forwarded-client-cert", "")))
        self._send(status, json.dumps(body).encode(), "application/json")

    def do_POST(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.app.record(self.path, headers)
        length = int(headers.get("content-length", "0") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if self.app.app != "productpage" or not self.path.startswith("/login"):
            self._send(404, b"{}", "application/json")
            return
        user = (form.get("username") or [""])[0]
        self._redirect(headers, f"user={user}; Path=/")

    def _redirect(self, headers: Mapping[str, str], cookie: str) -> None:
        self.send_response(302)
        self.send_header("Location", headers.get("referer", "/productpage"))
        self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
