"""`istioctl x trace`: argument forms (KIND/NS/NAME, KIND/NAME -n NS, any-case kinds, short
names), Go durations, the table, and --wait against a scripted istiod /debug/trace."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from istioctl.cli import build_parser
from istioctl.experimental import trace as cmd
from pkg.config.model import Kind


def report(**overrides: Any) -> dict[str, Any]:
    summary = {
        "proxies": 3,
        "pushed": 2,
        "acked": 2,
        "nacked": 0,
        "pending": 0,
        "upToDate": 0,
        "notConcerned": 1,
        "reverted": 0,
        "queued": 0,
        "unknown": 0,
        "connectedLater": 0,
    }
    summary.update(overrides.pop("summary", {}))
    base: dict[str, Any] = {
        "kind": "VirtualService",
        "namespace": "default",
        "name": "reviews",
        "version": {"resourceVersion": "7", "generation": 2, "deleted": False},
        "deleted": False,
        "change": "update",
        "eventTime": "2026-01-02T03:04:05.000Z",
        "lastPushedVersion": {"resourceVersion": "7", "generation": 2, "deleted": False},
        "pushes": [{"id": "2026-01-02T03:04:05Z/9", "current": True}],
        "summary": summary,
        "converged": True,
        "live": True,
        "lastAckTime": "2026-01-02T03:04:05.250Z",
        "eventToLastAckSeconds": 0.25,
        "proxies": [
            {"proxy": "a.default", "status": "ACKED", "push": "2026-01-02T03:04:05Z/9",
             "types": ["RDS"], "ackedAt": "2026-01-02T03:04:05.250Z"},
            {"proxy": "b.shop", "status": "ACKED", "push": "2026-01-02T03:04:05Z/9",
             "types": ["RDS"], "ackedAt": "2026-01-02T03:04:05.200Z"},
            {"proxy": "c.scoped", "status": "NOT CONCERNED", "push": "2026-01-02T03:04:05Z/9",
             "types": []},
        ],
    }  # fmt: skip
    base.update(overrides)
    return base


class Scripted:
    """A fake istiod answering /debug/trace with the scripted (status, body) pairs in turn
    (the last one repeats); it records the queries."""

    def __init__(self, answers: list[tuple[int, Any]]) -> None:
        self.answers = answers
        self.queries: list[dict[str, list[str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                assert parts.path == "/debug/trace"
                outer.queries.append(parse_qs(parts.query))
                index = min(len(outer.queries), len(outer.answers)) - 1
                status, body = outer.answers[index]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def istiod() -> Iterator[Scripted]:
    fake = Scripted([(200, report())])
    yield fake
    fake.close()


def run(argv: list[str]) -> tuple[int, str, str]:
    args = build_parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    code = cmd.main(args, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("VirtualService", Kind.VIRTUAL_SERVICE),
        ("virtualservice", Kind.VIRTUAL_SERVICE),
        ("virtualservices", Kind.VIRTUAL_SERVICE),
        ("vs", Kind.VIRTUAL_SERVICE),
        ("DR", Kind.DESTINATION_RULE),
        ("gateways", Kind.GATEWAY),
        ("authorizationpolicies", Kind.AUTHORIZATION_POLICY),
        ("ServiceEntries", Kind.SERVICE_ENTRY),
        ("sidecar", Kind.SIDECAR),
    ],
)
def test_kinds(text: str, kind: Kind) -> None:
    assert cmd.parse_kind(text) is kind


def test_targets_and_durations() -> None:
    assert cmd.parse_target("vs/shop/reviews", None) == cmd.Target(
        Kind.VIRTUAL_SERVICE, "shop", "reviews"
    )
    assert cmd.parse_target("vs/reviews", "shop").namespace == "shop"
    assert cmd.parse_target("vs/reviews", None).namespace == "default"
    assert cmd.parse_target("vs/shop/reviews", "shop").name == "reviews"
    for bad in ("vs", "vs//reviews", "a/b/c/d", "Endpoints/x/y"):
        with pytest.raises(ValueError, match=r"is not KIND|unknown kind"):
            cmd.parse_target(bad, None)
    assert cmd.parse_duration("10s") == 10.0
    assert cmd.parse_duration("1m30s") == 90.0
    assert cmd.parse_duration("500ms") == 0.5
    assert cmd.parse_duration("1.5h") == 5400.0
    for bad in ("10", "s", "10x", "-1s", "1s ago"):
        with pytest.raises(ValueError, match="invalid duration"):
            cmd.parse_duration(bad)


def test_the_table_answers_is_my_change_live(istiod: Scripted) -> None:
    code, out, err = run(["x", "trace", "VirtualService/default/reviews", "--istiod", istiod.url])
    assert (code, err) == (0, "")
    assert istiod.queries == [
        {"kind": ["VirtualService"], "namespace": ["default"], "name": ["reviews"]}
    ]
    lines = out.splitlines()
    assert lines[0] == (
        "VirtualService default/reviews: resourceVersion 7, generation 2, "
        "update at 2026-01-02T03:04:05.000Z"
    )
    assert "Pushed to 2 proxies: ACKed by 2, NACKed by 0, pending 0" in out
    assert "not concerned 1" in out
    assert "Event to last ACK: 250ms" in out and "LIVE on every proxy it concerns" in out
    header = next(line for line in lines if line.startswith("PROXY"))
    assert header.split() == ["PROXY", "STATUS", "PUSH", "TYPES", "ACKED", "AT"]
    row = next(line for line in lines if line.startswith("c.scoped"))
    assert "NOT CONCERNED" in row


def test_a_nack_is_shown_with_envoys_message_and_exit_3() -> None:
    nacked = report(summary={"acked": 1, "nacked": 1}, live=False)
    nacked["proxies"][1].update(
        status="NACKED",
        nack={"type": "RDS", "nonce": "5-x", "message": "RE2 program size of 1004 > 100"},
    )
    fake = Scripted([(200, nacked)])
    try:
        code, out, _ = run(["experimental", "trace", "vs/reviews", "--istiod", fake.url])
    finally:
        fake.close()
    assert code == cmd.EXIT_REJECTED
    assert "REJECTED by 1 proxy" in out
    assert "b.shop RDS (nonce 5-x): RE2 program size of 1004 > 100" in out


def test_wait_polls_until_nothing_is_pending() -> None:
    pending = report(summary={"acked": 1, "pending": 1}, converged=False, live=False)
    fake = Scripted(
        [(404, {"error": "istiod has no record of VirtualService default/reviews"}),
         (200, pending), (200, pending), (200, report())]
    )  # fmt: skip
    try:
        code, out, err = run(
            ["x", "trace", "vs/default/reviews", "--istiod", fake.url, "--wait", "10s", "-o",
             "json"]
        )  # fmt: skip
    finally:
        fake.close()
    assert (code, err) == (0, "")
    assert len(fake.queries) == 4
    assert json.loads(out)["converged"] is True


def test_wait_is_bounded() -> None:
    pending = report(summary={"acked": 1, "pending": 1}, converged=False, live=False)
    fake = Scripted([(200, pending)])
    try:
        code, out, err = run(
            ["x", "trace", "vs/reviews", "--istiod", fake.url, "--wait", "600ms", "-o", "yaml"]
        )
    finally:
        fake.close()
    assert code == cmd.EXIT_PENDING
    assert "timed out after --wait 600ms: 1 pending" in err
    assert yaml.safe_load(out)["summary"]["pending"] == 1
    assert 2 <= len(fake.queries) <= 6


def test_errors_name_the_object_and_the_flag() -> None:
    fake = Scripted([(404, {"error": "istiod has no record of VirtualService default/nope"})])
    try:
        code, _, err = run(["x", "trace", "vs/nope", "--istiod", fake.url])
    finally:
        fake.close()
    assert code == cmd.EXIT_ERROR
    assert "VirtualService default/nope: istiod has no record" in err
    code, _, err = run(["x", "trace", "vs/nope", "--istiod", "ftp://127.0.0.1"])
    assert code == cmd.EXIT_USAGE and "--istiod" in err
    code, _, err = run(["x", "trace", "nonsense/nope"])
    assert code == cmd.EXIT_USAGE and 'unknown kind "nonsense"' in err
