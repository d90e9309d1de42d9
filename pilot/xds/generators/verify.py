"""Cache verification mode (UNSAFE_PILOT_XDS_CACHE_VERIFY): every answer a generator gives from
shared, memoized work is recomputed from scratch — on a copy of the snapshot with nothing
memoized and a freshly derived proxy view — and compared by resource names and content
versions. A difference is a cache-key bug (a resource reused for a proxy whose inputs differ):
it raises, naming the type, the proxy and the resources that differ, instead of sending
another proxy's config. Expensive; for tests and investigations, never for production.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from pilot.model.proxy_view import ProxyView, proxy_view
from pilot.model.push_request import PushRequest
from pilot.xds.generators.base import Generator
from pilot.xds.wire import BuiltResource
from pkg.xds import typeurls

log = logging.getLogger(__name__)

# What the log says when verification fails (test harnesses look for it).
MISMATCH_MARKER = "xDS cache verification failed"


class CacheMismatchError(AssertionError):
    """A cached answer differs from the one computed from scratch."""


class VerifyingGenerator:
    def __init__(self, inner: Generator) -> None:
        self.inner = inner
        self.type_url = inner.type_url

    def needs_push(self, req: PushRequest) -> bool:
        return self.inner.needs_push(req)

    def generate(self, view: ProxyView, names: frozenset[str] | None) -> Sequence[BuiltResource]:
        cached = self.inner.generate(view, names)
        fresh_view = proxy_view(view.proxy, view.push.without_memo())
        fresh = self.inner.generate(fresh_view, names)
        got = {r.name: r.version for r in cached}
        want = {r.name: r.version for r in fresh}
        if got != want or len(cached) != len(fresh):
            differ = sorted(n for n in got.keys() | want.keys() if got.get(n) != want.get(n))
            message = (
                f"{self.type_url} for {view.proxy.id}: cached answer differs from a fresh "
                f"build in {differ[:10]} ({len(differ)} resources)"
            )
            log.error("%s: %s", MISMATCH_MARKER, message)
            raise CacheMismatchError(message)
        return cached


def verifying(generators: Mapping[str, Generator]) -> dict[str, Generator]:
    """Wrap the generators whose answers come from shared caches. SDS is left alone: it is not
    cached, and a certificate renewed between the two builds would be a false alarm."""
    return {
        url: g if url == typeurls.SECRET else VerifyingGenerator(g) for url, g in generators.items()
    }
