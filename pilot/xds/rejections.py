"""The rejection tracker: an xDS observer that attributes each NACK to the config object behind
it and reports it (`on_rejected`), so that object is reverted to its last good version
(pilot/config/last_good.py) for every proxy.

Per stream and type it keeps the last few responses sent: their nonce, the PushContext version
they were built from, the ConfigKeys of the push behind them (None for a response to a plain
request) and whether they were ACKed. On a NACK, the objects changed since the last response
that proxy accepted on that type are the union of the push keys of the responses after it
(unknown if one of them answered a plain request, or the stream's first responses were
forgotten; a stream whose first response on a type was a push started in sync, since a
reconnecting proxy that is up to date is sent nothing). The last few PushContexts are kept
(not per stream) to find the exact object versions a response was built from, and to
regenerate the rejected resources for their provenance metadata. Attribution rules:
pilot/xds/attribution.py.

Cannot be attributed (logged, nothing reverted): a NACK of a response built from a PushContext
that is no longer kept, one whose candidates stay ambiguous, and a first response on a type
whose resources carry no provenance (listeners, secrets): e.g. a listener-level rejection of
an object that was already in istiod's config when the proxy connected.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf.message import Message

from pilot.config.last_good import Rejection, object_version
from pilot.model.proxy_view import proxy_view
from pilot.model.push_context import PushContext
from pilot.xds.attribution import Attribution, attribute, provenance_keys
from pilot.xds.connection import Connection
from pilot.xds.observer import Acked, Nacked, Sent
from pkg.config.model import Config, ConfigKey
from pkg.xds import typeurls

log = logging.getLogger(__name__)

MAX_RESPONSES = 8  # per stream and type
MAX_CONTEXTS = 8  # PushContexts kept to resolve NACKs (shared, not per stream)

_MESSAGES: dict[str, type[Message]] = {
    typeurls.ROUTE: route_pb2.RouteConfiguration,
    typeurls.CLUSTER: cluster_pb2.Cluster,
    typeurls.LISTENER: listener_pb2.Listener,
}

OnRejected = Callable[[Config[Any], Rejection], object]


@dataclass(slots=True)
class _Response:
    nonce: str
    keys: frozenset[ConfigKey] | None  # the push's changes; None: unknown
    push_version: str
    acked: bool = False


@dataclass(slots=True)
class _Stream:
    responses: dict[str, list[_Response]] = field(default_factory=dict)  # oldest first
    forgotten: set[str] = field(default_factory=set)  # types whose oldest were dropped


class RejectionTracker:
    def __init__(
        self,
        current_push: Callable[[], PushContext],
        on_rejected: OnRejected,
        revert: str = "authenticated",
    ) -> None:
        self._current_push = current_push
        self._on_rejected = on_rejected
        # Whose NACKs may revert an object for the whole mesh (PILOT_REVERT_REJECTED_CONFIG):
        # by default only proxies with a verified identity, so an anonymous plaintext client
        # cannot withdraw config from everyone by NACKing it.
        self._revert = revert
        self._streams: dict[str, _Stream] = {}
        self._contexts: OrderedDict[str, PushContext] = OrderedDict()
        self.attributions: list[Attribution] = []  # the last few, for tests and debugging

    # ---- observer --------------------------------------------------------------------------

    def sent(self, conn: Connection, event: Sent) -> None:
        request = event.push
        push = request.push if request is not None and request.push is not None else None
        if push is None:
            push = self._current_push()  # a request is answered from the current context
        keys = None
        if request is not None and request.configs_updated and not request.forced:
            keys = request.configs_updated
        self._keep_context(push)
        stream = self._streams.setdefault(conn.id, _Stream())
        responses = stream.responses.setdefault(event.type_url, [])
        responses.append(_Response(event.nonce, keys, push.version))
        if len(responses) > MAX_RESPONSES:
            del responses[0]
            stream.forgotten.add(event.type_url)

    def acked(self, conn: Connection, event: Acked) -> None:
        stream = self._streams.get(conn.id)
        responses = stream.responses.get(event.type_url, []) if stream else []
        for response in reversed(responses):
            if response.nonce == event.nonce:
                response.acked = True
                return

    def nacked(self, conn: Connection, event: Nacked) -> None:
        stream = self._streams.get(conn.id)
        responses = stream.responses.get(event.type_url, []) if stream else []
        index = next((i for i, r in enumerate(responses) if r.nonce == event.nonce), None)
        short = typeurls.short_name(event.type_url)
        if stream is None or index is None:
            log.warning("NACK from %s on %s not attributed: response %s is no longer known",
                        conn.proxy.name, short, event.nonce)  # fmt: skip
            return
        push = self._contexts.get(responses[index].push_version)
        if push is None:
            log.warning("NACK from %s on %s not attributed: its snapshot is no longer kept",
                        conn.proxy.name, short)  # fmt: skip
            return
        changed = _changed_since_accepted(responses, index, event.type_url in stream.forgotten)
        result = attribute(
            push,
            changed,
            lambda: _provenance(conn, push, event.type_url, event.names),
            event.message,
        )
        self.attributions.append(result)
        del self.attributions[:-16]
        if result.config is None:
            log.warning(
                "NACK from %s on %s not attributed (%s; candidates: %s): %s",
                conn.proxy.name,
                short,
                result.how,
                ", ".join(str(k) for k in result.candidates) or "none",
                event.message,
            )
            return
        config = result.config
        log.info("NACK from %s on %s attributed to %s (%s)", conn.proxy.name, short,
                 config.key, result.how)  # fmt: skip
        if self._revert == "none" or (
            self._revert == "authenticated" and conn.proxy.identity is None
        ):
            log.warning(
                "NACK from %s on %s: %s is not reverted (the proxy is %s; "
                "PILOT_REVERT_REJECTED_CONFIG=%s): %s",
                conn.proxy.name,
                short,
                config.key,
                "unauthenticated" if conn.proxy.identity is None else "authenticated",
                self._revert,
                event.message,
            )
            return
        rejection = Rejection(
            config.key,
            object_version(config),
            event.message,
            conn.proxy.name,
            event.type_url,
            event.at,
        )
        self._on_rejected(config, rejection)

    def disconnected(self, conn: Connection) -> None:
        self._streams.pop(conn.id, None)

    # ---- helpers ---------------------------------------------------------------------------

    def _keep_context(self, push: PushContext) -> None:
        if push.version in self._contexts:
            return
        # Without its memo: what attribution needs is the snapshot's inputs (object versions)
        # and a fresh build on a NACK; the memo (every generated answer) would hold hundreds of
        # MB per snapshot at 1,000 services.
        self._contexts[push.version] = push.without_memo()
        while len(self._contexts) > MAX_CONTEXTS:
            self._contexts.popitem(last=False)


def _changed_since_accepted(
    responses: list[_Response], index: int, forgotten: bool
) -> frozenset[ConfigKey] | None:
    """The push keys of `responses[index]` and of every response since the last ACKed one
    before it; None when unknown."""
    keys: set[ConfigKey] = set()
    for i in range(index, -1, -1):
        response = responses[i]
        if i != index and response.acked:
            return frozenset(keys)
        if response.keys is None:
            return None
        keys |= response.keys
    return None if forgotten else frozenset(keys)


def _provenance(
    conn: Connection, push: PushContext, type_url: str, names: tuple[str, ...]
) -> frozenset[ConfigKey] | None:
    """The objects named by the provenance metadata of the rejected resources, regenerated
    for this proxy from the PushContext they were built from."""
    message_type = _MESSAGES.get(type_url)
    generator = conn.generators.get(type_url)
    if message_type is None or generator is None or not names:
        return None
    wanted = frozenset(names)
    messages = []
    for resource in generator.generate(proxy_view(conn.proxy, push), wanted):
        if resource.name in wanted:
            message = message_type()
            resource.unpack().Unpack(message)
            messages.append(message)
    return provenance_keys(messages)
