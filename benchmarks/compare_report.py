"""The figures of the side-by-side run against sovereign: one row per phase, medians over
runs, the ratios pyistio / sovereign and the Markdown table (benchmarks.sovereign_compare)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.fetchpool import FetchResult
from benchmarks.sovereign_proc import DEFAULT_EXTRAS

Row = dict[str, Any]
TYPES = ("CDS", "RDS")
# sovereign as `pip install sovereign[orjson,httptools]` (its own optional speed-ups: orjson
# for its JSON responses, httptools for uvicorn's HTTP parsing), and as a plain install.
SOVEREIGNS: dict[str, tuple[str, ...]] = {"sovereign": DEFAULT_EXTRAS, "sovereign-plain": ()}
SERVERS = ("sovereign", "sovereign-plain", "pyistio")
TARGET_RATIO = 25.0


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return round(ordered[index], 2)


def phase_row(
    *,
    run_id: str,
    services: int,
    run: int,
    server: str,
    type_: str,
    protocol: str,
    clients: int,
    start_at: float,
    end_at: float,
    results: Sequence[FetchResult],
    server_cpu_s: float,
    other_cpu_s: float,
    busy_s: float,
    harness_cpu_s: float,
    server_rss_mb: float,
) -> Row:
    responses = sum(r.responses for r in results)
    in_window = sum(r.in_window for r in results)
    seconds = end_at - start_at
    done_at = max((r.done_at for r in results), default=end_at)
    latencies = [x for r in results for x in r.latencies_ms]
    client_cpu = sum(r.cpu_s for r in results)
    warm_sizes = sorted({s for r in results for s in r.warmup_sizes})
    warm_resources = sorted({n for r in results for n in r.warmup_resources})
    return {
        "kind": "phase",
        "run_id": run_id,
        "services": services,
        "run": run,
        "server": server,
        "type": type_,
        "protocol": protocol,
        "clients": clients,
        "seconds": round(seconds, 3),
        "drain_s": round(done_at - end_at, 3),
        "responses": responses,
        "in_window": in_window,
        "responses_per_s": round(in_window / seconds, 2) if seconds > 0 else None,
        "server_cpu_s": round(server_cpu_s, 3),
        "cpu_ms_per_response": round(server_cpu_s / responses * 1000, 3) if responses else None,
        "server_cores": round(server_cpu_s / (done_at - start_at), 3),
        "client_cpu_s": round(client_cpu, 3),
        "client_cpu_ms_per_response": round(client_cpu / responses * 1000, 3)
        if responses
        else None,
        "bytes_per_response": round(sum(r.bytes for r in results) / responses) if responses else 0,
        "min_size": min((r.min_size for r in results if r.responses), default=0),
        "max_size": max((r.max_size for r in results if r.responses), default=0),
        "latency_ms": {
            "p50": nearest_rank(latencies, 0.5),
            "p99": nearest_rank(latencies, 0.99),
            "max": round(max(latencies), 2) if latencies else None,
        },
        "errors": sum(r.errors for r in results),
        "error_samples": [s for r in results for s in r.error_samples][:5],
        "late_clients": sum(r.late_clients for r in results),
        "warmup_resources": warm_resources,
        "warmup_sizes": [warm_sizes[0], warm_sizes[-1]] if warm_sizes else [],
        "other_server_cpu_s": round(other_cpu_s, 3),
        # Busy CPU of the machine that is neither the server, the clients nor the harness.
        "other_busy_cpu_s": round(busy_s - server_cpu_s - client_cpu - harness_cpu_s, 3),
        "other_busy_cores": round(
            max(0.0, busy_s - server_cpu_s - client_cpu - harness_cpu_s) / (done_at - start_at),
            3,
        ),
        "server_rss_mb": round(server_rss_mb, 1),
    }


def _median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def cell(values: Iterable[float | None], fmt: str) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    med = fmt.format(statistics.median(vals))
    if len(vals) == 1:
        return med
    return f"{med} [{fmt.format(min(vals))}-{fmt.format(max(vals))}]"


@dataclass
class Summary:
    services: int
    runs: int
    rps: dict[tuple[str, str], float | None] = field(default_factory=dict)  # (server, type)
    cpu_ms: dict[tuple[str, str], float | None] = field(default_factory=dict)
    # (sovereign variant, type or "mixed") → pyistio / that variant
    throughput_ratio: dict[tuple[str, str], float | None] = field(default_factory=dict)
    cpu_ratio: dict[tuple[str, str], float | None] = field(default_factory=dict)


def _mixed_rps(rps: Sequence[float | None]) -> float | None:
    """Responses per second when CDS and RDS fetches alternate one for one (the harmonic mean
    of the two rates)."""
    if not rps or any(r is None or r <= 0 for r in rps):
        return None
    return len(rps) / sum(1 / r for r in rps if r)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def counted(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r.get("kind") == "phase" and not r.get("discarded")]


def summarize(rows: Sequence[Row]) -> list[Summary]:
    by_size: dict[int, list[Row]] = defaultdict(list)
    for row in counted(rows):
        by_size[row["services"]].append(row)
    out = []
    for services in sorted(by_size, reverse=True):
        phases = by_size[services]
        s = Summary(services, len({r["run"] for r in phases}))
        types = [t for t in TYPES if any(r["type"] == t for r in phases)]
        for server in SERVERS:
            for type_ in types:
                mine = [r for r in phases if r["server"] == server and r["type"] == type_]
                s.rps[server, type_] = _median(r["responses_per_s"] for r in mine)
                s.cpu_ms[server, type_] = _median(r["cpu_ms_per_response"] for r in mine)
        for variant in SOVEREIGNS:
            for type_ in types:
                s.throughput_ratio[variant, type_] = _ratio(
                    s.rps["pyistio", type_], s.rps[variant, type_]
                )
                s.cpu_ratio[variant, type_] = _ratio(
                    s.cpu_ms[variant, type_], s.cpu_ms["pyistio", type_]
                )
            s.throughput_ratio[variant, "mixed"] = _ratio(
                _mixed_rps([s.rps["pyistio", t] for t in types]),
                _mixed_rps([s.rps[variant, t] for t in types]),
            )
            mine_cpu = [s.cpu_ms["pyistio", t] for t in types]
            their_cpu = [s.cpu_ms[variant, t] for t in types]
            if all(mine_cpu) and all(their_cpu):
                s.cpu_ratio[variant, "mixed"] = sum(x or 0 for x in their_cpu) / sum(
                    x or 0 for x in mine_cpu
                )
        out.append(s)
    return out


def table(rows: Sequence[Row]) -> str:
    phases = counted(rows)
    setups = {r["services"]: r for r in rows if r.get("kind") == "setup"}
    groups: dict[tuple[int, str, str], list[Row]] = defaultdict(list)
    for r in phases:
        groups[r["services"], r["type"], r["server"]].append(r)
    out = [
        "| services | type | server | runs | responses / s | server CPU ms / response | "
        "server cores | client CPU ms / response | bytes / response | latency p50 ms | "
        "p99 ms | errors | other busy cores |",
        "|---:|---|---|---:|---|---|---|---|---:|---|---|---:|---|",
    ]
    for services, type_, server in sorted(
        groups, key=lambda k: (-k[0], TYPES.index(k[1]), SERVERS.index(k[2]))
    ):
        g = groups[services, type_, server]
        out.append(
            f"| {services:,} | {type_} | {server} | {len(g)} | "
            f"{cell((r['responses_per_s'] for r in g), '{:,.1f}')} | "
            f"{cell((r['cpu_ms_per_response'] for r in g), '{:.2f}')} | "
            f"{cell((r['server_cores'] for r in g), '{:.2f}')} | "
            f"{cell((r['client_cpu_ms_per_response'] for r in g), '{:.2f}')} | "
            f"{round(statistics.median(r['bytes_per_response'] for r in g)):,} | "
            f"{cell((r['latency_ms']['p50'] for r in g), '{:.1f}')} | "
            f"{cell((r['latency_ms']['p99'] for r in g), '{:.1f}')} | "
            f"{sum(r['errors'] for r in g)} | "
            f"{cell((r.get('other_busy_cores') for r in g), '{:.2f}')} |"
        )
    out.append("")
    out.append(
        "| services | pyistio / … | CDS | RDS | mixed (1 CDS : 1 RDS) | "
        f"target {TARGET_RATIO:.0f}x |"
    )
    out.append("|---:|---|---|---|---|---|")

    def x(v: float | None) -> str:
        return f"{v:.1f}x" if v is not None else "-"

    for s in summarize(rows):
        for variant in SOVEREIGNS:
            if s.throughput_ratio.get((variant, "mixed")) is None:
                continue
            met = s.throughput_ratio[variant, "mixed"]
            verdict = "-" if met is None else ("met" if met >= TARGET_RATIO else "**not met**")
            out.append(
                f"| {s.services:,} | responses / s, pyistio / {variant} | "
                f"{x(s.throughput_ratio.get((variant, 'CDS')))} | "
                f"{x(s.throughput_ratio.get((variant, 'RDS')))} | "
                f"{x(s.throughput_ratio[variant, 'mixed'])} | {verdict} |"
            )
            out.append(
                f"| {s.services:,} | CPU per response, {variant} / pyistio | "
                f"{x(s.cpu_ratio.get((variant, 'CDS')))} | "
                f"{x(s.cpu_ratio.get((variant, 'RDS')))} | "
                f"{x(s.cpu_ratio.get((variant, 'mixed')))} | |"
            )
    for services in sorted(setups, reverse=True):
        st = setups[services]
        sizes = ", ".join(
            f"{server} {' '.join(f'{t} {n:,}' for t, n in by_type.items())}"
            for server, by_type in st["bytes"].items()
        )
        out.append("")
        out.append(
            f"{services:,} services: equal resources "
            f"{'yes' if st['equal'] else 'NO: ' + '; '.join(st['problems'])} "
            f"({'; '.join(f'{t} {n}' for t, n in st['resources'].items())} resources); "
            f"bytes of one full response: {sizes} "
            "(pyistio: gRPC protobuf message; sovereign: HTTP JSON body)."
        )
    return "\n".join(out)
