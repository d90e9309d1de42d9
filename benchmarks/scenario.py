"""The xDS push scenario: one run of istiod and M simulated Envoys, phase by phase.

1. render the template for N services into RUN/config, plus the three files of
   `benchmarks.changes`; start istiod on that directory;
2. start M clients in worker processes; all connect at once (t0) and follow Envoy's order;
   initial convergence = t0 → the client's last initial ACK (and connect → same);
3. istiod's idle CPU rate over `idle_window`, with every client connected;
4. the changes, each by atomically rewriting one file; convergence = file rename → the
   client's ACK of the last response of that push, per proxy; also measured from istiod's
   "Push debounce stable" log line (--log-level info; its wall-clock stamps are mapped to
   CLOCK_MONOTONIC), so the watch + debounce delay is split out;
5. at the end: RSS and peak RSS (VmHWM), /debug/syncz, istiod's exit code and warnings, the
   clients' CPU and the CPU of other processes on the machine.

A phase ends when every client has received at least one response after the write and nothing
arrived for a quiet period (PILOT_DEBOUNCE_AFTER + 0.4 s), or at `phase_timeout`. The whole
run is bounded by `timeout`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.adsclient import client_specs
from benchmarks.adspool import ClientPool, Collector
from benchmarks.changes import CHANGE_FILES, CHANGES, atomic_write, write_initial
from benchmarks.floor import FloorServer, fetch_responses
from benchmarks.istiod_proc import IstiodProcess, wall_to_monotonic_offset
from benchmarks.render import render_to, resolve_template
from benchmarks.report import fmt_floor, fmt_phase
from benchmarks.results import (
    PhaseResult,
    RunResult,
    fill_traffic,
    machine_info,
    quantiles,
    system_busy_seconds,
)


@dataclass
class Options:
    services: int = 100
    proxies: int = 50
    template: str = "virtualservice"
    api: str = "sotw"
    instances: int | None = None
    workers: int = 4
    rounds: int = 1
    changes: tuple[str, ...] = CHANGES
    timeout: float = 120.0
    phase_timeout: float = 30.0
    log_level: str = "info"
    env: dict[str, str] = field(default_factory=dict)
    connect_spread: float = 0.0
    label_groups: int = 1
    idle_window: float = 1.0
    reconnect: bool = True  # after the changes, every client reconnects up to date
    # SotW only: after istiod, the same clients against the floor (benchmarks.floor), an
    # ideal server that only serializes and writes istiod's own responses; modes: "stream"
    # (serialize per stream), "shared" (one serialization per push, same bytes to all).
    floor: tuple[str, ...] = ("stream", "shared")
    workdir: Path | None = None
    keep: bool = False
    quiet: bool = False


def go_duration(raw: str) -> float:
    """A Go duration ("100ms", "1s", "1m30s") in seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", raw)
    if not parts or "".join(a + b for a, b in parts) != raw:
        raise ValueError(f"not a Go duration: {raw!r}")
    return sum(float(a) * units[b] for a, b in parts)


def run(opts: Options) -> RunResult:
    return Bench(opts).run()


