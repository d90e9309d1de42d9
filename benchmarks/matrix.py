"""Run xds_push over a matrix of sizes and print the tables of docs/performance.md.

    python benchmarks/matrix.py --sizes 100x100,300x100,1000x100 --apis sotw,delta \
        --labels shared,distinct --runs 3 --rounds 2 --out benchmarks/results/matrix.jsonl

Every run is a fresh istiod and fresh clients (scenario.run), bounded by --timeout. Each cell
is the median [min-max] over runs (initial convergence) or over runs x rounds (changes) of the
per-run p50 / p99 over proxies. Results are appended as JSON lines; `--table-only FILE` prints
the tables from an existing file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.changes import CHANGES
from benchmarks.scenario import Options, run

Row = dict[str, Any]


def cell(values: Iterable[float | None], fmt: str = "{:.0f}") -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} [{fmt.format(min(vals))}-{fmt.format(max(vals))}]"


def key_of(row: Row) -> tuple[int, int, str, str]:
    o = row["options"]
    labels = "shared" if int(o["label_groups"]) <= 1 else "distinct"
    return (int(o["services"]), int(o["proxies"]), o["api"], labels)


def tables(rows: Sequence[Row]) -> str:
    groups: dict[tuple[int, int, str, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[key_of(row)].append(row)
    keys = sorted(groups)
    out: list[str] = []

    def head(title: str, cols: Sequence[str]) -> None:
        out.append(f"\n{title}\n")
        out.append("| services x proxies | ADS | proxy labels | runs | " + " | ".join(cols) + " |")
        out.append("|---|---|---|---:|" + "---|" * len(cols))

    def line(k: tuple[int, int, str, str], values: Sequence[str]) -> None:
        s, p, api, labels = k
        n = len(groups[k])
        ok = sum(1 for r in groups[k] if r["ok"])
        runs = f"{n}" if ok == n else f"{n} ({n - ok} not ok)"
        out.append(f"| {s:,} x {p} | {api} | {labels} | {runs} | " + " | ".join(values) + " |")

    def init(rows: list[Row], f: Callable[[Row], float | None]) -> list[float | None]:
        return [f(r) for r in rows]

    head(
        "**Initial convergence** (all proxies connect at once; ms from t0 to each proxy's last "
        "initial ACK, p50 / p99 over proxies)",
        [
            "p50 ms",
            "p99 ms",
            "istiod CPU s",
            "CPU ms / proxy",
            "bytes / proxy",
            "istiod peak RSS MiB",
            "istiod start s",
        ],
    )
    for k in keys:
        rs = groups[k]
        line(
            k,
            [
                cell(init(rs, lambda r: r["initial"]["convergence_ms"]["p50"])),
                cell(init(rs, lambda r: r["initial"]["convergence_ms"]["p99"])),
                cell(init(rs, lambda r: r["initial"]["istiod_cpu_s"]), "{:.2f}"),
                cell(init(rs, lambda r: r["initial"]["istiod_cpu_per_proxy_ms"]), "{:.1f}"),
                cell(init(rs, lambda r: r["initial"]["bytes_per_proxy"]["median"]), "{:,.0f}"),
                cell(init(rs, lambda r: r["istiod_peak_rss_mb"])),
                cell(init(rs, lambda r: r["istiod_start_s"]), "{:.1f}"),
            ],
        )

    for change in CHANGES:
        head(
            f"**Change: {change}** (ms from the file rename to each proxy's ACK of the push, "
            "p50 / p99 over proxies; 'from debounce end' starts at istiod's "
            "'Push debounce stable' log line)",
            [
                "write → ACK p50",
                "write → ACK p99",
                "debounce end → ACK p50",
                "debounce end → ACK p99",
                "types sent (per run)",
                "bytes / proxy",
                "istiod CPU ms / proxy",
            ],
        )
        for k in keys:
            phases = [p for r in groups[k] for p in r["changes"] if p["name"] == change]
            if not phases:
                continue
            types = sorted({json.dumps(p["responses_by_type"], sort_keys=True) for p in phases})
            line(
                k,
                [
                    cell(p["convergence_ms"]["p50"] for p in phases),
                    cell(p["convergence_ms"]["p99"] for p in phases),
                    cell(p["from_debounce_ms"]["p50"] for p in phases),
                    cell(p["from_debounce_ms"]["p99"] for p in phases),
                    "; ".join(t.replace('"', "") for t in types),
                    cell((p["bytes_per_proxy"]["median"] for p in phases), "{:,.0f}"),
                    cell((p["istiod_cpu_per_proxy_ms"] for p in phases), "{:.2f}"),
                ],
            )
    head(
        "**Reconnect** (every proxy drops its stream and connection and resumes up to date; "
        "istiod should send nothing)",
        ["responses sent", "bytes sent", "istiod CPU ms / proxy"],
    )
    for k in keys:
        phases = [r["reconnect"] for r in groups[k] if r.get("reconnect", {}).get("converged")]
        if not phases:
            continue
        line(
            k,
            [
                cell((sum(p["responses_by_type"].values()) for p in phases), "{:,.0f}"),
                cell((p["bytes_per_proxy"]["total"] for p in phases), "{:,.0f}"),
                cell((p["istiod_cpu_per_proxy_ms"] for p in phases), "{:.2f}"),
            ],
        )

    head(
        "**The floor** (SotW: the same clients against a server that only serializes and "
        "writes istiod's own responses; CPU ms per proxy, and istiod / floor)",
        [
            "phase",
            "istiod",
            "floor (serialize per stream)",
            "istiod / floor",
            "floor (one serialization per push)",
            "istiod / floor",
        ],
    )
    for k in keys:
        rs = [r for r in groups[k] if r.get("floor")]
        if not rs:
            continue
        for kind in ("initial", *CHANGES):
            ours: list[float | None] = []
            floors: dict[str, list[float | None]] = {"stream": [], "shared": []}
            ratios: dict[str, list[float | None]] = {"stream": [], "shared": []}
            for r in rs:
                mine = (
                    [r["initial"]["istiod_cpu_per_proxy_ms"]]
                    if kind == "initial"
                    else [p["istiod_cpu_per_proxy_ms"] for p in r["changes"] if p["name"] == kind]
                )
                if not mine:
                    continue
                m = statistics.median(mine)
                ours.append(m)
                for mode in floors:
                    f = next(
                        (
                            p["istiod_cpu_per_proxy_ms"]
                            for p in r["floor"].get(mode, [])
                            if p["name"] == f"floor-{kind}"
                        ),
                        None,
                    )
                    floors[mode].append(f)
                    ratios[mode].append(m / f if f else None)
            if not ours:
                continue
            line(
                k,
                [
                    kind,
                    cell(ours, "{:.2f}"),
                    cell(floors["stream"], "{:.2f}"),
                    cell(ratios["stream"], "{:.1f}x"),
                    cell(floors["shared"], "{:.2f}"),
                    cell(ratios["shared"], "{:.1f}x"),
                ],
            )
    return "\n".join(out)


def parse_sizes(raw: str) -> list[tuple[int, int]]:
    sizes = []
    for part in raw.split(","):
        s, _, p = part.partition("x")
        sizes.append((int(s), int(p)))
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100x100,300x100,1000x100", help="SERVICESxPROXIES,…")
    ap.add_argument("--apis", default="sotw,delta")
    ap.add_argument(
        "--labels",
        default="shared,distinct",
        help="shared: one app label for all proxies; distinct: one per proxy",
    )
    ap.add_argument("--template", default="virtualservice")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=180.0, help="per run, seconds")
    ap.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    ap.add_argument("--table-only", type=Path, default=None, help="print tables from FILE")
    args = ap.parse_args(argv)
    if args.table_only is not None:
        lines = args.table_only.read_text().splitlines()
        print(tables([json.loads(x) for x in lines if x.strip()]))
        return 0
    rows: list[Row] = []
    combos = [
        (s, p, api, labels)
        for s, p in parse_sizes(args.sizes)
        for api in args.apis.split(",")
        for labels in args.labels.split(",")
    ]
    for run_index in range(args.runs):
        for s, p, api, labels in combos:
            opts = Options(
                services=s,
                proxies=p,
                api=api,
                template=args.template,
                rounds=args.rounds,
                workers=args.workers,
                timeout=args.timeout,
                label_groups=1 if labels == "shared" else p,
                quiet=True,
            )
            t = time.monotonic()
            result = run(opts).to_json()
            rows.append(result)
            init = result["initial"]["convergence_ms"]
            print(
                f"run {run_index + 1}/{args.runs} {s}x{p} {api} {labels}: ok={result['ok']} "
                f"initial p50 {init['p50']} p99 {init['p99']} ms "
                f"({time.monotonic() - t:.1f}s)",
                file=sys.stderr,
                flush=True,
            )
            if args.out is not None:
                with args.out.open("a") as f:
                    f.write(json.dumps(result, default=str) + "\n")
    print(tables(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
