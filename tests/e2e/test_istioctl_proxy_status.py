"""`istioctl proxy-status` against a real istiod and two real Envoys.

productpage-v1.default (SotW) and ratings-v1.nackns (Delta) connect to istiod; both show
SYNCED for CDS, LDS, EDS and RDS, read over HTTP (/debug/syncz) and over ADS
(`istio.io/debug/syncz`), and `proxy-status PROXY` finds istiod's view equal to each Envoy's own
config dump. A debug stream left open is no proxy: not in syncz, not in pilot_xds, not pushed.

Then a VirtualService visible only in nackns (exportTo ".") adds a header match whose regex is
valid RE2 (our validation accepts it) but compiles to a program of 35004 instructions, over the
limit of 32768 Envoy is given: ratings-v1 NACKs its route configuration. proxy-status shows
ERROR with Envoy's message for it (both sources) and SYNCED for productpage-v1, and the diff of
ratings-v1 shows istiod's routes differing from what its Envoy kept.

Last-known-good (pilot/config/last_good.py) then reverts the rejected object for every proxy,
and the proxy returns to SYNCED. istiod runs with a 1.5 s debounce: that revert is pushed like
any change, so the ERROR state stays readable for over a second; afterwards the test accepts
either outcome (reverted and SYNCED, or still ERROR where no revert exists).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from istioctl import cli
from istioctl.bootstrap import ISTIO_VERSION
from istioctl.proxystatus.sources import debug_request
from pkg.xds import typeurls

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import (
    Bookinfo,
    WaitTimeout,
    configz_object,
    join_docs,
    remove_config,
    sidecar_options,
    wait_synced,
    write_config,
)
from .net import allocate_ip, wait_until

GOOD = "productpage-v1.default"
NACK = "ratings-v1.nackns"
REVIEWS = "reviews.default.svc.cluster.local"
# Valid RE2 and 46 characters, but its compiled program (35004 instructions) exceeds the limit
# `istioctl bootstrap` gives Envoy (re2.max_program_size.error_level 32768, as Istio's).
# Checked with `envoy --mode validate`: rejected; with five words (29004) it is accepted.
BAD_REGEX = "(alpha|bravo|charlie|delta|echo|foxtrot){1000}"
BAD_VS = f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews-by-id, namespace: nackns}}
spec:
  hosts: [{REVIEWS}]
  exportTo: ["."]
  http:
  - match: [{{headers: {{x-id: {{regex: "{BAD_REGEX}"}}}}}}]
    route: [{{destination: {{host: {REVIEWS}}}}}]
  - route: [{{destination: {{host: {REVIEWS}}}}}]
"""
TYPES = ("CDS", "LDS", "EDS", "RDS")


@dataclass
class Mesh:
    istiod: IstiodProcess
    config: Path
    envoys: dict[str, EnvoyProcess]

    @property
    def http(self) -> str:
        return self.istiod.http_url

    @property
    def xds(self) -> str:
        return self.istiod.grpc_addr


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("proxy-status")
    started: list[Any] = []
    try:
        backend = Backend("reviews-v1", allocate_ip(), 0).start()
        started.append(backend)
        config = workdir / "config"
        config.mkdir()
        app = Bookinfo({"reviews-v1": backend})
        write_config(config, "reviews.yaml", join_docs(app.service_entry("reviews")))
        env = {"PILOT_DEBOUNCE_AFTER": "1.5s", "PILOT_REVERT_REJECTED_CONFIG": "all"}
        istiod = IstiodProcess(workdir / "istiod", config_dirs=[config], env=env).start()
        started.append(istiod)
        envoys = {}
        for proxy, api in ((GOOD, "sotw"), (NACK, "delta")):
            name, namespace = proxy.split(".")
            labels = {"app": name.rsplit("-", 1)[0]}
            opts = sidecar_options(istiod, name, allocate_ip(), labels, api, namespace)  # type: ignore[arg-type]
            envoy = EnvoyProcess.for_proxy(opts, workdir / proxy)
            started.append(envoy)
            envoys[proxy] = envoy.start()
        for proxy, envoy in envoys.items():
            envoy.wait_live(15.0)
            wait_synced(istiod, proxy, timeout=15.0)
        yield Mesh(istiod, config, envoys)
    finally:
        for process in reversed(started):
            process.stop()


