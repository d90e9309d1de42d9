"""pyistio beside sovereign (the Python xDS control plane on PyPI): served full CDS / RDS
responses per second and server CPU per response, same resources, same clients, one run.

    python benchmarks/sovereign_compare.py --out benchmarks/results/sovereign.jsonl
    python benchmarks/sovereign_compare.py --services 1000 --runs 3 --seconds 8 --clients 64 \
        --servers sovereign,pyistio
    python benchmarks/sovereign_compare.py --table-only benchmarks/results/sovereign.jsonl

Per size N (default 1,000 then 100 services):
1. Render Istio's `virtualservice` xds-benchmark template for N services and start istiod on
   it (`--log-level warning`).
2. Fetch pyistio's own CDS and RDS responses for the benchmark sidecar
   (`benchmarks.adsclient.node_for`) over ADS, and write their resources as proto3 JSON
   (`json_format`, `@type` kept): the clusters and route config `80` pyistio serves.
3. Install sovereign 0.32.x into venvs of its own if needed (`benchmarks/.venv-sovereign` with
   its `orjson,httptools` extras, `benchmarks/.venv-sovereign-plain` without), and start each
   (gunicorn, `--sovereign-workers` uvicorn workers) with one Python template per type whose
   `call()` returns those resources (`benchmarks.sovereign_proc`).
4. Check that every server serves equal resources: sovereign's JSON, parsed back into
   protobuf, equals pyistio's resources message for message.
5. `--runs` times, for each server (the order reverses every other run) and each type: the
   same `--clients` closed-loop clients (`benchmarks.fetchpool`: a new ADS stream per fetch for
   pyistio, a REST POST on a keep-alive connection for sovereign, which has no gRPC) fetch
   full responses for `--seconds`. Throughput = fetches completed in the window / window;
   server CPU per response = the server's user+sys over the window and its drain (/proc, all
   threads and, for sovereign, master and workers) / fetches. A phase during which other
   processes on the machine kept more than `--noise-limit` cores busy is repeated (up to
   `--retries` times; the repeated attempts are recorded as `discarded`).

All servers stay up for the whole size, so each phase also records the others' CPU (they
should be idle). Results go to `--out` as JSON lines (one `setup` row per size, one `phase` row
per server, type, run and attempt); the table gives medians [min-max] over runs and the ratios
pyistio / sovereign, per type and for a 1:1 mix of CDS and RDS fetches.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.adsclient import ClientSpec, client_specs
from benchmarks.compare_report import (
    SERVERS,
    SOVEREIGNS,
    TYPES,
    Row,
    phase_row,
    table,
)
from benchmarks.fetchpool import (
    NAMES,
    REST_TYPES,
    FetchPool,
    request_body,
)
from benchmarks.istiod_proc import IstiodProcess
from benchmarks.protojson import (
    ads_fetch_once,
    ads_resources,
    compare_resources,
    resources_json,
    rest_resources,
)
from benchmarks.render import render_to, resolve_template
from benchmarks.results import machine_info, system_busy_seconds
from benchmarks.sovereign_proc import (
    SovereignProcess,
    ensure_sovereign,
    installed_packages,
    venv_for,
    write_config,
)

# ---- the run ------------------------------------------------------------------------------


@dataclass
class Options:
    services: tuple[int, ...] = (1000, 100)
    runs: int = 3
    seconds: float = 8.0
    clients: int = 64
    workers: int = 2
    max_responses: int = 100_000
    noise_limit: float = 0.25
    retries: int = 3
    sovereign_workers: int = 2
    servers: tuple[str, ...] = SERVERS
    types: tuple[str, ...] = TYPES
    template: str = "virtualservice"
    request_timeout: float = 60.0
    lead: float = 2.0  # seconds from a job's hand-out to its start (the clients' warm-up)
    timeout: float = 1800.0
    out: Path | None = None
    workdir: Path | None = None
    keep: bool = False
    quiet: bool = False


@dataclass
class Servers:
    """The servers of one size: istiod, and the sovereign variants by name."""

    istiod: IstiodProcess
    sovereigns: dict[str, SovereignProcess] = field(default_factory=dict)

    def cpu(self, name: str) -> float:
        if name == "pyistio":
            return self.istiod.cpu_seconds()
        return self.sovereigns[name].cpu_seconds()

    def rss_mb(self, name: str) -> float:
        if name == "pyistio":
            return self.istiod.rss_mb()[0]
        return self.sovereigns[name].rss_mb()

    def names(self) -> list[str]:
        return ["pyistio", *self.sovereigns]


class Compare:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.deadline = time.monotonic() + opts.timeout
        self.rows: list[Row] = []
        self.say: Callable[[str], None] = (
            (lambda s: None) if opts.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
        )

    def emit(self, row: Row) -> None:
        self.rows.append(row)
        if self.opts.out is not None:
            self.opts.out.parent.mkdir(parents=True, exist_ok=True)
            with self.opts.out.open("a") as f:
                f.write(json.dumps(row, default=str) + "\n")

    def run(self) -> list[Row]:
        opts = self.opts
        executables: dict[str, Path] = {}
        versions: dict[str, dict[str, str]] = {}
        for variant, extras in SOVEREIGNS.items():
            if variant in opts.servers:
                executables[variant] = ensure_sovereign(extras, say=self.say)
                versions[variant] = installed_packages(
                    venv_for(extras),
                    ("sovereign", "fastapi", "uvicorn", "gunicorn", "orjson", "httptools"),
                )
        own_tmp = None
        if opts.workdir is None:
            own_tmp = tempfile.TemporaryDirectory(prefix="sovereign-compare-")
            workdir = Path(own_tmp.name)
        else:
            workdir = opts.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        pool = FetchPool(opts.workers)
        try:
            for services in opts.services:
                self.one_size(services, workdir / f"n{services}", pool, executables, versions)
        finally:
            pool.close()
            if own_tmp is not None and not opts.keep:
                own_tmp.cleanup()
            elif opts.keep:
                self.say(f"kept {workdir}")
        return self.rows

    def one_size(
        self,
        services: int,
        workdir: Path,
        pool: FetchPool,
        executables: dict[str, Path],
        versions: dict[str, dict[str, str]],
    ) -> None:
        opts = self.opts
        if workdir.exists():
            shutil.rmtree(workdir)
        config = workdir / "config"
        config.mkdir(parents=True)
        render_to(resolve_template(opts.template), config, services)
        specs = client_specs(max(1, opts.clients))
        servers = Servers(IstiodProcess(config, workdir / "istiod", log_level="warning"))
        try:
            self.say(f"== {services} services: starting istiod")
            servers.istiod.start(timeout=120)
            # pyistio's own responses for the benchmark sidecar: what sovereign is handed.
            raw = {t: ads_fetch_once(servers.istiod.grpc, t, specs[0]) for t in opts.types}
            resources_dir = workdir / "resources"
            resources_dir.mkdir()
            files = {}
            for type_ in opts.types:
                path = resources_dir / f"{REST_TYPES[type_]}.json"
                path.write_text(json.dumps(resources_json(raw[type_])))
                files[REST_TYPES[type_]] = path
            expected = {t: ads_resources(raw[t]) for t in opts.types}
            setup: Row = {
                "kind": "setup",
                "run_id": self.run_id,
                "services": services,
                "template": opts.template,
                "clients": len(specs),
                "client_workers": pool.workers,
                "seconds": opts.seconds,
                "sovereign_workers": opts.sovereign_workers,
                "sovereign_packages": versions,
                "machine": machine_info(),
                "resources": {t: len(expected[t]) for t in opts.types},
                "names": {t: list(NAMES[t]) for t in opts.types},
                "bytes": {"pyistio": {t: len(raw[t]) for t in opts.types}},
                "equal": True,
                "problems": [],
            }
            for variant, executable in executables.items():
                self.say(f"== {services} services: starting {variant}")
                home = workdir / variant
                sovereign = SovereignProcess(
                    executable,
                    write_config(home, files),
                    home,
                    workers=opts.sovereign_workers,
                )
                servers.sovereigns[variant] = sovereign
                sovereign.start()
                setup["bytes"][variant] = {}
                for type_ in opts.types:
                    body = sovereign.post(REST_TYPES[type_], request_body("rest", type_, specs[0]))
                    setup["bytes"][variant][type_] = len(body)
                    problems = compare_resources(expected[type_], rest_resources(body))
                    setup["problems"] += [f"{variant} {type_}: {p}" for p in problems]
            setup["equal"] = not setup["problems"]
            self.emit(setup)
            self.say(
                f"   resources {setup['resources']} bytes {setup['bytes']} equal={setup['equal']}"
            )
            if not setup["equal"]:
                raise RuntimeError(
                    "sovereign does not serve pyistio's resources: " + "; ".join(setup["problems"])
                )
            for run in range(opts.runs):
                order = [s for s in SERVERS if s in opts.servers]
                if run % 2 == 1:
                    order.reverse()
                for server in order:
                    for type_ in opts.types:
                        if time.monotonic() > self.deadline:
                            raise TimeoutError(f"--timeout {opts.timeout}s reached")
                        self.counted_phase(services, run, server, type_, specs, pool, servers)
        finally:
            for sovereign in servers.sovereigns.values():
                sovereign.stop()
            servers.istiod.stop()

    def counted_phase(
        self,
        services: int,
        run: int,
        server: str,
        type_: str,
        specs: Sequence[ClientSpec],
        pool: FetchPool,
        servers: Servers,
    ) -> Row:
        """One phase, repeated (up to `--retries` times) while other processes on the machine
        kept more than `--noise-limit` cores busy during it; every attempt is recorded, the
        repeated ones with `discarded: true`."""
        opts = self.opts
        attempt = 0
        while True:
            row = self.phase(services, run, server, type_, specs, pool, servers)
            row["attempt"] = attempt
            row["noisy"] = row["other_busy_cores"] > opts.noise_limit
            retry = row["noisy"] and attempt < opts.retries
            row["discarded"] = retry
            self.emit(row)
            self.say(
                f"   run {run + 1}/{opts.runs} {server:15} {type_}: "
                f"{row['responses_per_s']:>8} resp/s  "
                f"{row['cpu_ms_per_response']} ms CPU/resp  "
                f"cores {row['server_cores']}  "
                f"client {row['client_cpu_ms_per_response']} ms/resp  "
                f"errors {row['errors']}  other busy cores {row['other_busy_cores']}"
                + ("  (noisy: repeated)" if retry else "")
            )
            if not retry:
                return row
            attempt += 1
            time.sleep(2.0)

    def phase(
        self,
        services: int,
        run: int,
        server: str,
        type_: str,
        specs: Sequence[ClientSpec],
        pool: FetchPool,
        servers: Servers,
    ) -> Row:
        opts = self.opts
        if server == "pyistio":
            protocol, target = "ads", servers.istiod.grpc
        else:
            servers.sovereigns[server].check_workers()
            protocol, target = "rest", servers.sovereigns[server].url
        others = [n for n in servers.names() if n != server]
        start_at, end_at = pool.submit(
            protocol,
            target,
            type_,
            specs,
            opts.seconds,
            opts.max_responses,
            lead=opts.lead,
            request_timeout=opts.request_timeout,
        )
        time.sleep(max(0.0, start_at - time.monotonic()))
        c0, busy0, self0 = servers.cpu(server), system_busy_seconds(), _self_cpu()
        o0 = sum(servers.cpu(n) for n in others)
        results = pool.collect(timeout=opts.seconds + opts.request_timeout + 60)
        c1, busy1, self1 = servers.cpu(server), system_busy_seconds(), _self_cpu()
        o1 = sum(servers.cpu(n) for n in others)
        if server != "pyistio":
            servers.sovereigns[server].check_workers()
        return phase_row(
            run_id=self.run_id,
            services=services,
            run=run,
            server=server,
            type_=type_,
            protocol=protocol,
            clients=len(specs),
            start_at=start_at,
            end_at=end_at,
            results=results,
            server_cpu_s=c1 - c0,
            other_cpu_s=o1 - o0,
            busy_s=busy1 - busy0,
            harness_cpu_s=self1 - self0,
            server_rss_mb=servers.rss_mb(server),
        )


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--services", default="1000,100", help="sizes, e.g. 1000,100")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0, help="per server x type x run")
    ap.add_argument("--clients", type=int, default=64, help="concurrent closed-loop clients")
    ap.add_argument("--workers", type=int, default=2, help="client processes")
    ap.add_argument("--max-responses", type=int, default=100_000, help="bound per phase")
    ap.add_argument("--sovereign-workers", type=int, default=2)
    ap.add_argument(
        "--noise-limit",
        type=float,
        default=0.25,
        help="repeat a phase during which other processes kept more cores than this busy",
    )
    ap.add_argument("--retries", type=int, default=3, help="repeats of a noisy phase")
    ap.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="sovereign: with its orjson,httptools extras; sovereign-plain: without",
    )
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--timeout", type=float, default=1800.0, help="whole run, seconds")
    ap.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument(
        "--table-only",
        type=Path,
        default=None,
        help="print the table of FILE's latest run (--run-id to pick another)",
    )
    ap.add_argument("--run-id", default=None)
    args = ap.parse_args(argv)
    if args.table_only is not None:
        rows = [json.loads(x) for x in args.table_only.read_text().splitlines() if x.strip()]
        run_id = args.run_id or (rows[-1]["run_id"] if rows else None)
        print(table([r for r in rows if r.get("run_id") == run_id]))
        return 0
    opts = Options(
        services=tuple(int(x) for x in args.services.split(",") if x),
        runs=args.runs,
        seconds=args.seconds,
        clients=args.clients,
        workers=args.workers,
        max_responses=args.max_responses,
        noise_limit=args.noise_limit,
        retries=args.retries,
        sovereign_workers=args.sovereign_workers,
        servers=tuple(x for x in args.servers.split(",") if x),
        types=tuple(x for x in args.types.split(",") if x),
        timeout=args.timeout,
        out=args.out,
        workdir=args.workdir,
        keep=args.keep,
    )
    unknown = set(opts.servers) - set(SERVERS) or set(opts.types) - set(TYPES)
    if unknown:
        ap.error(f"unknown: {sorted(unknown)}")
    rows = Compare(opts).run()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
