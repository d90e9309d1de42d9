"""`istioctl x history PROXY`: what istiod sent a proxy over time, oldest first.

Reads istiod's history (`GET --istiod URL/debug/history?proxyID=PROXY`, default
http://127.0.0.1:8080), which also keeps a proxy that has disconnected. One row per snapshot:
the push version (what `proxy-config --at` and `x diff --from/--to` take), its time, whether
a push or the proxy's own request caused it, the resources added (+), removed (-) and changed
(~) per xDS type, and the config objects the push carried (KIND/NAMESPACE/NAME, as
`istioctl x trace` names them). `-o json` prints istiod's answer.

Exit status: 0 success; 1 istiod could not answer (unreachable, no history of PROXY); 2 bad
flags.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from istioctl.proxyconfig.at import HistoryError, fetch_timeline
from istioctl.proxyconfig.command import DEFAULT_ISTIOD, proxy_id
from istioctl.proxyconfig.sources import normalize_url
from istioctl.proxyconfig.tabwriter import render as render_table

COLUMNS = ["VERSION", "TIME", "REASON", "CHANGES", "CONFIG"]
MAX_CONFIGS = 3


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "history",
        help="List what istiod sent a proxy over time (push versions for --at and x diff)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("proxy", metavar="PROXY", help="NAME.NAMESPACE or a node id")
    parser.add_argument("--istiod", default=DEFAULT_ISTIOD, metavar="URL", help="istiod HTTP URL")
    parser.add_argument("-o", "--output", default="table", help="table (default) or json")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        url = normalize_url("--istiod", args.istiod)
        if args.output not in ("table", "json"):
            raise ValueError(f"-o: expected table or json, got {args.output!r}")
    except ValueError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    try:
        data = fetch_timeline(url, proxy_id(args.proxy), args.timeout)
    except HistoryError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    if args.output == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(render(data))
    return 0


def render(data: Any) -> str:
    rows: list[list[str]] = [COLUMNS]
    for snapshot in data.get("snapshots", []):
        rows.append(
            [
                snapshot.get("version", ""),
                snapshot.get("time", ""),
                snapshot.get("reason", ""),
                changes(snapshot.get("changed", {})),
                configs(snapshot.get("configs", [])),
            ]
        )
    state = "connected" if data.get("connected") else f"disconnected {data.get('disconnectedAt')}"
    dropped = data.get("dropped", 0)
    note = f"; {dropped} older snapshots dropped (PILOT_HISTORY_MAX_BYTES)" if dropped else ""
    return f"Proxy {data.get('name', '')} ({state}){note}\n" + render_table(rows, 3)


def changes(changed: dict[str, dict[str, int]]) -> str:
    parts = []
    for xds, counts in changed.items():
        marks = [
            f"{sign}{counts[key]}"
            for sign, key in (("+", "added"), ("-", "removed"), ("~", "changed"))
            if counts.get(key)
        ]
        parts.append(f"{xds} {' '.join(marks)}")
    return "; ".join(parts) or "-"


def configs(keys: list[str]) -> str:
    if not keys:
        return "-"
    shown = ", ".join(keys[:MAX_CONFIGS])
    return shown + (f" (+{len(keys) - MAX_CONFIGS} more)" if len(keys) > MAX_CONFIGS else "")
