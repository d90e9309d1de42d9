"""proxy-status against several istiod replicas (repeated or comma-separated `--istiod`): the
table lists every replica's proxies with the replica in ISTIOD, -o json prints one response per
replica, PROXY is compared against the replica holding it, and an unreachable replica fails
the command naming it."""

from __future__ import annotations

import argparse
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from istioctl.cli import build_parser
from istioctl.proxystatus.command import proxy_status

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"


def entry(proxy: str, istiod: str) -> dict[str, Any]:
    return {
        "proxy": proxy,
        "cluster_id": "Kubernetes",
        "proxy_version": "1.28.0-pyistio",
        "istiod": istiod,
        "resources": {CDS: {"sent": "n1", "acked": "n1", "status": "SYNCED"}},
    }


class FakeIstiod:
    """/debug/syncz with the given proxies; /debug/config_dump for them (404 otherwise, as
    istiod answers for a proxy connected elsewhere). Records the paths asked."""

    def __init__(self, name: str, proxies: list[str]) -> None:
        self.name = name
        self.proxies = proxies
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path.split("?")[0])
                status, body = outer.answer(self.path)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str) -> tuple[int, bytes]:
        if path == "/debug/syncz":
            return 200, json.dumps([entry(p, self.name) for p in self.proxies]).encode()
        if path.startswith("/debug/config_dump?proxyID="):
            if path.split("=", 1)[1] in self.proxies:
                return 200, json.dumps(empty_dump()).encode()
            return 404, b"Proxy not connected to this Pilot instance."
        return 404, b"not found"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def empty_dump() -> dict[str, Any]:
    return {"configs": []}


@pytest.fixture
def istiods() -> Iterator[tuple[FakeIstiod, FakeIstiod]]:
    a = FakeIstiod("istiod-a", ["productpage-v1.default", "reviews-v1.default"])
    b = FakeIstiod("istiod-b", ["ratings-v1.default"])
    yield a, b
    a.close()
    b.close()


def run(*argv: str) -> tuple[int, str, str]:
    args: argparse.Namespace = build_parser().parse_args(["proxy-status", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = proxy_status(args, out, err)
    return code, out.getvalue(), err.getvalue()


def istiod_column(table: str) -> dict[str, str]:
    header, *rows = [line.split() for line in table.splitlines()]
    assert header[-2:] == ["ISTIOD", "VERSION"]
    return {row[0]: row[-2] for row in rows}


def test_the_table_lists_every_replicas_proxies(istiods: tuple[FakeIstiod, FakeIstiod]) -> None:
    a, b = istiods
    code, out, err = run("--istiod", a.url, "--istiod", b.url)
    assert code == 0, err
    assert istiod_column(out) == {
        "productpage-v1.default": "istiod-a",
        "ratings-v1.default": "istiod-b",
        "reviews-v1.default": "istiod-a",
    }
    assert list(istiod_column(out)) == sorted(istiod_column(out))  # one table, by name
    assert run("--istiod", f"{a.url},{b.url}") == (0, out, "")


def test_json_is_one_response_per_replica(istiods: tuple[FakeIstiod, FakeIstiod]) -> None:
    a, b = istiods
    code, out, err = run("--istiod", b.url, "--istiod", a.url, "-o", "json")
    assert code == 0, err
    decoder, docs, at = json.JSONDecoder(), [], 0
    while out[at:].strip():
        doc, end = decoder.raw_decode(out, at + (len(out[at:]) - len(out[at:].lstrip())))
        docs.append(doc)
        at = end
    ids = [json.loads(d["controlPlane"]["identifier"])["ID"] for d in docs]
    assert ids == ["istiod-b", "istiod-a"]  # in the order given
    assert [len(d["resources"]) for d in docs] == [1, 2]


def test_an_empty_list_is_refused() -> None:
    code, out, err = run("--istiod", " , ")
    assert (code, out) == (1, "")
    assert err.startswith("Error: --istiod needs an address")


def test_an_unreachable_replica_fails_naming_it(istiods: tuple[FakeIstiod, FakeIstiod]) -> None:
    a, _ = istiods
    code, out, err = run("--istiod", a.url, "--istiod", "http://127.0.0.1:1", "--timeout", "2")
    assert (code, out) == (1, "")
    assert err.startswith("Error: --istiod: cannot reach http://127.0.0.1:1/debug/syncz")


def test_proxy_is_compared_against_the_replica_holding_it(
    istiods: tuple[FakeIstiod, FakeIstiod], tmp_path: Path
) -> None:
    a, b = istiods
    envoy_dump = tmp_path / "dump.json"
    envoy_dump.write_text(json.dumps(empty_dump()))
    code, out, err = run(
        "ratings-v1.default", "--file", str(envoy_dump), "--istiod", a.url, "--istiod", b.url
    )
    assert code == 0, err
    assert out.splitlines()[0] == "Clusters Match"
    assert "/debug/config_dump" not in a.paths
    assert b.paths.count("/debug/config_dump") == 1

    code, out, err = run(
        "details-v1.default", "--file", str(envoy_dump), "--istiod", f"{a.url},{b.url}"
    )
    assert (code, out) == (1, "")
    assert err == (
        f"Error: --istiod: no istiod of {a.url}, {b.url} holds proxy details-v1.default\n"
    )
