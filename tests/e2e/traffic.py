"""Test traffic: single requests, bounded request batches and a bounded load generator.

Everything uses `http.client` directly, which never consults HTTP_PROXY / http_proxy /
NO_PROXY (only urllib does), so a proxy in the environment cannot intercept loopback tests.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Headers = dict[str, str]
BACKEND_HEADER = "x-backend"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Headers  # lower-cased names; repeated headers joined with ", "

    def json(self) -> Any:
        return json.loads(self.body)

    def parsed(self) -> Any:
        """The body as JSON when it says (or looks like) JSON, else as text."""
        text = self.body.decode("utf-8", "replace")
        if "json" in self.headers.get("content-type", "") or text[:1] in ("{", "["):
            try:
                return json.loads(text)
            except ValueError:
                pass
        return text


def _headers(resp: http.client.HTTPResponse) -> Headers:
    out: Headers = {}
    for name, value in resp.getheaders():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def request_on(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    *,
    host: str | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> Response:
    """One request on an open (possibly keep-alive) connection."""
    hdrs = dict(headers or {})
    if host is not None:
        hdrs["Host"] = host
    conn.request(method, path, body=body, headers=hdrs)
    resp = conn.getresponse()
    data = resp.read()
    return Response(resp.status, data, _headers(resp))


def request(
    ip: str,
    port: int,
    method: str = "GET",
    path: str = "/",
    *,
    host: str | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 2.0,
) -> Response:
    """One request on a fresh connection (closed afterwards)."""
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        return request_on(conn, method, path, host=host, headers=headers, body=body)
    finally:
        conn.close()


def http_get(
    ip: str,
    port: int,
    path: str = "/",
    host: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 2.0,
) -> tuple[int, Any, Headers]:
    """GET → (status, body parsed as JSON or text, lower-cased headers)."""
    resp = request(ip, port, "GET", path, host=host, headers=headers, timeout=timeout)
    return resp.status, resp.parsed(), resp.headers


def outcome_key(resp: Response) -> str:
    """What a request "hit": the backend name on 200, else `<status>`."""
    if resp.status == 200 and BACKEND_HEADER in resp.headers:
        return resp.headers[BACKEND_HEADER]
    return f"<{resp.status}>"


def count_backends(
    ip: str,
    port: int,
    n: int,
    host: str | None = None,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    timeout: float = 2.0,
) -> Counter[str]:
    """Send `n` GETs over keep-alive and count them by backend name (`x-backend`).

    Non-200 answers count as `<STATUS>`, transport failures as `<error:ExceptionName>` (the
    connection is then reopened). Bounded: n requests, each with `timeout`.
    """
    counts: Counter[str] = Counter()
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        for _ in range(n):
            try:
                resp = request_on(conn, "GET", path, host=host, headers=headers)
            except (OSError, http.client.HTTPException) as err:
                counts[f"<error:{type(err).__name__}>"] += 1
                conn.close()
                conn = http.client.HTTPConnection(ip, port, timeout=timeout)
                continue
            counts[outcome_key(resp)] += 1
            if resp.headers.get("connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    finally:
        conn.close()
    return counts


@dataclass(frozen=True)
class Sample:
    started: float  # time.monotonic()
    finished: float
    status: int | None  # None on a transport failure
    backend: str | None  # x-backend of the answer
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def __str__(self) -> str:
        what = self.error if self.status is None else f"{self.status} {self.backend or ''}"
        return f"t={self.started:.3f} ({(self.finished - self.started) * 1000:.1f} ms) {what}"


class LoadGenerator(threading.Thread):
    """Sends GETs at `rate` per second for at most `duration` seconds over keep-alive.

    Bounded in count (rate * duration requests at most) and time. Every request is recorded as
    a Sample. Use as a context manager (stops and joins on exit) or start()/stop().
    """

    def __init__(
        self,
        ip: str,
        port: int,
        *,
        rate: float = 50.0,
        duration: float = 10.0,
        host: str | None = None,
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        timeout: float = 2.0,
    ) -> None:
        super().__init__(name=f"load-{ip}:{port}", daemon=True)
        if rate <= 0 or duration <= 0:
            raise ValueError("rate and duration must be positive")
        self.ip, self.port, self.rate, self.duration = ip, port, rate, duration
        self.host, self.path, self.timeout = host, path, timeout
        self.headers = dict(headers or {})
        self.max_requests = int(rate * duration)
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._samples: list[Sample] = []

    def run(self) -> None:
        begin = time.monotonic()
        conn = http.client.HTTPConnection(self.ip, self.port, timeout=self.timeout)
        try:
            for i in range(self.max_requests):
                due = begin + i / self.rate
                if self._stop_event.wait(max(0.0, due - time.monotonic())):
                    break
                if time.monotonic() - begin > self.duration:
                    break
                sample, conn = self._one(conn)
                with self._lock:
                    self._samples.append(sample)
        finally:
            conn.close()

    def _one(self, conn: http.client.HTTPConnection) -> tuple[Sample, http.client.HTTPConnection]:
        started = time.monotonic()
        try:
            resp = request_on(conn, "GET", self.path, host=self.host, headers=self.headers)
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            fresh = http.client.HTTPConnection(self.ip, self.port, timeout=self.timeout)
            error = f"{type(err).__name__}: {err}"
            return Sample(started, time.monotonic(), None, None, error), fresh
        sample = Sample(
            started, time.monotonic(), resp.status, resp.headers.get(BACKEND_HEADER), None
        )
        return sample, conn

    def stop(self, timeout: float = 10.0) -> None:
        self._stop_event.set()
        self.join(timeout)
        if self.is_alive():
            raise RuntimeError(f"{self.name} did not stop within {timeout}s")

    def wait_done(self, timeout: float | None = None) -> None:
        """Wait for the run to finish by itself (duration elapsed)."""
        self.join(self.duration + self.timeout + 5.0 if timeout is None else timeout)
        if self.is_alive():
            raise RuntimeError(f"{self.name} still running")

    @property
    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def failures(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    def statuses(self) -> Counter[str]:
        return Counter(str(s.status) if s.status is not None else "error" for s in self.samples)

    def backends(self) -> Counter[str]:
        return Counter(s.backend or "<none>" for s in self.samples if s.ok)

    def summary(self, limit: int = 20) -> str:
        samples = self.samples
        bad = [s for s in samples if not s.ok]
        lines = [f"{len(samples)} requests, {len(bad)} failed: {dict(self.statuses())}"]
        lines += [f"  {s}" for s in bad[:limit]]
        return "\n".join(lines)

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