def istioctl(*argv: str) -> str:
    """Run istioctl in-process; its stdout (a failure shows stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    assert code == 0, f"istioctl {' '.join(argv)} exited {code}: {err.getvalue()}"
    return out.getvalue()


def parse_table(text: str) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The rows of proxy-status's table by NAME, and the lines after it."""
    lines = text.splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    assert header == ["NAME", "CLUSTER", *TYPES, "ECDS", "ISTIOD", "VERSION"], lines[0]
    rows, rest = {}, []
    for index, line in enumerate(lines[1:], start=1):
        if not line:
            rest = lines[index + 1 :]
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows, rest


def synced(row: dict[str, str]) -> bool:
    return all(re.fullmatch(r"SYNCED \(\d+s\)", row[t]) for t in TYPES)


def status_both_ways(mesh: Mesh) -> list[tuple[dict[str, dict[str, str]], list[str]]]:
    return [
        parse_table(istioctl("proxy-status", "--istiod", mesh.http)),
        parse_table(istioctl("ps", "--xds-address", mesh.xds)),
    ]


def wait_all_synced(mesh: Mesh) -> None:
    for proxy in (GOOD, NACK):
        wait_synced(mesh.istiod, proxy, timeout=15.0)
    wait_until(
        lambda: all(
            set(rows) == {GOOD, NACK} and all(synced(r) for r in rows.values()) and not rest
            for rows, rest in status_both_ways(mesh)
        ),
        15.0,
        0.1,
        "proxy-status showing both proxies SYNCED",
    )


def test_every_proxy_synced_over_http_and_ads(mesh: Mesh) -> None:
    wait_all_synced(mesh)
    istiod_id = mesh.istiod.get_json("/debug/syncz")[0]["istiod"]
    for rows, rest in status_both_ways(mesh):
        assert set(rows) == {GOOD, NACK} and not rest, rows
        for row in rows.values():
            assert synced(row), row
            assert row["ECDS"] == "IGNORED"  # not watched by these Envoys
            assert (row["CLUSTER"], row["ISTIOD"], row["VERSION"]) == (
                "Kubernetes",
                istiod_id,
                ISTIO_VERSION,
            )
    raw = json.loads(istioctl("ps", "--xds-address", mesh.xds, "-o", "json", "-n", "nackns"))
    assert raw["typeUrl"] == typeurls.DEBUG_SYNCZ
    assert json.loads(raw["controlPlane"]["identifier"])["ID"] == istiod_id
    (config,) = raw["resources"]
    assert config["node"]["id"] == NACK
    statuses = {c["typeUrl"]: c["configStatus"] for c in config["genericXdsConfigs"]}
    assert set(statuses.values()) == {"SYNCED"}, statuses
    assert {typeurls.short_name(t) for t in statuses} >= set(TYPES)


def metric_sum(mesh: Mesh, name: str) -> float | None:
    text = mesh.istiod.get("/metrics").body.decode()
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(f"{name}{{")
    ]
    return sum(values) if values else None


def test_an_open_debug_stream_is_no_proxy(mesh: Mesh) -> None:
    wait_all_synced(mesh)
    done = threading.Event()

    def requests() -> Iterator[discovery_pb2.DiscoveryRequest]:
        yield debug_request(typeurls.DEBUG_SYNCZ)
        done.wait(30.0)

    with grpc.insecure_channel(mesh.xds) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        call = stub.StreamAggregatedResources(requests(), timeout=30.0)
        try:
            first = next(call)
            assert len(first.resources) == 2
            assert {e["proxy"] for e in mesh.istiod.get_json("/debug/syncz")} == {GOOD, NACK}
            assert mesh.istiod.get_json("/debug/adsz")["totalClients"] == 2
            clients = metric_sum(mesh, "pilot_xds")
            assert clients in (None, 2.0), f"pilot_xds counts {clients} clients"
            # A push reaches the proxies, not the debug stream (it would read a response).
            assert "Pushed to 2 servers" in mesh.istiod.get("/debug/adsz?push=true").body.decode()
            pushed: list[object] = []

            def read() -> None:
                with contextlib.suppress(grpc.RpcError):  # cancelled at the end
                    pushed.append(next(call))

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            reader.join(1.0)
            assert reader.is_alive() and not pushed, f"the debug stream was sent {pushed}"
        finally:
            done.set()
            call.cancel()


