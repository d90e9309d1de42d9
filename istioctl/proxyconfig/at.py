"""Reading istiod's history of what a proxy was sent (`GET URL/debug/history`).

`--at`/`--from`/`--to` take one of:
- `now` (the latest snapshot);
- a duration ago, Go syntax (`10m`, `1h30m`, `90s`): istiod picks by its own clock;
- a time, RFC 3339 (`2026-11-22T11:40:00Z`, fractions and offsets allowed);
- a push version as `istioctl x history` lists it (`2026-11-22T11:40:00Z/42`): the snapshot
  of that push, or the latest before it (push versions end in a counter).

The config dump answered is exactly `/debug/config_dump?proxyID=`'s format, so the
proxy-config parsers read it unchanged; istiod names the snapshot it chose in the
`x-history-version` and `x-history-time` headers.
"""

from __future__ import annotations

import datetime
import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from istioctl.http import OPENER, reason
from pkg.version import VERSION

MAX_BODY = 256 << 20
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PUSH_VERSION = re.compile(r"^\S+/\d+(\+sds)?$")


class HistoryError(Exception):
    """istiod's history cannot answer; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class At:
    """A point in a proxy's history, as the query parameters istiod takes."""

    text: str
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, flag: str, text: str) -> At:
        """ValueError naming `flag` for anything that is neither time, duration nor version."""
        value = text.strip()
        if value.lower() == "now":
            return cls(value)
        if _PUSH_VERSION.match(value):
            return cls(value, (("version", value),))
        ago = _duration(value)
        if ago is not None:
            return cls(value, (("ago", f"{ago:g}"),))
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{flag}: expected a time (RFC 3339, e.g. 2026-11-22T11:40:00Z), a duration ago"
                f" (e.g. 10m) or a push version from `istioctl x history`, got {text!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return cls(value, (("time", f"{moment.timestamp():.6f}"),))


def _duration(text: str) -> float | None:
    if not text or _DURATION.sub("", text):
        return None
    return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))


@dataclass(frozen=True, slots=True)
class Dump:
    data: Any  # the config dump JSON
    version: str  # the push version of the snapshot istiod chose
    time: str


def fetch_dump(url: str, proxy: str, at: At, include_eds: bool, timeout: float) -> Dump:
    query = [("proxyID", proxy), ("dump", ""), *at.params]
    if include_eds:
        query.append(("include_eds", "true"))
    data, headers = _get(url, query, timeout)
    return Dump(data, headers.get("x-history-version", ""), headers.get("x-history-time", ""))


def fetch_timeline(url: str, proxy: str, timeout: float) -> Any:
    data, _ = _get(url, [("proxyID", proxy)], timeout)
    return data


def _get(url: str, query: list[tuple[str, str]], timeout: float) -> tuple[Any, dict[str, str]]:
    target = f"{url}/debug/history?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(
        target, headers={"Accept": "application/json", "User-Agent": f"istioctl/{VERSION}"}
    )
    try:
        with OPENER.open(request, timeout=timeout) as response:
            status, body = response.status, response.read(MAX_BODY + 1)
            headers = {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as err:
        try:
            status, body, headers = err.code, err.read(MAX_BODY + 1), {}
        finally:
            err.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise HistoryError(f"--istiod {url}: cannot reach {target}: {reason(err)}") from None
    if len(body) > MAX_BODY:
        raise HistoryError(f"--istiod {url}: the answer is over {MAX_BODY >> 20} MiB")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if status != 200:
        message = data.get("error") if isinstance(data, dict) else None
        text = message or body.decode("utf-8", "replace").strip()[:200] or "(empty body)"
        raise HistoryError(f"--istiod {url}: HTTP {status}: {text}")
    if data is None:
        raise HistoryError(f"--istiod {url}: {target} did not answer JSON")
    return data, headers
