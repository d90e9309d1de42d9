"""Where proxy-config reads from: exactly one of

- `--admin URL`: an Envoy admin API (`GET URL/config_dump`, with `?include_eds` when load
  assignments are needed, and `GET URL/clusters?format=json` for live endpoints);
- `-f FILE`: a saved config dump (`curl :15000/config_dump > FILE`; `-` for stdin), or for
  `endpoint` a saved `/clusters?format=json`;
- `--istiod URL` with a PROXY: istiod's `GET URL/debug/config_dump?proxyID=PROXY`, the
  configuration istiod would send that proxy now; with `--at TIME|DURATION|VERSION`,
  `GET URL/debug/history?proxyID=PROXY&dump&...`: what istiod had sent it then (at.py).

HTTP is the standard library's: requests time out, never follow redirects and ignore
`*_proxy` environment variables. Every failure is a SourceError whose message names the flag
and the URL or file.
"""

from __future__ import annotations

import http.client
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from istioctl.http import OPENER, reason
from istioctl.proxyconfig.at import At, HistoryError, fetch_dump
from pkg.version import VERSION

DEFAULT_TIMEOUT = 10.0
MAX_BODY = 256 << 20
_EXCERPT = 200


class SourceError(Exception):
    """Reading the source failed; the message says which and why, for the user."""


class Source(Protocol):
    def describe(self) -> str:
        """The flag and its value, for messages (e.g. `--admin http://...`)."""
        ...

    def config_dump(self, include_eds: bool = False) -> Any:
        """The config dump, decoded from JSON (not yet checked to be one)."""
        ...

    def cluster_statuses(self) -> Any | None:
        """Envoy's `/clusters?format=json` answer, or None when this source has none."""
        ...


def normalize_url(flag: str, url: str) -> str:
    """`url` without a trailing slash; `HOST:PORT` gets `http://`. ValueError naming `flag`
    when it is no http(s) URL."""
    text = url.strip()
    if text and "://" not in text:
        text = "http://" + text
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"{flag}: expected a URL such as http://127.0.0.1:15000, got {url!r}")
    try:
        parsed.port  # noqa: B018 - validates the port
    except ValueError:
        raise ValueError(f"{flag}: bad port in {url!r}") from None
    return text.rstrip("/")


@dataclass(frozen=True)
class AdminSource:
    url: str
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        return f"--admin {self.url}"

    def config_dump(self, include_eds: bool = False) -> Any:
        path = "/config_dump?include_eds" if include_eds else "/config_dump"
        return _get_json(self.describe(), self.url + path, self.timeout, "Envoy")

    def cluster_statuses(self) -> Any | None:
        return _get_json(self.describe(), self.url + "/clusters?format=json", self.timeout, "Envoy")


@dataclass(frozen=True)
class IstiodSource:
    url: str
    proxy: str
    timeout: float = DEFAULT_TIMEOUT
    # `--at`: what istiod sent the proxy then (its history, at.py), not what it would now.
    at: At | None = None

    def describe(self) -> str:
        return f"--istiod {self.url}"

    def config_dump(self, include_eds: bool = False) -> Any:
        if self.at is not None:
            try:
                return fetch_dump(self.url, self.proxy, self.at, include_eds, self.timeout).data
            except HistoryError as err:
                raise SourceError(f"--at {self.at.text}: {err}") from None
        query = {"proxyID": self.proxy}
        if include_eds:
            query["include_eds"] = "true"
        url = f"{self.url}/debug/config_dump?{urllib.parse.urlencode(query)}"
        return _get_json(self.describe(), url, self.timeout, "istiod", proxy=self.proxy)

    def cluster_statuses(self) -> Any | None:
        return None


@dataclass(frozen=True)
class FileSource:
    path: str

    def describe(self) -> str:
        return f"-f {self.path}"

    @cached_property
    def _data(self) -> Any:
        """The file's JSON, read once (stdin can be read only once)."""
        try:
            if self.path == "-":
                data = sys.stdin.buffer.read()
            else:
                data = Path(self.path).read_bytes()
        except FileNotFoundError:
            raise SourceError(f"-f {self.path}: no such file") from None
        except OSError as err:
            raise SourceError(f"-f {self.path}: cannot read it: {err.strerror or err}") from None
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise SourceError(f"-f {self.path}: not JSON ({err})") from None

    def config_dump(self, include_eds: bool = False) -> Any:
        return self._data

    def cluster_statuses(self) -> Any | None:
        data = self._data
        if isinstance(data, dict) and "cluster_statuses" in data and "configs" not in data:
            return data
        return None


# -- HTTP --------------------------------------------------------------------------------


def _get_json(flag: str, url: str, timeout: float, server: str, proxy: str = "") -> Any:
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": f"istioctl/{VERSION}"}
    )
    try:
        with OPENER.open(request, timeout=timeout) as response:
            status, body = response.status, _read(flag, url, response)
    except urllib.error.HTTPError as err:
        try:
            status, body = err.code, _read(flag, url, err)
        finally:
            err.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise SourceError(f"{flag}: cannot reach {url}: {reason(err)}") from None
    if status != 200:
        text = _excerpt(body)
        if server == "istiod" and status == 404:
            raise SourceError(
                f"{flag}: istiod has no proxy {proxy!r} connected (HTTP 404 from {url}: {text})"
            )
        raise SourceError(f"{flag}: {server} answered HTTP {status} for {url}: {text}")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SourceError(f"{flag}: {url} did not answer JSON ({err})") from None


def _read(flag: str, url: str, response: Any) -> bytes:
    body: bytes = response.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise SourceError(f"{flag}: the answer from {url} is over {MAX_BODY >> 20} MiB")
    return body


def _excerpt(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return (text[:_EXCERPT] + "…" if len(text) > _EXCERPT else text) or "(empty body)"
