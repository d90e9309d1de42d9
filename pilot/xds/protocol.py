"""The xDS request state machine, free of sockets and generators (sans-IO).

`classify_sotw` and `classify_delta` take the per-type `WatchState` of a stream and one request,
update the state, and say what the request was and which names (if any) need a response. What
they encode is measured behaviour of Envoy 1.40 and grpcio (../shared/reference/
envoy-xds-field-notes.md) and Istio's `ShouldRespond`:

- a request whose nonce is not the latest we sent is STALE and ignored (SotW);
- `error_detail` makes a NACK: recorded, never answered (an answer would loop);
- the latest nonce without an error is an ACK; its resource names are still compared, because
  subscription changes ride on ACKs;
- names added to a non-wildcard subscription are answered; names removed are forgotten (and,
  in Delta, their sent versions too, so a later re-subscription is answered).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sized
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pilot.xds.wire import VersionMap
from pkg.xds.typeurls import WILDCARD_TYPES

WILDCARD_NAME = "*"


class RequestKind(Enum):
    INITIAL = "initial"  # first request of this type on the stream
    ACK = "ack"
    NACK = "nack"
    STALE = "stale"  # a nonce that is not the latest: ignored
    UPDATE = "update"  # subscription change (or a request with no nonce)
    UNSUBSCRIBE = "unsubscribe"  # SotW: empty names on a non-wildcard type


@dataclass(slots=True)
class NackInfo:
    nonce: str
    version: str
    message: str
    code: int
    at: float
    # Delta: the names carried by the rejected response (empty when unknown).
    names: tuple[str, ...] = ()


@dataclass(slots=True)
class WatchState:
    """What one stream subscribed to and was sent, for one type. Owned by one connection."""

    type_url: str
    wildcard: bool = False
    names: set[str] = field(default_factory=set)
    # name → version of everything sent on this stream (what the proxy has or is applying),
    # with the running hash sum that makes its set version free to read.
    sent: VersionMap = field(default_factory=VersionMap)
    nonce_sent: str = ""
    nonce_acked: str = ""
    version_sent: str = ""  # SotW version_info of the last response
    version_acked: str = ""
    last_sent_at: float = 0.0
    last_acked_at: float = 0.0
    # time.time() at which the proxy, on this stream's first request, presented exactly the
    # current version and so was sent nothing: in sync although no nonce was ever sent.
    in_sync_since: float = 0.0
    nack: NackInfo | None = None
    # Names that must be answered on the next generation even if unchanged (EDS of clusters that
    # were just re-sent: they warm again and wait for their load assignment).
    force: set[str] = field(default_factory=set)
    # Delta: nonce → names carried by that response (to attribute ACK/NACK).
    outstanding: dict[str, tuple[str, ...]] = field(default_factory=dict)
    requests: int = 0
    # SotW: a comparable form of the `resource_names` list (in the client's order) of the last
    # request that set `names`, so an ACK repeating the list is recognised by one comparison.
    names_key: object = None
    # Derived from `names`, built on first use and dropped by `names_changed()`.
    _frozen: frozenset[str] | None = None
    _by_host: dict[str, tuple[str, ...]] | None = None

    def names_changed(self) -> None:
        self._frozen = None
        self._by_host = None

    def frozen_names(self) -> frozenset[str]:
        """`names` as a frozenset, shared by every push until the subscription changes."""
        if self._frozen is None:
            self._frozen = frozenset(self.names)
        return self._frozen

    def names_by_host(self) -> dict[str, tuple[str, ...]]:
        """Subscribed cluster names (`outbound|port|subset|host`) by host, for incremental EDS
        (shared between streams subscribed to the same names)."""
        if self._by_host is None:
            self._by_host = _names_by_host(self.frozen_names())
        return self._by_host

    @property
    def synced(self) -> bool:
        return bool(self.nonce_sent) and self.nonce_sent == self.nonce_acked


_BY_HOST_CACHE: dict[frozenset[str], dict[str, tuple[str, ...]]] = {}
_BY_HOST_CACHE_SIZE = 64


def _names_by_host(names: frozenset[str]) -> dict[str, tuple[str, ...]]:
    cached = _BY_HOST_CACHE.get(names)
    if cached is not None:
        return cached
    index: dict[str, list[str]] = {}
    for name in names:
        if name.count("|") == 3:
            index.setdefault(name.rsplit("|", 1)[1], []).append(name)
    out = {host: tuple(found) for host, found in index.items()}
    if len(_BY_HOST_CACHE) >= _BY_HOST_CACHE_SIZE:
        del _BY_HOST_CACHE[next(iter(_BY_HOST_CACHE))]  # drop the oldest
    _BY_HOST_CACHE[names] = out
    return out


@dataclass(frozen=True, slots=True)
class Decision:
    kind: RequestKind
    # Respond at all? For SotW wildcard types a response is always the full set.
    respond: bool
    # Names the client newly asked for (empty for wildcard / nothing new).
    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()


def _is_wildcard_request(type_url: str, names: Iterable[str], first: bool) -> bool:
    names = list(names)
    if WILDCARD_NAME in names:
        return True
    return first and not names and type_url in WILDCARD_TYPES


def classify_sotw(
    state: WatchState | None,
    *,
    type_url: str,
    names: Iterable[str],
    nonce: str,
    version: str,
    error_message: str = "",
    error_code: int = 0,
    now: float | None = None,
    names_key: object = None,
) -> tuple[WatchState, Decision]:
    """Classify one SotW DiscoveryRequest and update (or create) the watch state.
    `names_key`, if given, is any value that compares equal exactly when two requests carry
    the same list of names in the same order (the connection passes the request message
    stripped down to its names: compared at C speed)."""
    at = time.monotonic() if now is None else now
    if (
        state is not None
        and nonce
        and nonce == state.nonce_sent
        and not (error_message or error_code)
        and _same_names(state, names, names_key)
    ):
        # The common case, an ACK of the latest response for the same subscription: no set
        # arithmetic over (possibly thousands of) names.
        state.requests += 1
        state.nonce_acked = nonce
        state.last_acked_at = at
        if version == state.version_sent:
            state.version_acked = version
        state.nack = None
        return state, Decision(RequestKind.ACK, bool(state.force))
    requested = set(names)
    if state is None:
        state = WatchState(type_url=type_url)
        state.wildcard = _is_wildcard_request(type_url, requested, first=True)
        state.names = requested - {WILDCARD_NAME}
        state.names_key = names_key
        state.requests = 1
        return state, Decision(RequestKind.INITIAL, True, state.frozen_names())
    state.requests += 1
    if nonce and nonce != state.nonce_sent:
        return state, Decision(RequestKind.STALE, False)
    if error_message or error_code:
        # Never answered, even without a nonce (Istio's ShouldRespond checks the error first):
        # answering a NACK a client cannot attribute would let it drive a push loop.
        state.nack = NackInfo(nonce, version, error_message, error_code, at)
        return state, Decision(RequestKind.NACK, False)
    kind = RequestKind.UPDATE
    if nonce:
        # The latest nonce and no error: an ACK (grpc sometimes sends the latest nonce with an
        # older version while changing its subscription; treat the version with care).
        kind = RequestKind.ACK
        state.nonce_acked = nonce
        state.last_acked_at = at
        if version == state.version_sent:
            state.version_acked = version
        state.nack = None
    wildcard = WILDCARD_NAME in requested or (state.wildcard and not requested)
    requested.discard(WILDCARD_NAME)
    if not wildcard and not requested and type_url not in WILDCARD_TYPES:
        removed = frozenset(state.names)
        state.names.clear()
        state.names_changed()
        state.wildcard = False
        for name in removed:
            state.sent.pop(name, None)
        return state, Decision(RequestKind.UNSUBSCRIBE, False, removed=removed)
    added = frozenset(requested - state.names)
    removed = frozenset(state.names - requested)
    wildcard_changed = wildcard != state.wildcard
    state.wildcard = wildcard
    if added or removed:
        state.names = requested
        state.names_changed()
    state.names_key = names_key
    for name in removed:
        state.sent.pop(name, None)
    respond = bool(added) or wildcard_changed or (not nonce) or bool(state.force)
    if state.wildcard and (removed or added):
        respond = True
    return state, Decision(kind, respond, added, removed)


def _same_names(state: WatchState, names: Iterable[str], key: object = None) -> bool:
    """Whether a request names exactly the current subscription: the same encoded list as the
    request that set it (one bytes comparison: Envoy repeats its list in the same order), or
    else C-speed set checks."""
    if state.wildcard:
        return False
    if key is not None and key == state.names_key:
        return True
    if not isinstance(names, Sized) or len(names) != len(state.names):
        return False
    if state.names.issuperset(names):
        state.names_key = key
        return True
    return False


def classify_delta(
    state: WatchState | None,
    *,
    type_url: str,
    subscribe: Iterable[str],
    unsubscribe: Iterable[str],
    initial_versions: Mapping[str, str],
    nonce: str,
    error_message: str = "",
    error_code: int = 0,
    now: float | None = None,
) -> tuple[WatchState, Decision]:
    """Classify one DeltaDiscoveryRequest and update (or create) the watch state."""
    at = time.monotonic() if now is None else now
    sub = set(subscribe)
    unsub = set(unsubscribe)
    if state is None:
        state = WatchState(type_url=type_url)
        state.wildcard = _is_wildcard_request(type_url, sub, first=True)
        state.names = sub - {WILDCARD_NAME}
        # What the client says it has (reconnect): treat as sent, so equal versions are skipped.
        state.sent = VersionMap(initial_versions.items())
        state.requests = 1
        return state, Decision(RequestKind.INITIAL, True, state.frozen_names())
    state.requests += 1
    kind = RequestKind.UPDATE
    if error_message or error_code:
        # A NACK, with or without a nonce: never answered (only names it newly subscribes).
        carried = state.outstanding.pop(nonce, ()) if nonce else ()
        state.nack = NackInfo(nonce, "", error_message, error_code, at, carried)
        kind = RequestKind.NACK
    elif nonce:
        state.outstanding.pop(nonce, None)
        if nonce == state.nonce_sent or not state.outstanding:
            state.nonce_acked = nonce
            state.last_acked_at = at
            state.nack = None
        kind = RequestKind.ACK
    if WILDCARD_NAME in sub:
        state.wildcard = True
        sub.discard(WILDCARD_NAME)
    if WILDCARD_NAME in unsub:
        state.wildcard = False
        unsub.discard(WILDCARD_NAME)
    added = frozenset(sub - state.names) if not state.wildcard else frozenset(sub)
    if sub or unsub:
        state.names |= sub
        state.names -= unsub
        state.names_changed()
    for name in unsub:
        state.sent.pop(name, None)
    # Explicitly (re-)subscribed names are always answered: the client asked for them.
    for name in sub:
        state.sent.pop(name, None)
    respond = bool(sub)
    if kind is RequestKind.NACK:
        respond = respond and bool(added)
    if not nonce and not sub and not unsub and kind is not RequestKind.NACK:
        respond = True
    return state, Decision(kind, respond, added, frozenset(unsub))


def names_key(request: Any) -> Any:
    """A SotW request reduced to its type URL and resource_names (the other fields must have
    been read already: they are cleared), for `classify_sotw`'s `names_key`: protobuf equality
    runs in C, with no Python string per name, so the ACK of a push to a proxy subscribed to a
    thousand clusters costs microseconds. Small lists need no key (None)."""
    if len(request.resource_names) < 8:
        return None
    for name in ("node", "version_info", "response_nonce", "error_detail"):
        request.ClearField(name)
    return request
