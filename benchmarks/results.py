"""What one benchmark run measured (`RunResult`, one `PhaseResult` per phase), and the helpers
that compute it: quantiles over proxies, per-type traffic from the clients' response records,
and machine-wide CPU and identity from /proc.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.adsclient import Record


def quantiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p99/max in milliseconds (nearest-rank)."""
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        index = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
        return round(ordered[index] * 1000, 2)

    return {
        "n": len(ordered),
        "p50": rank(0.5),
        "p99": rank(0.99),
        "max": round(ordered[-1] * 1000, 2),
    }


@dataclass
class PhaseResult:
    name: str
    round: int = 0
    converged: int = 0
    not_converged: list[int] = field(default_factory=list)
    convergence_ms: dict[str, float | None] = field(default_factory=dict)
    from_debounce_ms: dict[str, float | None] = field(default_factory=dict)
    debounce_source: str = ""
    watch_delay_ms: float | None = None  # write → istiod logged the config event
    debounce_end_ms: float | None = None  # write → "Push debounce stable"
    push_build_ms: float | None = None  # PushContext build, from istiod's "XDS: Pushing" line
    responses_by_type: dict[str, int] = field(default_factory=dict)
    resources_by_type: dict[str, int] = field(default_factory=dict)
    bytes_per_proxy: dict[str, float] = field(default_factory=dict)
    bytes_by_type_per_proxy: dict[str, float] = field(default_factory=dict)  # medians
    istiod_cpu_s: float = 0.0
    istiod_cpu_net_s: float = 0.0  # minus the idle rate over the phase's duration
    istiod_cpu_per_proxy_ms: float = 0.0
    duration_s: float = 0.0


@dataclass
class RunResult:
    options: dict[str, Any]
    machine: dict[str, Any]
    services: int = 0
    proxies: int = 0
    initial: PhaseResult = field(default_factory=lambda: PhaseResult("initial"))
    initial_connect_to_sync_ms: dict[str, float | None] = field(default_factory=dict)
    changes: list[PhaseResult] = field(default_factory=list)
    # Every client reconnects up to date after the changes: what istiod sent them (should be
    # nothing) and its CPU for the reconnects.
    reconnect: PhaseResult = field(default_factory=lambda: PhaseResult("reconnect"))
    # The floor (SotW): the same clients against a server that only serializes and writes
    # istiod's own responses, per mode ("stream", "shared"); the `istiod_*` fields of these
    # phases hold the floor server's CPU.
    floor: dict[str, list[PhaseResult]] = field(default_factory=dict)
    idle_cpu_per_s: float = 0.0
    istiod_rss_mb: float = 0.0
    istiod_peak_rss_mb: float = 0.0
    istiod_rss_before_clients_mb: float = 0.0
    istiod_exit_code: int | None = None
    istiod_start_s: float = 0.0  # spawn → /ready 200 (config loaded, servers listening)
    server_side_synced: int = 0  # /debug/syncz at the end: connections with every type acked
    client_cpu_s: float = 0.0
    client_errors: list[str] = field(default_factory=list)
    istiod_problems: list[str] = field(default_factory=list)
    istiod_warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    # Whole-machine busy CPU during the run, and what is left after istiod, the clients and this
    # harness: CPU used by other processes on the box (noise; the box may be shared).
    system_busy_cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    loadavg_start: float = 0.0
    ok: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def fill_traffic(phase: PhaseResult, records: list[Record], clients: int) -> None:
    """Responses, resources and bytes per proxy (median over proxies) of `records`."""
    responses: Counter[str] = Counter()
    resources: Counter[str] = Counter()
    per_client: Counter[int] = Counter()
    per_client_type: dict[str, Counter[int]] = defaultdict(Counter)
    for r in records:
        responses[r.type] += 1
        resources[r.type] += r.resources + r.removed
        per_client[r.client] += r.bytes
        per_client_type[r.type][r.client] += r.bytes
    phase.responses_by_type = dict(sorted(responses.items()))
    phase.resources_by_type = dict(sorted(resources.items()))
    phase.bytes_by_type_per_proxy = {
        t: statistics.median([by_client.get(i, 0) for i in range(clients)])
        for t, by_client in sorted(per_client_type.items())
    }
    values = [per_client.get(i, 0) for i in range(clients)]
    phase.bytes_per_proxy = {
        "median": statistics.median(values) if values else 0,
        "max": max(values) if values else 0,
        "total": sum(values),
    }


def system_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all CPUs), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def machine_info() -> dict[str, Any]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": model,
        "python": sys.version.split()[0],
    }
