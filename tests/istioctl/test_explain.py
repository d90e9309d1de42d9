"""`istioctl x explain`: the request JSON it sends istiod (method, URL, -H headers, source,
port), flag errors (exit 2), istiod's errors (exit 1), and the table naming each step's Istio
object, against a scripted istiod /debug/explain."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from istioctl.cli import build_parser
from istioctl.experimental import explain as cmd

ANSWER: dict[str, Any] = {
    "proxy": "sidecar~10.0.0.1~productpage-v1.default~default.svc.cluster.local",
    "request": {"method": "GET", "url": "http://reviews:9080/api",
                "headers": {"end-user": "jason"}},
    "steps": [
        {"step": "listener", "name": "0.0.0.0_9080", "detail": "outbound call", "source": ""},
        {"step": "route (no match)", "name": "fault", "source": "VirtualService/default/reviews",
         "detail": "path /api does not match prefix /fault"},
        {"step": "route", "name": "jason", "source": "VirtualService/default/reviews",
         "detail": "match header end-user exact \"jason\" → route"},
        {"step": "cluster", "name": "outbound|9080|v2|reviews.default.svc.cluster.local",
         "source": "DestinationRule/default/reviews", "detail": "subset v2"},
    ],
    "outcome": {"kind": "backend", "status": 0, "reason": "forwarded upstream",
                "clusters": ["outbound|9080|v2|reviews.default.svc.cluster.local"],
                "endpoints": ["10.1.0.2:9080"], "faultStatuses": [503]},
}  # fmt: skip


class _Istiod(ThreadingHTTPServer):
    answer: tuple[int, Any] = (200, ANSWER)
    received: list[tuple[dict[str, list[str]], Any]]


class _Handler(BaseHTTPRequestHandler):
    server: _Istiod

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        self.server.received.append((parse_qs(parts.query), body))
        status, answer = self.server.answer
        data = json.dumps(answer).encode()
        self.send_response(status if parts.path == "/debug/explain" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def istiod() -> Iterator[_Istiod]:
    server = _Istiod(("127.0.0.1", 0), _Handler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def call(istiod: _Istiod | None, *argv: str) -> tuple[int, str, str]:
    url = f"http://127.0.0.1:{istiod.server_address[1]}" if istiod else "http://127.0.0.1:1"
    args = build_parser().parse_args(["x", "explain", *argv, "--istiod", url])
    out, err = io.StringIO(), io.StringIO()
    code = cmd.main(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_sends_the_request_and_prints_each_step_with_its_object(istiod: _Istiod) -> None:
    code, out, err = call(
        istiod,
        "productpage-v1.default",
        "get http://reviews:9080/api",
        "-H",
        "End-User: jason",
        "--source-principal",
        "spiffe://cluster.local/ns/default/sa/productpage",
        "--source-ip",
        "10.0.0.7",
        "--port",
        "15001",
    )
    assert code == 0, err
    query, body = istiod.received[0]
    assert query == {"proxyID": ["productpage-v1.default"]}
    assert body == {
        "method": "GET",
        "url": "http://reviews:9080/api",
        "headers": {"end-user": "jason"},
        "sourcePrincipal": "spiffe://cluster.local/ns/default/sa/productpage",
        "sourceIP": "10.0.0.7",
        "port": 15001,
    }
    lines = out.splitlines()
    assert lines[0].startswith("Proxy:    sidecar~10.0.0.1~productpage-v1.default")
    header = next(line for line in lines if line.startswith("STEP"))
    assert header.split() == ["STEP", "NAME", "FROM", "DETAIL"]
    route = next(line for line in lines if line.startswith("route  "))
    assert "jason" in route and "VirtualService/default/reviews" in route
    assert any("DestinationRule/default/reviews" in line for line in lines)
    assert lines[-1] == (
        "Outcome:  backend: outbound|9080|v2|reviews.default.svc.cluster.local → 10.1.0.2:9080"
        " (or a fault abort: 503)"
    )


def test_json_output_is_istiods_answer(istiod: _Istiod) -> None:
    code, out, _ = call(istiod, "a.default", "http://reviews/", "-o", "json", "--inbound")
    assert code == 0
    assert json.loads(out) == ANSWER
    assert istiod.received[0][1]["inbound"] is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["a.default", "GET http://x/ extra"], "is not '[METHOD] URL'"),
        (["a.default", "http://x/", "-H", "no-colon"], '-H "no-colon"'),
        (["a.default", "http://x/", "--port", "70000"], "--port 70000"),
    ],
)
def test_bad_flags_exit_2(argv: list[str], message: str) -> None:
    code, _, err = call(None, *argv)
    assert code == 2 and message in err, err


def test_istiod_errors_exit_1(istiod: _Istiod) -> None:
    istiod.answer = (404, {"error": "proxy nobody.default is not connected to this istiod"})
    code, _, err = call(istiod, "nobody.default", "http://reviews/")
    assert code == 1
    assert err == "Error: proxy nobody.default is not connected to this istiod\n"
    code, _, err = call(None, "a.default", "http://reviews/")
    assert code == 1 and "cannot reach http://127.0.0.1:1" in err, err
