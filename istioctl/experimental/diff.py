"""`istioctl x diff PROXY --from A [--to B]`: what changed in a proxy's configuration between
two points of istiod's history (`GET --istiod URL/debug/history`, default
http://127.0.0.1:8080).

A and B are each an RFC 3339 time, a duration ago (`10m`: ten minutes ago), a push version as
`istioctl x history` lists it, or `now` (B's default: the latest snapshot). Per xDS type (CDS,
EDS, LDS, RDS, SDS) it prints the resources added (+), removed (-) and changed (~), each
change as a unified diff of the resource's Envoy JSON; `-o json` gives the same for machines.

Exit status (as diff(1)): 0 no differences; 1 differences; 2 trouble (bad flags, istiod could
not answer, no snapshot at A or B).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from istioctl.proxyconfig.at import At, Dump, HistoryError, fetch_dump
from istioctl.proxyconfig.command import DEFAULT_ISTIOD, proxy_id
from istioctl.proxyconfig.sources import normalize_url

EXIT_SAME, EXIT_DIFFERENT, EXIT_TROUBLE = 0, 1, 2
DEFAULT_TIMEOUT = 10.0

# Config dump section → (xDS type, the list of dynamic entries, the resource field in each).
_SECTIONS = {
    "ClustersConfigDump": ("CDS", "dynamicActiveClusters", "cluster"),
    "EndpointsConfigDump": ("EDS", "dynamicEndpointConfigs", "endpointConfig"),
    "ListenersConfigDump": ("LDS", "dynamicListeners", "activeState.listener"),
    "RoutesConfigDump": ("RDS", "dynamicRouteConfigs", "routeConfig"),
    "SecretsConfigDump": ("SDS", "dynamicActiveSecrets", "secret"),
}
TYPES = ("CDS", "EDS", "LDS", "RDS", "SDS")


@dataclass
class TypeDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, str] = field(default_factory=dict)  # name → unified diff

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="Show what changed in a proxy's configuration between two points of its history",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("proxy", metavar="PROXY", help="NAME.NAMESPACE or a node id")
    parser.add_argument("--from", dest="start", required=True, metavar="A", help="time|version")
    parser.add_argument("--to", dest="end", default="now", metavar="B", help="default now")
    parser.add_argument("--istiod", default=DEFAULT_ISTIOD, metavar="URL", help="istiod HTTP URL")
    parser.add_argument("-o", "--output", default="text", help="text (default) or json")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        url = normalize_url("--istiod", args.istiod)
        start, end = At.parse("--from", args.start), At.parse("--to", args.end)
        if args.output not in ("text", "json"):
            raise ValueError(f"-o: expected text or json, got {args.output!r}")
        if args.timeout <= 0:
            raise ValueError(f"--timeout: must be positive, got {args.timeout:g}")
    except ValueError as err:
        print(f"Error: {err}", file=sys.stderr)
        return EXIT_TROUBLE
    proxy = proxy_id(args.proxy)
    try:
        before = fetch_dump(url, proxy, start, True, args.timeout)
        after = fetch_dump(url, proxy, end, True, args.timeout)
    except HistoryError as err:
        print(f"Error: {err}", file=sys.stderr)
        return EXIT_TROUBLE
    diffs = diff_dumps(before.data, after.data)
    if args.output == "json":
        sys.stdout.write(json.dumps(as_json(proxy, before, after, diffs), indent=2) + "\n")
    else:
        sys.stdout.write(render(proxy, before, after, diffs))
    return EXIT_DIFFERENT if any(diffs.values()) else EXIT_SAME


def resources(dump: Any) -> dict[str, dict[str, Any]]:
    """xDS type → resource name → the resource's Envoy JSON, from a config dump."""
    out: dict[str, dict[str, Any]] = {t: {} for t in TYPES}
    for section in dump.get("configs", []) if isinstance(dump, dict) else []:
        kind = str(section.get("@type", "")).rsplit(".", 1)[-1]
        if kind not in _SECTIONS:
            continue
        xds, entries, path = _SECTIONS[kind]
        for entry in section.get(entries, []):
            value: Any = entry
            for part in path.split("."):
                value = value.get(part, {}) if isinstance(value, dict) else {}
            name = entry.get("name") or value.get("name") or value.get("clusterName") or ""
            out[xds][name] = value
    return out


def diff_dumps(before: Any, after: Any) -> dict[str, TypeDiff]:
    old, new = resources(before), resources(after)
    out = {}
    for xds in TYPES:
        a, b = old[xds], new[xds]
        diff = TypeDiff(
            added=sorted(n for n in b if n not in a),
            removed=sorted(n for n in a if n not in b),
        )
        for name in sorted(n for n in b if n in a and a[n] != b[n]):
            diff.changed[name] = _unified(name, a[name], b[name])
        out[xds] = diff
    return out


def _unified(name: str, before: Any, after: Any) -> str:
    lines = difflib.unified_diff(
        json.dumps(before, indent=2, sort_keys=True).splitlines(),
        json.dumps(after, indent=2, sort_keys=True).splitlines(),
        fromfile=f"{name} (from)",
        tofile=f"{name} (to)",
        lineterm="",
    )
    return "\n".join(lines) + "\n"


def _point(dump: Dump) -> dict[str, str]:
    return {"version": dump.version, "time": dump.time}


def as_json(proxy: str, before: Dump, after: Dump, diffs: dict[str, TypeDiff]) -> Any:
    return {
        "proxy": proxy,
        "from": _point(before),
        "to": _point(after),
        "differences": any(diffs.values()),
        "types": {
            xds: {"added": d.added, "removed": d.removed, "changed": d.changed}
            for xds, d in diffs.items()
            if d
        },
    }


def render(proxy: str, before: Dump, after: Dump, diffs: dict[str, TypeDiff]) -> str:
    out = [
        f"Proxy {proxy}: from {before.version} ({before.time}) to {after.version} ({after.time})"
    ]
    if not any(diffs.values()):
        out.append("No differences.")
    for xds, d in diffs.items():
        if not d:
            continue
        out.append(
            f"{xds}: {len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed"
        )
        out.extend(f"+ {name}" for name in d.added)
        out.extend(f"- {name}" for name in d.removed)
        for name, text in d.changed.items():
            out.append(f"~ {name}")
            out.append(text.rstrip("\n"))
    return "\n".join(out) + "\n"