def test_diff_of_a_synced_proxy_matches(mesh: Mesh) -> None:
    wait_all_synced(mesh)
    for proxy, envoy in mesh.envoys.items():
        for source in (("--istiod", mesh.http), ("--xds-address", mesh.xds)):
            text = istioctl("proxy-status", proxy, "--admin", envoy.admin_url, *source)
            lines = text.splitlines()
            assert lines[:2] == ["Clusters Match", "Listeners Match"], text
            assert re.fullmatch(r"Routes Match \(RDS last loaded at .+\)", lines[2]), text
            assert len(lines) == 3, text


def test_a_nacking_proxy_shows_error_with_envoys_message(mesh: Mesh) -> None:
    wait_all_synced(mesh)
    write_config(mesh.config, "bad-vs.yaml", BAD_VS)
    try:

        def nack_reported() -> tuple[dict[str, dict[str, str]], list[str]] | None:
            rows, rest = parse_table(istioctl("ps", "--istiod", mesh.http))
            return (rows, rest) if rows[NACK]["RDS"].startswith("ERROR") else None

        over_http = wait_until(nack_reported, 20.0, 0.05, f"{NACK} RDS in ERROR")
        assert over_http is not None
        # Read at once, before a revert (pushed after the 1.5 s debounce) could land.
        over_ads = parse_table(istioctl("ps", "--xds-address", mesh.xds))
        diff = istioctl("ps", NACK, "--admin", mesh.envoys[NACK].admin_url, "--istiod", mesh.http)
        for rows, rest in (over_http, over_ads):
            assert synced(rows[GOOD]), rows
            nack = rows[NACK]
            assert re.fullmatch(r"ERROR \(\d+s\)", nack["RDS"]), nack
            assert all(nack[t].startswith("SYNCED") for t in ("CDS", "LDS", "EDS")), nack
            (line,) = rest
            assert line.startswith(f"ERROR {NACK} RDS: "), rest
            assert BAD_REGEX in line, line  # Envoy's own message names the regex
        lines = diff.splitlines()
        assert lines[:2] == ["Clusters Match", "Listeners Match"], diff
        assert lines[2].startswith("Routes Don't Match (RDS last loaded at "), diff
        assert lines[3:5] == ["--- Istiod Routes", "+++ Envoy Routes"], diff
        removed = [line for line in lines if line.startswith("-") and BAD_REGEX in line]
        assert removed, diff  # istiod has the regex; Envoy kept its previous routes
        assert not any(line.startswith("+") and BAD_REGEX in line for line in lines), diff
        rejected = mesh.envoys[NACK].stats(filter=r"\.rds\..*update_rejected$")
        assert sum(rejected.values()) >= 1, rejected  # Envoy's side of the story

        # Then: last-known-good marks the object rejected and reverts it for every proxy
        # (SYNCED again); without it the proxy would stay in ERROR.
        def marked() -> bool:
            vs = configz_object(mesh.istiod, "VirtualService", "nackns", "reviews-by-id")
            return bool(vs and (vs.get("status") or {}).get("rejected"))

        try:
            wait_until(marked, 5.0, 0.1, "reviews-by-id marked rejected (last-known-good)")
        except WaitTimeout:
            row = parse_table(istioctl("ps", "--istiod", mesh.http))[0][NACK]
            assert row["RDS"].startswith("ERROR"), row  # no revert: the error stays
            print(f"{NACK}: no last-known-good revert; RDS stays {row['RDS']}")
        else:
            wait_until(
                lambda: synced(parse_table(istioctl("ps", "--istiod", mesh.http))[0][NACK]),
                15.0,
                0.1,
                f"{NACK} SYNCED after the revert to the last good routes",
            )
            print(f"{NACK}: reverted to the last good routes, SYNCED again")
    finally:
        remove_config(mesh.config, "bad-vs.yaml")
    wait_all_synced(mesh)
