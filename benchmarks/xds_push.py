"""xDS push benchmark: istiod + M simulated Envoy ADS clients on one of Istio's benchmark configs.

    python benchmarks/xds_push.py --services 100 --proxies 50 --template virtualservice \
        --api sotw [--rounds 1] [--workers 4] [--json out.json]

Scenario (every step bounded in time):
1. render the template for N services into RUN/config, plus three small files of our own:
   bench-target.yaml (a ServiceEntry with one endpoint), bench-route.yaml (a VirtualService on
   it) and bench-policy.yaml (a DestinationRule on it); start istiod on that directory;
2. start M clients in worker processes; all connect at once (t0) and follow Envoy's order;
   initial convergence = t0 → the client's last initial ACK (and connect → same);
3. changes, each by atomically rewriting one file (write a hidden temp file, rename):
   - route:    the VirtualService's rewrite URI (every proxy's RDS "80" changes),
   - cluster:  the DestinationRule's connection pool (one cluster, on every proxy),
   - endpoint: the ServiceEntry endpoint's address (endpoints only: should send EDS only);
   convergence = file rename → the client's ACK of the last response of that push, per proxy;
   also measured from istiod's "Push debounce stable" log line (--log-level info; its
   wall-clock stamps are mapped to CLOCK_MONOTONIC), so watch + debounce delay is split out;
4. istiod CPU (user+sys from /proc/PID/stat) per phase and per proxy, peak RSS (VmHWM).

A phase ends when every client has received at least one response after the write and nothing
arrived for a quiet period (PILOT_DEBOUNCE_AFTER + 0.4 s), or at --phase-timeout.

This file is the command line. The pieces:
- benchmarks/scenario.py: the run, phase by phase (`Options`, `run`);
- benchmarks/changes.py: the three files the harness owns and rewrites;
- benchmarks/results.py: what a run measured, and quantiles / traffic / machine helpers;
- benchmarks/report.py: the printed report;
- benchmarks/adsclient.py, adsparse.py: one simulated Envoy (protocol, resource parsing);
- benchmarks/adspool.py: the clients' worker processes and the parent side that collects;
- benchmarks/istiod_proc.py, render.py: istiod as a subprocess, the template expander.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.changes import CHANGES
from benchmarks.report import report
from benchmarks.scenario import Options, run


def parse_args(argv: Sequence[str] | None) -> tuple[Options, Path | None]:
    p = argparse.ArgumentParser(description="xDS push benchmark (istiod + simulated Envoys)")
    p.add_argument("--services", type=int, default=100)
    p.add_argument("--proxies", type=int, default=50)
    p.add_argument("--instances", type=int, default=None, help=".Instances (default: services)")
    p.add_argument(
        "--template",
        default="virtualservice",
        help="a file of ../shared/conformance/xds-benchmarks (name or path)",
    )
    p.add_argument("--api", choices=("sotw", "delta"), default="sotw")
    p.add_argument("--workers", type=int, default=4, help="client worker processes")
    p.add_argument("--rounds", type=int, default=1, help="repeat the changes this many times")
    p.add_argument(
        "--changes",
        default=",".join(CHANGES),
        help=f"comma-separated subset of {','.join(CHANGES)}",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="whole run, seconds")
    p.add_argument("--phase-timeout", type=float, default=30.0)
    p.add_argument(
        "--log-level",
        default="info",
        help="istiod --log-level (info: debounce "
        "timestamps from its log; warning: estimated from PILOT_DEBOUNCE_AFTER)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="extra istiod environment (e.g. PILOT_DEBOUNCE_AFTER=50ms)",
    )
    p.add_argument(
        "--connect-spread",
        type=float,
        default=0.0,
        help="spread client connects over this many seconds (default: all at once)",
    )
    p.add_argument(
        "--label-groups",
        type=int,
        default=1,
        help="distinct proxy `app` labels (1: replicas of one workload)",
    )
    p.add_argument(
        "--no-reconnect",
        action="store_true",
        help="skip the last phase (every client reconnects up to date; expects nothing sent)",
    )
    p.add_argument(
        "--floor",
        default="stream,shared",
        help="SotW: then the same clients against the floor server (benchmarks.floor), modes "
        "stream (serialize per stream) and/or shared (same bytes to all); '' to skip",
    )
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the temporary run directory")
    p.add_argument("--json", type=Path, default=None, help="write the full result here")
    a = p.parse_args(argv)
    # A repeated change within a round would rewrite identical content (no push): dedupe.
    changes = tuple(dict.fromkeys(x for x in a.changes.split(",") if x))
    for change in changes:
        if change not in CHANGES:
            p.error(f"unknown change {change!r}")
    env = dict(kv.split("=", 1) for kv in a.env)
    opts = Options(
        services=a.services,
        proxies=a.proxies,
        template=a.template,
        api=a.api,
        instances=a.instances,
        workers=a.workers,
        rounds=a.rounds,
        changes=changes,
        timeout=a.timeout,
        phase_timeout=a.phase_timeout,
        log_level=a.log_level,
        env=env,
        connect_spread=a.connect_spread,
        label_groups=a.label_groups,
        reconnect=not a.no_reconnect,
        floor=tuple(x for x in a.floor.split(",") if x),
        workdir=a.workdir,
        keep=a.keep,
    )
    return opts, a.json


def main(argv: Sequence[str] | None = None) -> int:
    opts, json_path = parse_args(argv)
    result = run(opts)
    print(report(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
