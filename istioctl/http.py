"""How istioctl talks HTTP to istiod and to Envoy's admin API (standard library only).

Every request goes through `OPENER`: `*_proxy` environment variables are ignored (istiod and
Envoy are dialled directly, as Envoy dials istiod) and redirects are never followed (a redirect
could carry an admin credential elsewhere; a 3xx surfaces as an HTTPError). `reason` turns a
failure into the short text error messages quote.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError


OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def reason(err: BaseException) -> str:
    """What went wrong, in a few words ("Connection refused", "timed out", ...)."""
    if isinstance(err, urllib.error.URLError) and not isinstance(err.reason, str):
        err = err.reason
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, OSError) and err.strerror:
        return str(err.strerror)
    return str(err) or type(err).__name__
