"""The human-readable report of one run (what `python benchmarks/xds_push.py` prints)."""

from __future__ import annotations

import statistics

from benchmarks.results import PhaseResult, RunResult


def _ms(q: dict[str, float | None]) -> str:
    if not q or q.get("p50") is None:
        return "-"
    return f"p50 {q['p50']:.1f} / p99 {q['p99']:.1f} / max {q['max']:.1f} ms"


def fmt_phase(p: PhaseResult) -> str:
    """One line per phase, for progress output."""
    label = f"{p.name}#{p.round}" if p.round else p.name
    s = (
        f"{label:<12} converged {p.converged}"
        f"{' (NOT: ' + str(len(p.not_converged)) + ')' if p.not_converged else ''}"
        f"  {_ms(p.convergence_ms)}  types {p.responses_by_type}"
        f"  bytes/proxy {p.bytes_per_proxy.get('median', 0):,.0f}"
        f"  istiod CPU {p.istiod_cpu_s:.3f}s"
    )
    if p.from_debounce_ms:
        s += f"  | from debounce end: {_ms(p.from_debounce_ms)}"
    return s


def fmt_floor(p: PhaseResult) -> str:
    return f"{p.name.removeprefix('floor-')} {p.istiod_cpu_per_proxy_ms:.3f} ms/proxy"


def floor_ratios(r: RunResult, mode: str) -> dict[str, tuple[float, float, float | None]]:
    """Per phase kind: (istiod CPU ms / proxy (median over rounds), floor CPU ms / proxy,
    istiod / floor)."""
    out: dict[str, tuple[float, float, float | None]] = {}
    mine: dict[str, list[float]] = {"initial": [r.initial.istiod_cpu_per_proxy_ms]}
    for p in r.changes:
        mine.setdefault(p.name, []).append(p.istiod_cpu_per_proxy_ms)
    for p in r.floor.get(mode, []):
        kind = p.name.removeprefix("floor-")
        if kind not in mine:
            continue
        ours = statistics.median(mine[kind])
        floor = p.istiod_cpu_per_proxy_ms
        out[kind] = (ours, floor, round(ours / floor, 2) if floor > 0 else None)
    return out


def _bytes_by_type(p: PhaseResult) -> str:
    parts = ", ".join(f"{t} {v:,.0f}" for t, v in p.bytes_by_type_per_proxy.items())
    return f"({parts})" if parts else ""


def report(r: RunResult) -> str:
    o = r.options
    lines = [
        f"xds_push: template={o['template']} services={r.services} (registry) "
        f"proxies={r.proxies} api={o['api']}  machine: {r.machine['nproc']} CPU, "
        f"{r.machine['mem_gib']} GiB, {r.machine['cpu']}",
        f"initial convergence (t0 → last initial ACK): {_ms(r.initial.convergence_ms)}; "
        f"connect → synced: {_ms(r.initial_connect_to_sync_ms)}; converged "
        f"{r.initial.converged}/{r.proxies}",
        f"  initial responses by type {r.initial.responses_by_type}, resources "
        f"{r.initial.resources_by_type}, bytes/proxy median "
        f"{r.initial.bytes_per_proxy.get('median', 0):,.0f} "
        f"{_bytes_by_type(r.initial)}",
        f"  istiod CPU {r.initial.istiod_cpu_s:.3f}s over {r.initial.duration_s:.2f}s "
        f"= {r.initial.istiod_cpu_per_proxy_ms:.2f} ms per proxy (idle-corrected; idle "
        f"{r.idle_cpu_per_s * 1000:.1f} ms/s)",
    ]
    for p in r.changes:
        lines.append(
            f"change {p.name}#{p.round}: write → last ACK {_ms(p.convergence_ms)}; "
            f"converged {p.converged}/{r.proxies}"
            + (f" NOT {p.not_converged[:10]}" if p.not_converged else "")
        )
        lines.append(
            f"  write → config event {p.watch_delay_ms} ms, → debounce end "
            f"{p.debounce_end_ms} ms ({p.debounce_source}); PushContext build "
            f"{p.push_build_ms} ms; debounce end → last ACK {_ms(p.from_debounce_ms)}"
        )
        lines.append(
            f"  responses by type {p.responses_by_type}, resources {p.resources_by_type}, "
            f"bytes/proxy median {p.bytes_per_proxy.get('median', 0):,.0f} {_bytes_by_type(p)}; "
            f"istiod CPU "
            f"{p.istiod_cpu_s:.3f}s (net {p.istiod_cpu_net_s:.3f}s) = "
            f"{p.istiod_cpu_per_proxy_ms:.2f} ms per proxy"
        )
    rc = r.reconnect
    if rc.converged:
        sent = sum(rc.responses_by_type.values())
        lines.append(
            f"reconnect (up to date, new streams): {rc.converged}/{r.proxies} reconnected; "
            f"sent {sent} responses {rc.responses_by_type or ''}, "
            f"{rc.bytes_per_proxy.get('total', 0):,.0f} bytes in all; istiod CPU "
            f"{rc.istiod_cpu_s:.3f}s = {rc.istiod_cpu_per_proxy_ms:.2f} ms per proxy"
        )
    for mode in r.floor:
        parts = []
        for kind, (ours, floor, ratio) in floor_ratios(r, mode).items():
            shown = f"{ratio:.1f}x" if ratio is not None else "-"
            parts.append(f"{kind} {ours:.2f} / {floor:.3f} ms = {shown}")
        how = "one serialization per push" if mode == "shared" else "serialize per stream"
        lines.append(f"floor ({mode}: {how}): istiod / floor CPU per proxy: " + "; ".join(parts))
    full = [p.istiod_cpu_per_proxy_ms for p in r.changes if p.name == "route"]
    if full:
        lines.append(
            "per-proxy generation time (istiod CPU per proxy per full push, route change): "
            + ", ".join(f"{v:.2f}" for v in full)
            + " ms"
        )
    lines.append(
        f"istiod start (spawn → ready) {r.istiod_start_s}s; /debug/syncz: "
        f"{r.server_side_synced}/{r.proxies} proxies acked every type"
    )
    lines.append(
        f"istiod RSS {r.istiod_rss_mb} MiB (before clients {r.istiod_rss_before_clients_mb}), "
        f"peak {r.istiod_peak_rss_mb} MiB; exit code {r.istiod_exit_code}; client processes "
        f"CPU {r.client_cpu_s}s; wall {r.wall_s}s; other processes on the box "
        f"{r.other_cpu_s}s CPU (load average at start {r.loadavg_start:.2f})",
    )
    if r.istiod_problems:
        lines.append(f"istiod config problems: {r.istiod_problems[:5]}")
    if r.client_errors:
        lines.append(f"client errors: {r.client_errors[:5]}")
    if r.istiod_warnings:
        lines.append(f"istiod warnings: {r.istiod_warnings[:5]}")
    lines.append("OK" if r.ok else "NOT OK")
    return "\n".join(lines)
