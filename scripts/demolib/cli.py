"""The command line: parse flags, run the mesh (until a signal, or through --check), clean up."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, NoReturn

from .addresses import prepare_config
from .base import DemoError, say
from .checks import run_checks
from .guide import print_banner
from .mesh import Mesh

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM/SIGHUP."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/demo", description="Run the Bookinfo demo mesh (istiod + Envoy) locally."
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="prove the mesh works with a bounded set of requests; exit 0/1 "
        "(serves a copy of examples/, which it edits to test live changes)",
    )
    parser.add_argument("--requests", type=int, default=200, help="requests for the split check")
    parser.add_argument("--timeout", type=float, default=60.0, help="start-up budget, seconds")
    parser.add_argument("--keep-logs", action="store_true", help="keep the log directory")
    return parser.parse_args(argv)


def catch_signals() -> None:
    """SIGINT/SIGTERM/SIGHUP raise Stop in the main thread, once; further ones are ignored."""

    def on_signal(signum: int, frame: Any) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # one stop is enough; cleanup is bounded
        raise Stop(signal.Signals(signum).name)

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)


def check(mesh: Mesh, took: float, requests: int, begun: float) -> bool:
    """--check: run the checks, print the verdict (and the logs on failure)."""
    say(f"mesh up in {took:.1f}s; checking:")
    checks = run_checks(mesh, requests)
    total = time.monotonic() - begun
    good = sum(ok for ok, _ in checks.results)
    verdict = "PASS" if checks.passed else "FAIL"
    say(f"{verdict}: {good}/{len(checks.results)} checks passed in {total:.1f}s")
    if not checks.passed:
        say(mesh.all_logs())
    return checks.passed


def watch(mesh: Mesh) -> NoReturn:
    """Serve until a signal (Stop) or until istiod or an Envoy exits (DemoError)."""
    while True:
        time.sleep(1.0)
        for envoy in mesh.envoys:
            if envoy.proc is not None and envoy.proc.poll() is not None:
                raise DemoError(
                    f"envoy {envoy.proxy_id} exited with {envoy.proc.returncode}\n{envoy.logs()}"
                )
        if mesh.istiod.proc is not None and mesh.istiod.proc.poll() is not None:
            raise DemoError(
                f"istiod exited with {mesh.istiod.proc.returncode}\n{mesh.istiod.logs()}"
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    catch_signals()
    begun = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="pyistio-demo-"))
    mesh: Mesh | None = None
    lock: IO[bytes] | None = None
    failed = True
    try:
        config_dir, block, lock = prepare_config(args.check, workdir)
        mesh = Mesh(config_dir, workdir, block)
        took = mesh.start(args.timeout)
        if args.check:
            failed = not check(mesh, took, args.requests, begun)
            return 1 if failed else 0
        failed = False
        print_banner(mesh, took, config_dir)
        watch(mesh)
    except Stop as stop:
        say(f"\n{stop}: stopping the mesh ...")
        return 130 if failed else 0
    except DemoError as err:
        failed = True
        print(f"demo: error: {err}", file=sys.stderr, flush=True)
        return 1
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if mesh is not None:
            mesh.stop()
        if lock is not None:
            lock.close()
        if (failed and mesh is not None) or args.keep_logs:
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if mesh is not None and not args.check:
            say("stopped.")