class Bench:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.say: Callable[[str], None] = (
            (lambda s: None) if opts.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
        )
        env_debounce = opts.env.get("PILOT_DEBOUNCE_AFTER", os.environ.get("PILOT_DEBOUNCE_AFTER"))
        self.debounce_after = go_duration(env_debounce) if env_debounce else 0.1
        self.quiet_period = self.debounce_after + 0.4
        self.offset = wall_to_monotonic_offset()
        self.floor_responses: dict[str, bytes] = {}
        self.floor_cpu_s = 0.0  # the floor servers' and their clients' CPU (not "other")

    def run(self) -> RunResult:
        """Set up, run the phases, and always tear down (workers, istiod, the run directory)."""
        opts = self.opts
        started = time.monotonic()
        busy0 = system_busy_seconds()
        self_cpu0 = sum(os.times()[:2])
        istiod_cpu_total = 0.0
        loadavg = os.getloadavg()[0]
        deadline = started + opts.timeout
        own_tmp = None
        if opts.workdir is None:
            own_tmp = tempfile.TemporaryDirectory(prefix="xds-push-")
            workdir = Path(own_tmp.name)
        else:
            workdir = opts.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        result = RunResult(
            options={k: str(v) for k, v in asdict(opts).items()}, machine=machine_info()
        )
        config = workdir / "config"
        config.mkdir(exist_ok=True)
        template = resolve_template(opts.template)
        render_to(template, config, opts.services, opts.instances)
        write_initial(config)
        istiod = IstiodProcess(config, workdir / "istiod", log_level=opts.log_level, env=opts.env)
        pool = ClientPool(opts.proxies)
        try:
            t_spawn = time.monotonic()
            istiod.start(timeout=max(30.0, min(300.0, deadline - t_spawn)))
            result.istiod_start_s = round(time.monotonic() - t_spawn, 2)
            self.say(f"istiod pid {istiod.pid} grpc {istiod.grpc} http {istiod.http}")
            status = istiod.get_json("/debug/push_status")
            result.istiod_problems = list(status.get("problems", []))
            registry = istiod.get_json("/debug/registryz")
            result.services = len(registry)
            result.proxies = opts.proxies
            result.istiod_rss_before_clients_mb = round(istiod.rss_mb()[0], 1)
            pool.start(
                client_specs(opts.proxies, opts.label_groups),
                istiod.grpc,
                opts.api == "delta",
                opts.workers,
                deadline,
                opts.connect_spread,
                ready_by=min(deadline, started + 60),
            )
            self._phases(istiod, pool, result, deadline)
        finally:
            pool.stop()
            if istiod.running:
                istiod_cpu_total = istiod.cpu_seconds()
                warnings = [
                    f"{line.level} {line.logger}: {line.message}"
                    for line in istiod.log_lines()
                    if line.level in ("warn", "error", "fatal")
                ]
                result.istiod_warnings = warnings[:20]
            result.istiod_exit_code = istiod.stop()
            pool.close()
            if own_tmp is not None and not opts.keep:
                own_tmp.cleanup()
            elif own_tmp is not None:
                self.say(f"kept {workdir}")
        if self.floor_responses:
            for mode in opts.floor:
                if time.monotonic() + 10 > deadline:
                    break
                result.floor[mode] = self._floor_run(mode, deadline)
                self.say(f"floor ({mode}): " + ", ".join(fmt_floor(p) for p in result.floor[mode]))
        collector = pool.collector
        result.client_cpu_s = round(pool.cpu_seconds, 2)
        result.client_errors = [f"client {e.client}: {e.detail}" for e in collector.errors][:20]
        result.wall_s = round(time.monotonic() - started, 2)
        result.loadavg_start = loadavg
        result.system_busy_cpu_s = round(system_busy_seconds() - busy0, 2)
        own = sum(os.times()[:2]) - self_cpu0
        result.other_cpu_s = round(
            max(
                0.0,
                result.system_busy_cpu_s
                - istiod_cpu_total
                - result.client_cpu_s
                - own
                - self.floor_cpu_s,
            ),
            2,
        )
        result.ok = (
            result.initial.converged == opts.proxies
            and all(not p.not_converged for p in result.changes)
            and (
                not opts.reconnect
                or (not result.reconnect.not_converged and not result.reconnect.responses_by_type)
            )
            and not result.client_errors
            and result.istiod_exit_code == 0
            and result.server_side_synced == opts.proxies
            and all(
                p.converged == opts.proxies and not p.not_converged
                for phases in result.floor.values()
                for p in phases
            )
        )
        return result

    def _phases(
        self, istiod: IstiodProcess, pool: ClientPool, result: RunResult, deadline: float
    ) -> None:
        """Initial convergence, the idle rate, the changes, and the end-of-run checks."""
        opts = self.opts
        collector = pool.collector

        # ---- initial convergence ----------------------------------------------------------
        cpu0 = istiod.cpu_seconds()
        t0 = time.monotonic()
        pool.go()
        self.say(f"{opts.proxies} clients connecting ({opts.api})")
        phase_end = min(deadline, t0 + opts.phase_timeout + opts.connect_spread)
        while len(collector.synced) < opts.proxies and time.monotonic() < phase_end:
            pool.pump(0.02)
        self._quiet(pool, phase_end)
        cpu1 = istiod.cpu_seconds()
        t1 = time.monotonic()
        result.initial = self._initial_phase(collector, t0, t1, cpu1 - cpu0)
        result.initial_connect_to_sync_ms = quantiles(
            [
                collector.synced[c] - collector.connected[c]
                for c in collector.synced
                if c in collector.connected
            ]
        )
        self.say(fmt_phase(result.initial))

        # ---- idle rate --------------------------------------------------------------------
        c_idle, t_idle = istiod.cpu_seconds(), time.monotonic()
        idle_end = t_idle + opts.idle_window
        while time.monotonic() < idle_end:
            pool.pump(0.05)
        result.idle_cpu_per_s = round(
            (istiod.cpu_seconds() - c_idle) / (time.monotonic() - t_idle), 4
        )
        result.initial.istiod_cpu_net_s = round(
            max(0.0, result.initial.istiod_cpu_s - result.idle_cpu_per_s * (t1 - t0)), 3
        )
        result.initial.istiod_cpu_per_proxy_ms = round(
            result.initial.istiod_cpu_net_s / max(1, opts.proxies) * 1000, 2
        )

        # ---- changes ----------------------------------------------------------------------
        for rnd in range(1, opts.rounds + 1):
            for change in opts.changes:
                if time.monotonic() + self.quiet_period > deadline:
                    break
                phase = self._change_phase(
                    istiod, pool, change, rnd, deadline, result.idle_cpu_per_s
                )
                result.changes.append(phase)
                self.say(fmt_phase(phase))

        # ---- the end of the changes: memory, and istiod's own view of the ACKs -----------
        result.istiod_rss_mb, result.istiod_peak_rss_mb = (round(v, 1) for v in istiod.rss_mb())
        result.server_side_synced = sum(
            1
            for status in istiod.get_json("/debug/syncz")
            if status.get("resources")
            and all(
                r.get("sent") and r["sent"] == r.get("acked") for r in status["resources"].values()
            )
        )

        # ---- reconnect: up-to-date proxies come back on new streams ---------------------------
        if opts.reconnect and time.monotonic() + self.quiet_period < deadline:
            result.reconnect = self._reconnect_phase(istiod, pool, deadline, result.idle_cpu_per_s)
            self.say(fmt_phase(result.reconnect))
            result.istiod_rss_mb, result.istiod_peak_rss_mb = (round(v, 1) for v in istiod.rss_mb())

        # ---- what the floor will serve: istiod's own responses to one of these proxies -----
        if opts.floor and opts.api == "sotw" and time.monotonic() + 10 < deadline:
            spec = client_specs(1, opts.label_groups)[0]
            self.floor_responses = fetch_responses(istiod.grpc, spec, timeout=30)

    def _quiet(self, pool: ClientPool, until: float) -> None:
        """Pump until nothing has arrived for the quiet period (or `until`)."""
        while time.monotonic() < until:
            pool.pump(0.02)
            if time.monotonic() - max(pool.collector.last_record_at, 0.0) >= self.quiet_period:
                return

    def _initial_phase(self, c: Collector, t0: float, t1: float, cpu: float) -> PhaseResult:
        phase = PhaseResult("initial")
        phase.converged = len(c.synced)
        phase.not_converged = sorted(set(range(c.clients)) - set(c.synced))
        phase.convergence_ms = quantiles([t - t0 for t in c.synced.values()])
        records = [r for r in c.records if r.received <= t1]
        fill_traffic(phase, records, c.clients)
        phase.istiod_cpu_s = round(cpu, 3)
        phase.duration_s = round(t1 - t0, 3)
        return phase

    def _change_phase(
        self,
        istiod: IstiodProcess,
        pool: ClientPool,
        change: str,
        rnd: int,
        deadline: float,
        idle_rate: float,
    ) -> PhaseResult:
        c = pool.collector
        file_name, make = CHANGE_FILES[change]
        path = istiod.config_dir / file_name
        cpu0 = istiod.cpu_seconds()
        atomic_write(path, make(rnd))
        t_write = time.monotonic()
        end = min(deadline, t_write + self.opts.phase_timeout)
        heard: set[int] = set()
        while time.monotonic() < end:
            pool.pump(0.02)
            heard = {r.client for r in c.since(t_write)}
            quiet = time.monotonic() - max(c.last_record_at, t_write)
            if len(heard) >= c.clients and quiet >= self.quiet_period:
                break
            if not heard and quiet >= max(5.0, 10 * self.quiet_period):
                break  # nothing at all: istiod did not push this change
        t_end = time.monotonic()
        cpu = istiod.cpu_seconds() - cpu0
        phase = PhaseResult(change, rnd)
        records = c.since(t_write)
        last_ack: dict[int, float] = {}
        for r in records:
            last_ack[r.client] = max(last_ack.get(r.client, 0.0), r.acked)
        phase.converged = len(last_ack)
        phase.not_converged = sorted(set(range(c.clients)) - set(last_ack))
        phase.convergence_ms = quantiles([t - t_write for t in last_ack.values()])
        fill_traffic(phase, records, c.clients)
        phase.istiod_cpu_s = round(cpu, 3)
        phase.duration_s = round(t_end - t_write, 3)
        phase.istiod_cpu_net_s = round(max(0.0, cpu - idle_rate * (t_end - t_write)), 3)
        phase.istiod_cpu_per_proxy_ms = round(phase.istiod_cpu_net_s / max(1, c.clients) * 1000, 2)
        self._debounce(istiod, phase, t_write, t_end, last_ack)
        return phase

    def _reconnect_phase(
        self, istiod: IstiodProcess, pool: ClientPool, deadline: float, idle_rate: float
    ) -> PhaseResult:
        """Every client closes its stream and connection and resumes on a new one with what it
        has (as Envoy does when istiod restarts). Up to date, each should be sent nothing: the
        phase records what was sent anyway, and istiod's CPU for the reconnects."""
        c = pool.collector
        before = dict(c.reconnected)
        cpu0 = istiod.cpu_seconds()
        t0 = time.monotonic()
        pool.reconnect()
        end = min(deadline, t0 + self.opts.phase_timeout)
        try:
            while time.monotonic() < end:
                pool.pump(0.02)
                done = [i for i, t in c.reconnected.items() if t != before.get(i)]
                if len(done) >= c.clients:
                    break
        finally:
            pool.reconnected()
        t_all = time.monotonic()
        # Then as long as a push would take to show up: anything istiod sends now is a resend.
        self._quiet(pool, min(deadline, max(t_all, c.last_record_at) + self.quiet_period))
        quiet_until = time.monotonic() + self.quiet_period
        while time.monotonic() < min(deadline, quiet_until):
            pool.pump(0.02)
        t_end = time.monotonic()
        cpu = istiod.cpu_seconds() - cpu0
        phase = PhaseResult("reconnect")
        times = [t - t0 for i, t in c.reconnected.items() if t != before.get(i)]
        phase.converged = len(times)
        phase.not_converged = sorted(
            i for i in range(c.clients) if c.reconnected.get(i) == before.get(i)
        )
        phase.convergence_ms = quantiles(times)  # signal → new stream's requests written
        fill_traffic(phase, c.since(t0), c.clients)
        phase.istiod_cpu_s = round(cpu, 3)
        phase.duration_s = round(t_end - t0, 3)
        phase.istiod_cpu_net_s = round(max(0.0, cpu - idle_rate * (t_end - t0)), 3)
        phase.istiod_cpu_per_proxy_ms = round(phase.istiod_cpu_net_s / max(1, c.clients) * 1000, 2)
        return phase

    def _floor_run(self, mode: str, deadline: float) -> list[PhaseResult]:
        """The same clients against the floor server: the initial sync, then one push of each
        change kind (same types and bytes as istiod's), each measured like istiod's phases:
        the server's CPU from the push until every client has ACKed and all is quiet."""
        opts = self.opts
        floor = FloorServer(shared_bytes=mode == "shared")
        pool = ClientPool(opts.proxies)
        phases: list[PhaseResult] = []
        try:
            floor.start(self.floor_responses, timeout=30)
            pool.start(
                client_specs(opts.proxies, opts.label_groups),
                floor.target,
                False,
                opts.workers,
                deadline,
                0.0,
                ready_by=min(deadline, time.monotonic() + 60),
            )
            c = pool.collector
            cpu0, t0 = floor.cpu_seconds(), time.monotonic()
            pool.go()
            end = min(deadline, t0 + opts.phase_timeout)
            while len(c.synced) < opts.proxies and time.monotonic() < end:
                pool.pump(0.02)
            self._quiet(pool, end)
            initial = self._initial_phase(c, t0, time.monotonic(), floor.cpu_seconds() - cpu0)
            initial.name = "floor-initial"
            initial.istiod_cpu_per_proxy_ms = round(
                initial.istiod_cpu_s / max(1, opts.proxies) * 1000, 2
            )
            phases.append(initial)
            for kind in ("route", "cluster", "endpoint"):
                if time.monotonic() + self.quiet_period > deadline:
                    break
                cpu0, t0 = floor.cpu_seconds(), time.monotonic()
                floor.push(kind, timeout=max(1.0, min(60.0, deadline - t0)))
                end = min(deadline, t0 + opts.phase_timeout)
                while time.monotonic() < end:
                    pool.pump(0.02)
                    heard = {r.client for r in c.since(t0)}
                    quiet = time.monotonic() - max(c.last_record_at, t0)
                    if len(heard) >= c.clients and quiet >= self.quiet_period:
                        break
                cpu = floor.cpu_seconds() - cpu0
                records = c.since(t0)
                last_ack: dict[int, float] = {}
                for r in records:
                    last_ack[r.client] = max(last_ack.get(r.client, 0.0), r.acked)
                phase = PhaseResult(f"floor-{kind}")
                phase.converged = len(last_ack)
                phase.not_converged = sorted(set(range(c.clients)) - set(last_ack))
                phase.convergence_ms = quantiles([t - t0 for t in last_ack.values()])
                fill_traffic(phase, records, c.clients)
                phase.istiod_cpu_s = phase.istiod_cpu_net_s = round(cpu, 3)
                phase.istiod_cpu_per_proxy_ms = round(cpu / max(1, c.clients) * 1000, 3)
                phase.duration_s = round(time.monotonic() - t0, 3)
                phases.append(phase)
        finally:
            pool.stop()
            pool.close()
            with contextlib.suppress(Exception):
                self.floor_cpu_s += floor.cpu_seconds()
            floor.stop()
            self.floor_cpu_s += pool.cpu_seconds
        return phases

    def _debounce(
        self,
        istiod: IstiodProcess,
        phase: PhaseResult,
        t_write: float,
        t_end: float,
        last_ack: dict[int, float],
    ) -> None:
        """Split out watch + debounce delay using istiod's info log (wall → monotonic)."""
        lines = [
            ln for ln in istiod.log_lines() if t_write - 0.005 <= ln.wall - self.offset <= t_end
        ]
        event = next(
            (
                ln
                for ln in lines
                if ln.logger.endswith("environment") and ln.message.startswith("config ")
            ),
            None,
        )
        stable = next((ln for ln in lines if "Push debounce stable" in ln.message), None)
        pushing = next((ln for ln in lines if ln.message.startswith("XDS: Pushing")), None)
        if event is not None:
            phase.watch_delay_ms = round((event.wall - self.offset - t_write) * 1000, 2)
        if pushing is not None:
            # "XDS: Pushing ... build_ms=12.3" (pilot/xds/push_log.py; older: "built in 12.3ms")
            m = re.search(r"(?:build_ms=|built in )([\d.]+)", pushing.message)
            phase.push_build_ms = float(m.group(1)) if m else None
        if stable is not None:
            t_stable = stable.wall - self.offset
            phase.debounce_source = "istiod log 'Push debounce stable' (info)"
        else:
            t_stable = t_write + self.debounce_after
            phase.debounce_source = "estimated: write + PILOT_DEBOUNCE_AFTER (no info log)"
        phase.debounce_end_ms = round((t_stable - t_write) * 1000, 2)
        phase.from_debounce_ms = quantiles([t - t_stable for t in last_ack.values()])
