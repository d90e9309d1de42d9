"""One list+watch loop of one Istio kind (in one namespace, or cluster-wide), in a thread.

The official client is synchronous, so every loop runs in its own thread and hands what it
sees to a callback (the config source forwards it to the event loop with
`call_soon_threadsafe`); the thread keeps no config state but the resourceVersion to resume
from. The loop: list (→ `Listed`, the whole current set) then watch from the list's
resourceVersion with bookmarks (→ `Changed` per event; a bookmark only advances the
resourceVersion). When the stream ends (the server's timeoutSeconds, a drop) it watches again
from the last resourceVersion; on 410 Gone it lists again (the receiver diffs the list against
its cache); on any other error it retries after a capped exponential backoff.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pkg.config.schema import KindSchema
from pkg.kube.client import BOOKMARK, ERROR, GONE, KubeClient, status_of

log = logging.getLogger(__name__)

WATCH_TIMEOUT = 300  # seconds per watch request (the server ends it with a bookmark)
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0
JOIN_POLL = 0.05  # seconds between attempts to break a stream while stopping


@dataclass(frozen=True, slots=True)
class Target:
    """What one loop watches: a kind, in one namespace or ("") cluster-wide."""

    schema: KindSchema
    namespace: str = ""
    field_selector: str = ""

    def __str__(self) -> str:
        where = f"namespace {self.namespace}" if self.namespace else "all namespaces"
        return f"{self.schema.plural}.{self.schema.group} in {where}"


@dataclass(frozen=True, slots=True)
class Listed:
    target: Target
    items: tuple[dict[str, Any], ...]
    resource_version: str


@dataclass(frozen=True, slots=True)
class Changed:
    target: Target
    type: str  # ADDED, MODIFIED or DELETED
    obj: dict[str, Any]
    resource_version: str


Message = Listed | Changed

# Built-in kinds: (API group accessor on KubeClient, cluster-wide list, namespaced list).
# Istio's CRDs go through the CustomObjectsApi instead.
_BUILTIN_CALLS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("", "services"): ("core", "list_service_for_all_namespaces", "list_namespaced_service"),
    ("", "pods"): ("core", "list_pod_for_all_namespaces", "list_namespaced_pod"),
    ("", "secrets"): ("core", "list_secret_for_all_namespaces", "list_namespaced_secret"),
    ("", "configmaps"): (
        "core",
        "list_config_map_for_all_namespaces",
        "list_namespaced_config_map",
    ),
    ("", "nodes"): ("core", "list_node", ""),
    ("", "namespaces"): ("core", "list_namespace", ""),
    ("discovery.k8s.io", "endpointslices"): (
        "discovery",
        "list_endpoint_slice_for_all_namespaces",
        "list_namespaced_endpoint_slice",
    ),
}


def list_call(kube: KubeClient, target: Target) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """The client function (and its positional arguments) that lists — and, given `watch=True`,
    watches — `target`."""
    s = target.schema
    builtin = _BUILTIN_CALLS.get((s.group, s.plural))
    if builtin is not None:
        accessor, cluster_wide, namespaced = builtin
        api = getattr(kube, accessor)()
        if target.namespace and namespaced:
            return getattr(api, namespaced), (target.namespace,)
        return getattr(api, cluster_wide), ()
    if s.group == "" or not s.istio:
        raise ValueError(f"no list call for {s.plural}.{s.group or 'core'}")
    custom = kube.custom()
    if target.namespace:
        args = (s.group, s.versions[0], target.namespace, s.plural)
        return custom.list_namespaced_custom_object, args
    return custom.list_cluster_custom_object, (s.group, s.versions[0], s.plural)


def backoff_delays(
    initial: float = BACKOFF_INITIAL, cap: float = BACKOFF_MAX
) -> Callable[[], float]:
    """The next delay on every call: doubling from `initial`, at most `cap`."""
    state = [initial / 2]

    def next_delay() -> float:
        state[0] = min(cap, state[0] * 2)
        return state[0]

    return next_delay


class KindWatcher:
    """Runs the list+watch loop of `target` in a daemon thread until `stop()`."""

    def __init__(
        self,
        kube: KubeClient,
        target: Target,
        deliver: Callable[[Message], None],
        *,
        watch_timeout: int = WATCH_TIMEOUT,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        self.kube = kube
        self.target = target
        self._deliver = deliver
        self._watch_timeout = watch_timeout
        self._backoff_max = backoff_max
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watch: Any = None
        self._thread = threading.Thread(target=self._run, name=f"kube-watch {target}", daemon=True)
        self.resource_version = ""
        self.lists = 0
        self.watches = 0
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end, breaking a blocked read of the current stream."""
        self._stopping.set()
        self._break_stream()

    def _break_stream(self) -> None:
        with self._lock:
            watch = self._watch
        if watch is not None:
            watch.stop()
            resp = getattr(watch, "_resp", None)
            shutdown = getattr(resp, "shutdown", None)
            if shutdown is not None:
                try:
                    shutdown()
                except Exception as e:  # already closed
                    log.debug("closing watch of %s: %s", self.target, e)

    def join(self, timeout: float) -> bool:
        """Wait for the loop to end. A stream that was still being opened when stop() came
        has no socket to shut yet (and the client's stream() forgets an earlier stop()), so
        the break is repeated until the thread ends."""
        deadline = time.monotonic() + timeout
        while self._thread.is_alive():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._thread.join(min(JOIN_POLL, left))
            if self._thread.is_alive():
                self._break_stream()
        return True

    def _list_call(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return list_call(self.kube, self.target)

    def _selectors(self) -> dict[str, str]:
        return {"field_selector": self.target.field_selector} if self.target.field_selector else {}

    def _run(self) -> None:
        delay = backoff_delays(BACKOFF_INITIAL, self._backoff_max)
        while not self._stopping.is_set():
            try:
                if not self.resource_version:
                    self._list()
                self._watch_once()
                delay = backoff_delays(BACKOFF_INITIAL, self._backoff_max)
            except Exception as e:
                if self._stopping.is_set():
                    return
                if status_of(e) == GONE:
                    log.info("watch of %s expired (410 Gone); listing again", self.target)
                    self.resource_version = ""
                    continue
                self.errors += 1
                wait = delay()
                log.warning("watch of %s failed (%s); retrying in %.1fs", self.target, e, wait)
                self._stopping.wait(wait)

    def _list(self) -> None:
        func, args = self._list_call()
        # Raw JSON, as the watch events are: the typed models would drop unknown fields.
        response = func(*args, **self._selectors(), _preload_content=False)
        listed = json.loads(response.data)
        rv = str(listed["metadata"]["resourceVersion"])
        self.lists += 1
        self._deliver(Listed(self.target, tuple(listed.get("items") or ()), rv))
        self.resource_version = rv

    def _watch_once(self) -> None:
        func, args = self._list_call()
        watch = self.kube.watch()
        with self._lock:
            if self._stopping.is_set():
                return
            self._watch = watch
        try:
            for event in watch.stream(
                func,
                *args,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=self._watch_timeout,
                **self._selectors(),
            ):
                if self._stopping.is_set():  # stopped while the stream was being opened
                    return
                kind = event["type"]
                obj = event["raw_object"]
                if kind == ERROR:  # the client raises for these; be safe
                    self.resource_version = ""
                    return
                rv = str(obj.get("metadata", {}).get("resourceVersion", ""))
                if kind != BOOKMARK:
                    self._deliver(Changed(self.target, kind, obj, rv))
                if rv:
                    self.resource_version = rv
        finally:
            with self._lock:
                self._watch = None
            self.watches += 1
