"""The seam through which the xDS server reports what happens on its streams: connects,
responses sent (with the push that caused them), ACKs, NACKs and disconnects, and pushes that
sent a proxy nothing (it was not concerned, or already up to date).

Observers (metrics, the push ledger, rejection tracking) subscribe to `XdsEvents` on the
`DiscoveryServer`; `Connection` calls it synchronously on the event loop that owns the stream,
so an observer must be quick and must not raise (a failing observer is logged and skipped:
observation never breaks a stream).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pilot.model.push_request import PushRequest

if TYPE_CHECKING:
    from pilot.xds.connection import Connection
    from pilot.xds.wire import BuiltResource

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Sent:
    """One response written to a stream."""

    type_url: str
    nonce: str
    version: str
    # Names of the resources carried, and of those removed (Delta).
    names: tuple[str, ...]
    removed: tuple[str, ...]
    size: int
    reason: str  # "request" | "push"
    # The push that caused it (None for a response to a request).
    push: PushRequest | None
    at: float  # time.time()
    # Seconds spent generating and encoding it (not writing it: the server times the write).
    elapsed: float = 0.0
    # The resources carried (a reference to the generated set, never a copy: history.py keeps
    # their bodies) and the version of the PushContext they were generated from.
    resources: Sequence[BuiltResource] = ()
    context: str = ""


@dataclass(frozen=True, slots=True)
class Acked:
    type_url: str
    nonce: str
    version: str
    at: float


@dataclass(frozen=True, slots=True)
class Nacked:
    type_url: str
    nonce: str
    version: str
    message: str
    code: int
    # Names carried by the rejected response, as sent (empty when no longer known).
    names: tuple[str, ...]
    at: float


@dataclass(frozen=True, slots=True)
class ExpiredNonce:
    """A SotW request whose nonce is not the latest sent (Istio's expired nonce): ignored."""

    type_url: str
    nonce: str
    at: float


class XdsObserver(Protocol):
    def connected(self, conn: Connection) -> None: ...

    def sent(self, conn: Connection, event: Sent) -> None: ...

    def acked(self, conn: Connection, event: Acked) -> None: ...

    def nacked(self, conn: Connection, event: Nacked) -> None: ...

    def expired_nonce(self, conn: Connection, event: ExpiredNonce) -> None: ...

    # A push that does not concern this proxy (proxy_dependencies.py): nothing was generated.
    def skipped(self, conn: Connection, push: PushRequest) -> None: ...

    # A push that concerns this proxy but changed nothing it has: no response was sent.
    def up_to_date(self, conn: Connection, push: PushRequest) -> None: ...

    def disconnected(self, conn: Connection) -> None: ...


class XdsEvents:
    """A fan-out to every subscribed observer. Observers implement only what they need: a
    missing method is skipped."""

    def __init__(self) -> None:
        self._observers: list[object] = []

    def subscribe(self, observer: object) -> None:
        self._observers.append(observer)

    def unsubscribe(self, observer: object) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def __bool__(self) -> bool:
        return bool(self._observers)

    def _emit(self, method: str, *args: object) -> None:
        for observer in self._observers:
            handler = getattr(observer, method, None)
            if handler is None:
                continue
            try:
                handler(*args)
            except Exception:  # an observer never breaks a stream
                log.exception("xDS observer %r failed in %s", observer, method)

    def connected(self, conn: Connection) -> None:
        self._emit("connected", conn)

    def sent(self, conn: Connection, event: Sent) -> None:
        self._emit("sent", conn, event)

    def acked(self, conn: Connection, event: Acked) -> None:
        self._emit("acked", conn, event)

    def nacked(self, conn: Connection, event: Nacked) -> None:
        self._emit("nacked", conn, event)

    def expired_nonce(self, conn: Connection, event: ExpiredNonce) -> None:
        self._emit("expired_nonce", conn, event)

    def skipped(self, conn: Connection, push: PushRequest) -> None:
        self._emit("skipped", conn, push)

    def up_to_date(self, conn: Connection, push: PushRequest) -> None:
        self._emit("up_to_date", conn, push)

    def disconnected(self, conn: Connection) -> None:
        self._emit("disconnected", conn)
