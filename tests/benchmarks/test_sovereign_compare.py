"""The side-by-side harness against sovereign, without sovereign: pyistio's resources survive
the trip to sovereign's JSON templates and back, the REST clients work against a stand-in for
sovereign's endpoint, and a pyistio-only run at a tiny size measures something. Figures are not
asserted (CI machines vary), and nothing is installed or fetched."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from benchmarks import compare_report as cr
from benchmarks import protojson as pj
from benchmarks import sovereign_compare as sc
from benchmarks.adsclient import client_specs
from benchmarks.fetchpool import FetchPool
from benchmarks.istiod_proc import IstiodProcess
from benchmarks.render import render_to, resolve_template
from benchmarks.sovereign_proc import template_module_source, write_config


@pytest.fixture(scope="module")
def istiod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IstiodProcess]:
    root = tmp_path_factory.mktemp("compare")
    (root / "config").mkdir()
    render_to(resolve_template("virtualservice"), root / "config", 3)
    proc = IstiodProcess(root / "config", root / "istiod", log_level="warning").start()
    try:
        yield proc
    finally:
        proc.stop()


def _template_resources(source: str) -> list[dict[str, object]]:
    """What sovereign's Python template returns: the module run as sovereign loads it."""
    namespace: dict[str, object] = {}
    exec(compile(source, "template", "exec"), namespace)
    call = namespace["call"]
    assert callable(call)
    resources = call(discovery_request=None, host_header="", resource_names=[])
    assert isinstance(resources, list)
    return resources


def test_resources_round_trip(istiod: IstiodProcess, tmp_path: Path) -> None:
    spec = client_specs(1)[0]
    for type_, rest_type, count in (("CDS", "clusters", 7), ("RDS", "routes", 1)):
        raw = pj.ads_fetch_once(istiod.grpc, type_, spec)
        expected = pj.ads_resources(raw)
        assert len(expected) == count  # 3 + proxy-service-instance + 3 of Istio's own; "80"
        path = tmp_path / f"{rest_type}.json"
        path.write_text(json.dumps(pj.resources_json(raw)))
        config = write_config(tmp_path / "sovereign", {rest_type: path})
        assert f"- type: {rest_type}" in config.read_text()
        assert "protocol: python" in config.read_text()
        served = _template_resources(template_module_source(path))
        body = json.dumps({"version_info": "1", "resources": served}).encode()
        assert pj.compare_resources(expected, pj.rest_resources(body)) == []
        # A changed resource is found.
        first = dict(served[0])
        first.pop("name")
        tampered = json.dumps({"resources": [first, *served[1:]]}).encode()
        assert pj.compare_resources(expected, pj.rest_resources(tampered))


@pytest.fixture
def fake_sovereign(istiod: IstiodProcess) -> Iterator[str]:
    """sovereign's REST endpoint (POST /v3/discovery:TYPE) serving pyistio's resources."""
    spec = client_specs(1)[0]
    bodies = {
        rest: json.dumps(
            {
                "version_info": "1",
                "resources": pj.resources_json(pj.ads_fetch_once(istiod.grpc, t, spec)),
            }
        ).encode()
        for t, rest in (("CDS", "clusters"), ("RDS", "routes"))
    }

    async def discovery(request: web.Request) -> web.Response:
        await request.json()  # a DiscoveryRequest with a node
        return web.Response(
            body=bodies[request.match_info["type"]], content_type="application/json"
        )

    loop = asyncio.new_event_loop()
    started = threading.Event()
    url: list[str] = []

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/v3/discovery:{type}", discovery)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        url.append(f"http://127.0.0.1:{port}")
        return runner

    def main() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(serve())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_rest_and_ads_clients(istiod: IstiodProcess, fake_sovereign: str) -> None:
    pool = FetchPool(1)
    try:
        specs = client_specs(2)
        for protocol, target in (("rest", fake_sovereign), ("ads", istiod.grpc)):
            for type_, count in (("CDS", 7), ("RDS", 1)):
                pool.submit(protocol, target, type_, specs, 0.3, 50, lead=0.5)
                (result,) = pool.collect(timeout=30)
                assert result.errors == 0, result.error_samples
                assert result.warmup_resources == [count, count], (protocol, type_)
                assert 0 < result.responses <= 50
                assert result.in_window <= result.responses
                assert result.min_size > 0 and result.min_size <= result.max_size
    finally:
        pool.close()


def test_pyistio_only_run(tmp_path: Path) -> None:
    opts = sc.Options(
        services=(3,),
        runs=1,
        seconds=0.3,
        clients=2,
        workers=1,
        servers=("pyistio",),
        lead=0.5,
        retries=0,
        workdir=tmp_path,
        quiet=True,
    )
    rows = sc.Compare(opts).run()
    setup = next(r for r in rows if r["kind"] == "setup")
    assert setup["equal"] and setup["resources"] == {"CDS": 7, "RDS": 1}
    phases = [r for r in rows if r["kind"] == "phase"]
    assert {(r["server"], r["type"]) for r in phases} == {("pyistio", "CDS"), ("pyistio", "RDS")}
    for row in phases:
        assert row["errors"] == 0 and row["responses"] > 0
        assert row["cpu_ms_per_response"] is not None
    assert "| 3 | CDS | pyistio | 1 |" in cr.table(rows)


def test_ratios() -> None:
    def phase(server: str, type_: str, rps: float, cpu: float) -> dict[str, object]:
        return {
            "kind": "phase",
            "services": 10,
            "run": 0,
            "server": server,
            "type": type_,
            "responses_per_s": rps,
            "cpu_ms_per_response": cpu,
        }

    rows = [
        phase("pyistio", "CDS", 1000, 1.0),
        phase("pyistio", "RDS", 500, 2.0),
        phase("sovereign", "CDS", 100, 10.0),
        phase("sovereign", "RDS", 10, 40.0),
        {**phase("sovereign", "RDS", 1, 40.0), "discarded": True},  # a repeated noisy phase
    ]
    (s,) = cr.summarize(rows)
    assert s.throughput_ratio["sovereign", "CDS"] == pytest.approx(10)
    assert s.throughput_ratio["sovereign", "RDS"] == pytest.approx(50)
    # 1 CDS : 1 RDS: harmonic means 666.7 and 18.18 responses / s.
    assert s.throughput_ratio["sovereign", "mixed"] == pytest.approx((2 / 0.003) / (2 / 0.11))
    assert s.cpu_ratio["sovereign", "mixed"] == pytest.approx(50 / 3)
    assert s.throughput_ratio["sovereign-plain", "mixed"] is None
