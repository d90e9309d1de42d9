"""Watch streams of the fake API server: event selection, bookmarks, drops, timeouts.

A stream is a loop under the store's condition variable: take the events after the cursor
that concern the watched resource and pass its filter, write them, wait for the next write (or
a bookmark request, a drop, the timeout). A cursor older than the store's compaction point gets
one ERROR event with a 410 Expired Status, as the real watch cache answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.helpers.kube.resources import Resource
from tests.helpers.kube.store import ApiError, Filter, Obj, Store

Write = Callable[[Obj | None], None]  # writes one event; None ends the stream


class Watches:
    """All watch streams of one server, and the test's controls over them."""

    def __init__(self, store: Store, bookmark_interval: float | None = None) -> None:
        self.store = store
        self.bookmark_interval = bookmark_interval
        self._drops = 0  # generation counters, read under store.changed
        self._bookmarks = 0
        self._open = 0
        self._abrupt = False  # how the last drop ends streams

    def drop(self, abrupt: bool = False) -> None:
        with self.store.changed:
            self._drops += 1
            self._abrupt = abrupt
            self.store.changed.notify_all()

    def bookmark(self) -> None:
        with self.store.changed:
            self._bookmarks += 1
            self.store.changed.notify_all()

    @property
    def open(self) -> int:
        with self.store.changed:
            return self._open

    def wait_for(self, count: int, timeout: float) -> None:
        with self.store.changed:
            ok = self.store.changed.wait_for(lambda: self._open >= count, timeout)
        if not ok:
            raise TimeoutError(f"{self._open} watches open, wanted {count}")

    def serve(
        self, write: Write, r: Resource, version: str, f: Filter, query: dict[str, Any]
    ) -> bool:
        """Stream events until dropped, timed out or expired (blocks the calling thread).

        False: an abrupt drop; the caller resets the connection instead of ending the body.
        """
        store = self.store
        bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        interval = self.bookmark_interval
        next_bookmark = time.monotonic() + interval if interval else float("inf")
        pending: list[Obj] = []
        with store.changed:
            drops, marks = self._drops, self._bookmarks
            requested = query.get("resourceVersion", "")
            if requested in ("", "0"):  # synthetic ADDED events of the current state first
                cursor, objs = store.snapshot(r, f)
                pending = [{"type": "ADDED", "object": r.typed(o, version)} for o in objs]
            else:
                cursor = int(requested)
            self._open += 1
            store.changed.notify_all()
        dropped = False
        try:
            end = False
            while not end:
                for event in pending:
                    write(event)
                pending = []
                with store.changed:
                    while not pending and not end:
                        try:
                            events = store.events_after(cursor)
                        except ApiError as e:
                            pending.append({"type": "ERROR", "object": e.status(r.group)})
                            end = True
                            break
                        for ev in events:
                            kind = ev.type_for(f) if ev.resource == r else None
                            if kind is not None:
                                obj = r.typed(dict(ev.new), version)
                                pending.append({"type": kind, "object": obj})
                        cursor = store.rv
                        now = time.monotonic()
                        dropped = self._drops != drops
                        end = dropped or now >= deadline
                        mark = self._bookmarks != marks or now >= next_bookmark
                        if bookmarks and (mark or (end and not dropped)):
                            meta = {"resourceVersion": str(cursor)}
                            obj = r.typed({"metadata": meta}, version)
                            pending.append({"type": "BOOKMARK", "object": obj})
                        if mark:
                            marks = self._bookmarks
                            next_bookmark = now + interval if interval else float("inf")
                        if not pending and not end:
                            store.changed.wait(min(deadline, next_bookmark) - now)
            if dropped and self._abrupt:
                return False
            for event in pending:
                write(event)
            write(None)
            return True
        finally:
            with store.changed:
                self._open -= 1
                store.changed.notify_all()
