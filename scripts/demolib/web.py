"""The one HTTP client call the demo makes: GET, read the whole reply, close."""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(
    host: str, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> Reply:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        resp = conn.getresponse()
        body = resp.read()
        return Reply(resp.status, body, {k.lower(): v for k, v in resp.getheaders()})
    finally:
        conn.close()


def split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)
