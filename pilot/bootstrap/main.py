"""`istiod` entry point: parse flags, run until SIGTERM/SIGINT, exit 0 on a clean stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Sequence

from pilot.bootstrap.options import parse_options
from pilot.bootstrap.server import Istiod
from pilot.features import from_env
from pkg.errors import ConfigError
from pkg.log import configure_logging

log = logging.getLogger("pilot.bootstrap")

# The cyclic garbage collector's thresholds (gen0 allocations, gen1 and gen2 collections). With
# CPython's defaults (700, 10, 10) a full (gen2) collection ran every few pushes at 1,000
# proxies and took ~190 ms each, stalling every stream during a push; istiod's state is large
# and long-lived, and it makes few reference cycles. See docs/performance.md.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


async def run(argv: Sequence[str] | None = None) -> int:
    try:
        options = parse_options(argv)
        features = from_env()
    except ConfigError as e:
        print(f"istiod: {e}", file=sys.stderr)
        return 2
    configure_logging(options.log_level)
    try:
        istiod = Istiod(options, features)
    except ConfigError as e:
        print(f"istiod: {e}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await istiod.start()
    except OSError as e:
        print(f"istiod: {e}", file=sys.stderr)
        await istiod.stop()
        return 1
    # What start-up built (config, registries, the first snapshot, imported modules) lives as
    # long as the process: move it out of the collector's way.
    gc.freeze()
    await stop.wait()
    log.info("shutting down")
    try:
        await asyncio.wait_for(istiod.stop(), timeout=4.0)
    except TimeoutError:
        log.warning("shutdown took too long; exiting anyway")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    tune_gc()
    return asyncio.run(run(argv))


if __name__ == "__main__":
    sys.exit(main())
