"""One ADS stream's state and its responses, for SotW and Delta, without any socket.

`Connection.on_request` and `Connection.on_push` return the serialized responses to write, in
order; the gRPC layer only writes them. Every response is computed from one PushContext, so a
proxy never sees a mix of two snapshots in one response.

What is sent follows from content-hash versions:
- SotW wildcard types (CDS, LDS) always carry the full set, and are sent only when the set's
  version differs from what the stream last sent;
- SotW explicit types (EDS, RDS) carry only resources whose version differs from what was
  sent (omission is not deletion for them), plus any names just subscribed;
- Delta sends changed resources and `removed_resources`;
- a reconnecting proxy that reports what it has (SotW `version_info`, Delta
  `initial_resource_versions`) and is up to date is sent nothing.
Clusters that were (re)sent need their load assignment again to finish warming, so their EDS
names are forced into the next EDS response (Istio's AlwaysRespond, envoyproxy/envoy#13009).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pilot.model.proxy import Proxy
from pilot.model.proxy_view import ProxyView, proxy_view
from pilot.model.push_context import PushContext
from pilot.model.push_request import PushRequest
from pilot.xds.generators.base import Generator
from pilot.xds.observer import Acked, ExpiredNonce, Nacked, Sent, XdsEvents
from pilot.xds.protocol import (
    Decision,
    RequestKind,
    WatchState,
    classify_delta,
    classify_sotw,
    names_key,
)
from pilot.xds.proxy_dependencies import incremental_names, proxy_needs_push
from pilot.xds.resource_set import ResourceSet, versions_of
from pilot.xds.wire import (
    BuiltResource,
    delta_response,
    set_version,
    sotw_response,
    updated_version,
)
from pkg.xds import typeurls

log = logging.getLogger(__name__)

# Types with no generator are watched (and never answered), as Istio does; a client inventing
# type URLs gets at most this many such watches per stream, so it cannot grow istiod's memory.
MAX_UNKNOWN_TYPES = 16


@dataclass(slots=True)
class SendRecord:
    """What one response carried (for logs, metrics and debug)."""

    type_url: str
    nonce: str
    version: str
    resources: int
    bytes: int
    removed: int = 0
    reason: str = ""


@dataclass
class ConnectionStats:
    connected_at: float = field(default_factory=time.time)
    pushes: int = 0
    responses: int = 0
    bytes_sent: int = 0
    nacks: int = 0
    last_sends: list[SendRecord] = field(default_factory=list)


class Connection:
    def __init__(
        self,
        conn_id: str,
        proxy: Proxy,
        peer: str,
        delta: bool,
        generators: Mapping[str, Generator],
        push_context: Callable[[], PushContext],
        events: XdsEvents | None = None,
    ) -> None:
        self.id = conn_id
        self.proxy = proxy
        self.peer = peer
        self.delta = delta
        self.watches: dict[str, WatchState] = {}
        self.stats = ConnectionStats()
        self._generators = generators
        self._push_context = push_context
        self._nonce_counter = 0
        self.events = events if events is not None else XdsEvents()
        # The push being answered while on_push runs (reported with each response it causes).
        self._push_request: PushRequest | None = None

    # ---- requests ---------------------------------------------------------------------

    @property
    def generators(self) -> Mapping[str, Generator]:
        """This stream's generators by type URL (read-only use: config_dump, explain, plan)."""
        return self._generators

    def on_sotw_request(self, request: Any) -> list[bytes]:
        type_url = request.type_url
        if self._too_many_unknown(type_url):
            return []
        nonce = request.response_nonce
        version = request.version_info
        error = request.error_detail if request.HasField("error_detail") else None
        state, decision = classify_sotw(
            self.watches.get(type_url),
            type_url=type_url,
            names=request.resource_names,
            nonce=nonce,
            version=version,
            error_message=error.message if error is not None else "",
            error_code=error.code if error is not None else 0,
            names_key=names_key(request),  # last: it clears the fields read above
        )
        self._record(state, decision, nonce)
        if not decision.respond or type_url not in self._generators:
            if decision.kind is RequestKind.UNSUBSCRIBE:
                del self.watches[type_url]
            return []
        push = self._push_context()
        view = proxy_view(self.proxy, push)
        client_version = version if decision.kind is RequestKind.INITIAL else ""
        out = self._respond_sotw(view, state, decision.added, client_version, reason="request")
        return out

    def on_delta_request(self, request: Any) -> list[bytes]:
        type_url = request.type_url
        if self._too_many_unknown(type_url):
            return []
        state, decision = classify_delta(
            self.watches.get(type_url),
            type_url=type_url,
            subscribe=request.resource_names_subscribe,
            unsubscribe=request.resource_names_unsubscribe,
            initial_versions=dict(request.initial_resource_versions),
            nonce=request.response_nonce,
            error_message=request.error_detail.message if request.HasField("error_detail") else "",
            error_code=request.error_detail.code if request.HasField("error_detail") else 0,
        )
        self._record(state, decision, request.response_nonce)
        if not decision.respond or type_url not in self._generators:
            return []
        push = self._push_context()
        view = proxy_view(self.proxy, push)
        # A first subscription from a proxy that has nothing yet is always answered, even with
        # nothing: Envoy waits for that answer (e.g. an empty listener set) to finish starting.
        first = decision.kind is RequestKind.INITIAL and not request.initial_resource_versions
        out = self._respond_delta(view, state, reason="request", answer_empty=first)
        if not out and decision.kind is RequestKind.INITIAL and request.initial_resource_versions:
            # It presented exactly what it would be sent: in sync, with nothing sent.
            state.in_sync_since = time.time()
        return out

    def _too_many_unknown(self, type_url: str) -> bool:
        if type_url in self._generators or type_url in self.watches:
            return False
        unknown = sum(1 for t in self.watches if t not in self._generators)
        if unknown < MAX_UNKNOWN_TYPES:
            return False
        log.debug("ADS: node=%s: ignoring request for unknown type %r", self.proxy.id, type_url)
        return True

    def _record(self, state: WatchState, decision: Decision, nonce: str) -> None:
        """Keep the new watch state, and log (and count) what the request was."""
        type_url = state.type_url
        self.watches[type_url] = state
        if type_url == typeurls.ENDPOINT and (decision.added or decision.removed):
            # Index the new subscription by host now, off the push path: the first
            # endpoint-only push would otherwise pay for it on every stream at once.
            state.names_by_host()
        if self.events and decision.kind in (RequestKind.ACK, RequestKind.NACK):
            self._report(state, decision, nonce)
        elif self.events and decision.kind is RequestKind.STALE:
            self.events.expired_nonce(self, ExpiredNonce(type_url, nonce, time.time()))
        if decision.kind is RequestKind.NACK:
            self.stats.nacks += 1
            # Envoy applies a rejected response partly, if at all: what it carried is sent
            # again the next time this type is generated (e.g. with a revert), even unchanged.
            nack_names = state.nack.names if state.nack else ()
            for name in nack_names or state.outstanding.get(nonce, ()):
                if name in state.sent:
                    state.sent[name] = ""
            log.warning(
                "ADS:%s: NACK node=%s nonce=%s version=%s: %s",
                typeurls.short_name(type_url),
                self.proxy.id,
                nonce,
                state.nack.version if state.nack else "",
                state.nack.message if state.nack else "",
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "ADS:%s: %s node=%s nonce=%s added=%d removed=%d respond=%s",
                typeurls.short_name(type_url),
                decision.kind.value,
                self.proxy.id,
                nonce,
                len(decision.added),
                len(decision.removed),
                decision.respond,
            )

    def _report(self, state: WatchState, decision: Decision, nonce: str) -> None:
        at = time.time()
        if decision.kind is RequestKind.ACK:
            version = state.version_acked if nonce == state.nonce_acked else ""
            self.events.acked(self, Acked(state.type_url, nonce, version, at))
            return
        nack = state.nack
        names = (nack.names if nack is not None else ()) or state.outstanding.get(nonce, ())
        self.events.nacked(
            self,
            Nacked(
                state.type_url,
                nonce,
                nack.version if nack is not None else "",
                nack.message if nack is not None else "",
                nack.code if nack is not None else 0,
                tuple(names),
                at,
            ),
        )

    # ---- pushes ------------------------------------------------------------------------

    def on_push(self, req: PushRequest) -> list[bytes]:
        push = req.push or self._push_context()
        view = proxy_view(self.proxy, push)
        if not proxy_needs_push(view, req):
            if self.events:
                self.events.skipped(self, req)
            return []
        self.stats.pushes += 1
        out: list[bytes] = []
        self._push_request = req
        try:
            self._push_types(view, req, out)
        finally:
            self._push_request = None
        if not out and self.events:
            self.events.up_to_date(self, req)
        return out

    def _push_types(self, view: ProxyView, req: PushRequest, out: list[bytes]) -> None:
        for type_url in typeurls.PUSH_ORDER:
            state = self.watches.get(type_url)
            generator = self._generators.get(type_url)
            if state is None or generator is None:
                continue
            if not state.force and not generator.needs_push(req):
                continue
            only = incremental_names(req, state)
            if self.delta:
                out.extend(self._respond_delta(view, state, reason="push", only=only))
            else:
                out.extend(self._respond_sotw(view, state, frozenset(), "", "push", only))

    # ---- response building -------------------------------------------------------------

    def _nonce(self) -> str:
        self._nonce_counter += 1
        return f"{self._nonce_counter}-{uuid.uuid4().hex[:12]}"

    def _shared_nonce(self, view: ProxyView, state: WatchState, version: str) -> str:
        """A nonce every stream sent this set in this push shares (so they share the bytes);
        a per-stream one if this stream already got exactly that nonce."""
        nonce = f"{view.push.version}~{version[:8]}"
        return self._nonce() if nonce == state.nonce_sent else nonce

    def _names(self, state: WatchState) -> frozenset[str] | None:
        return None if state.wildcard else state.frozen_names()

    def _respond_sotw(
        self,
        view: ProxyView,
        state: WatchState,
        added: frozenset[str],
        client_version: str,
        reason: str,
        only: frozenset[str] | None = None,
    ) -> list[bytes]:
        started = time.perf_counter()
        generator = self._generators[state.type_url]
        names = self._names(state)
        resources = generator.generate(view, names if only is None else only)
        shared = resources if isinstance(resources, ResourceSet) else None
        if only is None:
            if shared is not None:
                version = shared.version  # computed once for every proxy sharing the set
            else:
                version = set_version((r.name, r.version) for r in resources)
        else:
            # The other subscribed resources are unchanged: their versions are what was sent.
            version = updated_version(state.sent, resources)
        wildcard_type = state.type_url in typeurls.WILDCARD_TYPES
        if client_version and client_version == version:
            # A reconnecting proxy that already has exactly this: send nothing.
            state.sent = versions_of(resources)
            state.version_sent = version
            state.version_acked = version
            state.in_sync_since = time.time()  # SYNCED for syncz, with nothing sent
            state.force.clear()
            return []
        unchanged = version == state.version_sent and not state.force and not added
        if unchanged and reason == "push":
            return []
        if wildcard_type:
            to_send: Sequence[BuiltResource] = resources
        else:
            to_send = [
                r
                for r in resources
                if state.sent.get(r.name) != r.version or r.name in added or r.name in state.force
            ]
            if not to_send and not (reason == "request" and state.nonce_sent == ""):
                return []
        changed = self._changed(state, to_send)
        if shared is not None and len(to_send) == len(shared) and only is None:
            # The whole shared set: every stream of this push gets the same bytes object.
            to_send = shared
            nonce = self._shared_nonce(view, state, version)
            payload = shared.sotw_payload(state.type_url, nonce)
        else:
            nonce = self._nonce()
            payload = sotw_response(state.type_url, version, nonce, to_send)
        if wildcard_type:
            state.sent = versions_of(resources)
        else:
            for r in to_send:
                state.sent[r.name] = r.version
        state.force.clear()
        self._record_send(
            state, nonce, version, to_send, (), payload, reason, started, view.push.version
        )
        state.version_sent = version
        self._after_send(state.type_url, changed)
        return [payload]

    def _respond_delta(
        self,
        view: ProxyView,
        state: WatchState,
        reason: str,
        answer_empty: bool = False,
        only: frozenset[str] | None = None,
    ) -> list[bytes]:
        started = time.perf_counter()
        generator = self._generators[state.type_url]
        resources = generator.generate(view, self._names(state) if only is None else only)
        current = {r.name: r for r in resources}
        to_send: Sequence[BuiltResource] = [
            r for r in resources if state.sent.get(r.name) != r.version or r.name in state.force
        ]
        scope = state.sent if only is None else {n: "" for n in only if n in state.sent}
        if state.wildcard:
            removed = sorted(name for name in scope if name not in current)
        else:
            removed = sorted(name for name in scope if name in state.names and name not in current)
        if not to_send and not removed and not answer_empty:
            state.force.clear()
            return []
        changed = self._changed(state, to_send)
        if only is None:
            version = (
                resources.version
                if isinstance(resources, ResourceSet)
                else set_version((r.name, r.version) for r in resources)
            )
        else:
            version = updated_version(state.sent, resources)
        shared = resources if isinstance(resources, ResourceSet) and only is None else None
        if shared is not None and not removed and len(to_send) == len(shared):
            to_send = shared
            nonce = self._shared_nonce(view, state, version)
            payload = shared.delta_payload(state.type_url, nonce)
        else:
            nonce = self._nonce()
            payload = delta_response(state.type_url, version, nonce, to_send, removed)
        for r in to_send:
            state.sent[r.name] = r.version
        for name in removed:
            state.sent.pop(name, None)
        state.force.clear()
        state.outstanding[nonce] = tuple(r.name for r in to_send)
        if len(state.outstanding) > 64:
            # Keep the attribution map bounded: drop the oldest entries.
            for old in list(state.outstanding)[: len(state.outstanding) - 64]:
                del state.outstanding[old]
        self._record_send(
            state, nonce, version, to_send, removed, payload, reason, started, view.push.version
        )
        state.version_sent = version
        self._after_send(state.type_url, changed)
        return [payload]

    def _changed(self, state: WatchState, to_send: Sequence[BuiltResource]) -> list[str]:
        """The clusters among `to_send` whose version differs from what the stream has: their
        load assignments are re-sent (warming). Only CDS needs it, and only with EDS watched."""
        if state.type_url != typeurls.CLUSTER or typeurls.ENDPOINT not in self.watches:
            return []
        sent = state.sent
        if not sent:
            return [r.name for r in to_send]
        if isinstance(to_send, ResourceSet):
            # Dict item views compare at C speed: only the differing pairs reach Python.
            return [name for name, _ in to_send.versions.items() - sent.items()]
        return [r.name for r in to_send if sent.get(r.name) != r.version]

    def _after_send(self, type_url: str, changed: list[str]) -> None:
        if type_url != typeurls.CLUSTER or not changed:
            return
        eds = self.watches.get(typeurls.ENDPOINT)
        if eds is not None:
            eds.force.update(name for name in changed if name in eds.names or eds.wildcard)

    def _record_send(
        self,
        state: WatchState,
        nonce: str,
        version: str,
        sent: Sequence[BuiltResource],
        removed_names: Sequence[str],
        payload: bytes,
        reason: str,
        started: float = 0.0,
        context: str = "",
    ) -> None:
        removed = len(removed_names)
        state.nonce_sent = nonce
        state.last_sent_at = time.time()
        self.stats.responses += 1
        self.stats.bytes_sent += len(payload)
        if not self.delta:
            # What each SotW response carried, to attribute a NACK (Delta keeps its own).
            names = sent.names() if isinstance(sent, ResourceSet) else tuple(r.name for r in sent)
            state.outstanding[nonce] = names
            if len(state.outstanding) > 8:
                del state.outstanding[next(iter(state.outstanding))]
        if self.events:
            if self.delta:
                carried = (
                    sent.names() if isinstance(sent, ResourceSet) else tuple(r.name for r in sent)
                )
            else:
                carried = state.outstanding[nonce]
            self.events.sent(
                self,
                Sent(
                    state.type_url,
                    nonce,
                    version,
                    carried,
                    tuple(removed_names),
                    len(payload),
                    reason,
                    self._push_request if reason == "push" else None,
                    state.last_sent_at,
                    time.perf_counter() - started if started else 0.0,
                    sent,
                    context,
                ),
            )
        record = SendRecord(
            state.type_url, nonce, version, len(sent), len(payload), removed, reason
        )
        self.stats.last_sends.append(record)
        del self.stats.last_sends[:-16]
        if not log.isEnabledFor(logging.DEBUG):
            return  # one line per push (server.py), not one per proxy and type
        log.debug(
            "%s: %s for node:%s resources:%d removed:%d size:%dB version:%s nonce:%s",
            typeurls.short_name(state.type_url),
            "PUSH" if reason == "push" else "RESPONSE",
            self.proxy.id,
            len(sent),
            removed,
            len(payload),
            version,
            nonce,
        )
