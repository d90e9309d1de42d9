"""A fake Kubernetes API server that the real `kubernetes` client talks to (test support).

`FakeApiServer` serves plain HTTP on 127.0.0.1:<ephemeral> from a thread (a
`ThreadingHTTPServer`: one thread per connection, so a blocking watch stream is just a loop
that writes chunked JSON lines). Use it as a context manager or through the `fake_apiserver`
fixture (tests/helpers/kube/conftest.py); `.client()` gives a `pkg.kube.client.KubeClient`.

What it serves, as the real server does:
- discovery: /version, /api, /apis, /apis/GROUP, /api/v1, /apis/GROUP/VERSION (resources.py):
  core Service, Endpoints, Pod, Node, Namespace, Secret, ConfigMap, ServiceAccount;
  discovery.k8s.io EndpointSlice; coordination.k8s.io Lease; admissionregistration.k8s.io
  Validating/MutatingWebhookConfiguration; authentication.k8s.io TokenReview (create only);
  every Istio kind of pkg.config.schema in all of its versions (one object, any version).
- get, list (namespaced and across namespaces), `labelSelector` (=, ==, !=, in, notin, exists,
  !exists), `fieldSelector` on metadata.name / metadata.namespace (others: 400), `limit` +
  `continue`; the list's `metadata.resourceVersion` is the cluster-wide revision.
- watch (`?watch=1`): from `resourceVersion` N the events after N in revision order; without
  one (or "0") synthetic ADDED events of the current objects first. Selectors move objects in
  and out of a watch (ADDED/DELETED), as the watch cache does. BOOKMARK events (object with
  only apiVersion, kind, metadata.resourceVersion) when `allowWatchBookmarks=true`: on
  `bookmark()`, every `bookmark_interval` seconds, and just before `timeoutSeconds` ends the
  stream. A revision older than the last `compact()` gets a 200 stream with one ERROR event
  carrying a 410 Expired Status. `drop_watches()` ends every open stream (clean end of the
  chunked body), like an API server shutting down; `drop_watches(abrupt=True)` closes the
  connections mid-body instead, like a network failure or a killed server.
  `hold_lists(plural, ...)` makes lists of those resources wait until `release_lists()`
  (a slow initial sync of one kind while the rest is served).
- create (409 AlreadyExists, `generateName`), update (PUT; 409 Conflict when the body's
  resourceVersion is stale; no resourceVersion = unconditional), patch (merge patch, JSON patch
  add/remove/replace/test, strategic merge patch for built-in kinds — 415 for custom resources,
  as the real server answers), delete (preconditions.resourceVersion → 409). Server-set
  metadata: uid, resourceVersion, creationTimestamp, generation (bumped on non-metadata change).
  A Secret's write-only `stringData` is merged into `data` (base64).
- TokenReview: tokens registered with `register_token` authenticate as
  `system:serviceaccount:NS:SA` for the intersection of requested and token audiences.

Simplifications (none of them something istiod relies on):
- no TLS, authentication or authorization (any or no bearer token is accepted), no admission,
  no defaulting or validation of object bodies (e.g. no clusterIP allocation), no field
  managers, no server-side apply (apply patches get 415), no subresources (/status, /scale).
- strategic merge patch is a JSON merge patch (lists are replaced, not merged by key; no
  `$patch` directives); JSON patch has no move/copy.
- a namespace need not exist to hold objects; deleting a namespace deletes nothing else;
  deletion is immediate (no finalizers, no graceful deletion); delete answers the deleted
  object for custom resources, Services and Pods (as the real registries do), else a Success
  Status.
- `continue` tokens stay valid only while nothing of that resource changed (then 410 Expired,
  which the real server answers when the snapshot was compacted); no `remainingItemCount`.
- watch without resourceVersion does not wait for a "fresh" read; no `sendInitialEvents`; a
  resourceVersion in the future is served as if current.
- Protobuf is not served (JSON only); no /openapi; no aggregated discovery.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pkg.kube.client import KubeClient
from tests.helpers.kube import resources
from tests.helpers.kube.resources import Resource
from tests.helpers.kube.store import ApiError, Filter, Obj, Store, json_patch, merge_patch
from tests.helpers.kube.tokens import TokenRegistry
from tests.helpers.kube.watch import Watches


class FakeApiServer:
    """The fake API server; start with `with FakeApiServer() as api:` or `start()`."""

    def __init__(self, *, bookmark_interval: float | None = None) -> None:
        self.store = Store()
        self.watches = Watches(self.store, bookmark_interval)
        self.tokens = TokenRegistry()
        self.patch_types: list[str] = []  # Content-Type of every PATCH, for tests
        self.held_lists: frozenset[str] = frozenset()  # plurals whose lists wait (hold_lists)
        self._lists_released = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.api = self
        self._thread: threading.Thread | None = None

    # -- lifecycle
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeApiServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self.release_lists()
        self.drop_watches()
        if self._thread is not None:  # shutdown() waits for serve_forever: never if unstarted
            self._httpd.shutdown()
        self._httpd.server_close()
        with self.store.changed:
            socks = list(self._sockets)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def client(self) -> KubeClient:
        return KubeClient.for_url(self.url)

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig (context "fake") pointing at this server, e.g. for an istiod process."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config, indent=2))
        return path

    # -- test controls
    def drop_watches(self, abrupt: bool = False) -> None:
        """End every open watch stream now: cleanly (the client sees the stream end) or, with
        `abrupt`, by closing the connection mid-body (the client sees a broken connection)."""
        self.watches.drop(abrupt)

    def bookmark(self) -> None:
        """Make every open watch that allows bookmarks send one at the current revision."""
        self.watches.bookmark()

    def compact(self) -> int:
        """Forget the event history; watches from an older revision get 410. Returns the rv."""
        return self.store.compact()

    @property
    def open_watches(self) -> int:
        return self.watches.open

    def wait_for_watches(self, count: int, timeout: float = 5.0) -> None:
        """Block until at least `count` watch streams are open."""
        self.watches.wait_for(count, timeout)

    def hold_lists(self, *plurals: str) -> None:
        """Make lists of these resources (e.g. "virtualservices") wait until `release_lists()`
        (at most 30 s): a client's initial sync of them stays pending, everything else works."""
        self._lists_released.clear()
        self.held_lists = frozenset(plurals)

    def release_lists(self) -> None:
        self.held_lists = frozenset()
        self._lists_released.set()

    def register_token(
        self, token: str, namespace: str, service_account: str, audiences: tuple[str, ...]
    ) -> None:
        """Make `token` valid for `system:serviceaccount:namespace:service_account`."""
        self.tokens.register(token, namespace, service_account, audiences)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    api: FakeApiServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.api.store.changed:
            self.server.api._sockets.add(self.connection)

    def finish(self) -> None:
        with self.server.api.store.changed:
            self.server.api._sockets.discard(self.connection)
        super().finish()

    # -- plumbing
    def _send(self, code: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError as e:
            raise ApiError(400, "BadRequest", f"invalid JSON body: {e}") from e

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        group = ""
        try:
            if method == "GET" and (doc := self._discovery(parts)) is not None:
                self._send(200, doc)
                return
            if parts[:2] == ["api", "v1"]:
                group, version, rest = "", "v1", parts[2:]
            elif parts[:1] == ["apis"] and len(parts) >= 3:
                group, version, rest = parts[1], parts[2], parts[3:]
            else:
                raise ApiError(404, "NotFound", f"the server could not find {url.path}")
            self._resource(method, group, version, rest, query)
        except ApiError as e:
            self._send(e.code, e.status(group))
        except (KeyError, ValueError, TypeError, AttributeError) as e:  # a bad request body
            self._send(500, ApiError(500, "InternalError", f"fake apiserver: {e!r}").status())

    @staticmethod
    def _discovery(parts: list[str]) -> Obj | None:
        if parts == ["version"]:
            return {"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "platform": "fake"}
        if parts == ["api"]:
            return resources.core_versions()
        if parts == ["apis"]:
            return resources.group_list()
        if parts == ["api", "v1"]:
            return resources.resource_list("", "v1")
        if len(parts) == 2 and parts[0] == "apis":
            return resources.group(parts[1])
        if len(parts) == 3 and parts[0] == "apis":
            return resources.resource_list(parts[1], parts[2])
        return None

    def _resource(
        self, method: str, group: str, version: str, rest: list[str], query: dict[str, str]
    ) -> None:
        ns = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 2:
            raise ApiError(404, "NotFound", "subresources are not served by the fake")
        r = resources.find(group, version, rest[0])
        if r is None or (ns and not r.namespaced):
            raise ApiError(404, "NotFound", f"the server could not find resource {rest[0]}")
        name = rest[1] if len(rest) == 2 else ""
        if name and r.namespaced and not ns:
            raise ApiError(404, "NotFound", f"{r.plural} is namespaced")
        if r.plural == "tokenreviews":
            if method != "POST" or name:
                raise ApiError(405, "MethodNotAllowed", "tokenreviews only support create")
            self._send(201, self.server.api.tokens.review(self._body() or {}))
            return
        store = self.server.api.store
        if method == "GET" and name:
            self._send(200, r.typed(store.get(r, ns, name), version))
        elif method == "GET" and query.get("watch") in ("1", "true"):
            self._watch(r, version, ns, query)
        elif method == "GET":
            self._list(r, version, ns, query)
        elif method == "POST" and not name:
            obj = r.typed(store.create(r, ns, self._body() or {}), version)
            self._send(201, obj)
        elif method == "PUT" and name:
            self._send(200, r.typed(store.update(r, ns, name, self._body() or {}), version))
        elif method == "PATCH" and name:
            self._send(200, r.typed(self._patch(r, ns, name), version))
        elif method == "DELETE" and name:
            opts = self._body() or {}
            rv = (opts.get("preconditions") or {}).get("resourceVersion") or ""
            old = store.delete(r, ns, name, rv)
            if r.delete_returns_object:
                self._send(200, r.typed(old, version))
            else:
                details = {"name": name, "kind": r.plural, "uid": old["metadata"]["uid"]}
                status = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
                self._send(200, {**status, "status": "Success", "details": details})
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _patch(self, r: Resource, ns: str, name: str) -> Obj:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        self.server.api.patch_types.append(ctype)
        patch = self._body()
        store = self.server.api.store
        with store.changed:  # re-entrant: get + update is atomic
            cur = store.get(r, ns, name)
            if ctype == "application/json-patch+json":
                new = json_patch(cur, patch)
            elif ctype == "application/merge-patch+json" or (
                ctype == "application/strategic-merge-patch+json" and not r.custom
            ):
                new = merge_patch(cur, patch)
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown "
                    f"format - accepted media types include: application/json-patch+json, "
                    f"application/merge-patch+json (got {ctype!r})",
                )
            return store.update(r, ns, name, new)

    def _list(self, r: Resource, version: str, ns: str, query: dict[str, str]) -> None:
        if r.plural in self.server.api.held_lists:
            self.server.api._lists_released.wait(30)
        f = Filter.parse(
            ns, query.get("labelSelector", ""), query.get("fieldSelector", ""), r.field_labels
        )
        store = self.server.api.store
        with store.changed:
            rv, items = store.snapshot(r, f)
            token = query.get("continue")
            if token:
                state = json.loads(base64.urlsafe_b64decode(token))
                try:
                    stale = any(e.resource == r for e in store.events_after(state["rv"]))
                except ApiError:
                    stale = True
                if stale:
                    raise ApiError(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter.",
                    )
                rv, start = state["rv"], tuple(state["after"])
                items = [o for o in items if _key(o) > start]
        limit = int(query.get("limit") or 0)
        meta: Obj = {"resourceVersion": str(rv)}
        if limit and len(items) > limit:
            items = items[:limit]
            state = {"rv": rv, "after": list(_key(items[-1]))}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
        self._send(
            200,
            {
                "apiVersion": r.api_version(version),
                "kind": f"{r.kind}List",
                "metadata": meta,
                "items": [r.typed(o, version) for o in items],
            },
        )

    def _chunk(self, event: Obj | None) -> None:
        """One watch event as one chunk; None ends the chunked body."""
        data = json.dumps(event).encode() + b"\n" if event is not None else b""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, r: Resource, version: str, ns: str, query: dict[str, str]) -> None:
        f = Filter.parse(
            ns, query.get("labelSelector", ""), query.get("fieldSelector", ""), r.field_labels
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with contextlib.suppress(OSError):  # the client went away
            if not self.server.api.watches.serve(self._chunk, r, version, f, query):
                self.close_connection = True  # abrupt drop: no end of the chunked body
                self.connection.shutdown(socket.SHUT_RDWR)


def _key(obj: Obj) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
