"""`istioctl x trace KIND/NAMESPACE/NAME | KIND/NAME [-n NAMESPACE]`: is my change live
everywhere?

Reads istiod's push ledger (`GET --istiod URL/debug/trace?kind=&namespace=&name=`, default
http://127.0.0.1:8080) and shows the object's latest version and the time istiod saw it, the
pushes that carried it, and per connected proxy whether it ACKed it, NACKed it (with Envoy's
message), has it pending, was up to date or not concerned, with the time from the change to
the last ACK. KIND is case-insensitive and takes Istio's kind names, plurals and short names
(VirtualService, virtualservices, vs). `-o table` (default), `json` or `yaml` (istiod's
report). `--wait DURATION` (Go syntax: 500ms, 10s, 1m30s) polls until nothing is pending or
queued, or the duration is over; it also waits for an object istiod has not seen yet.

Exit status: 0 live on every proxy it concerns; 3 rejected (a proxy NACKed it, or an older
version was restored); 4 still propagating (after `--wait`: timed out); 1 istiod could not
answer (unreachable, no record of the object); 2 bad flags.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, TextIO

import yaml

from istioctl.experimental.trace_render import render_table
from istioctl.http import OPENER
from pkg.config.model import Kind

DEFAULT_ISTIOD = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 10.0
POLL_INTERVAL = 0.2
EXIT_LIVE, EXIT_ERROR, EXIT_USAGE, EXIT_REJECTED, EXIT_PENDING = 0, 1, 2, 3, 4
_MAX_BODY = 16 << 20
_PSEUDO = (Kind.ENDPOINTS, Kind.MESH_CONFIG)
# Istio's CRD short names (manifests/charts/base/files/crd-all.gen.yaml) and Kubernetes'.
_SHORT_NAMES = {
    "vs": Kind.VIRTUAL_SERVICE,
    "dr": Kind.DESTINATION_RULE,
    "gw": Kind.GATEWAY,
    "se": Kind.SERVICE_ENTRY,
    "we": Kind.WORKLOAD_ENTRY,
    "wg": Kind.WORKLOAD_GROUP,
    "ap": Kind.AUTHORIZATION_POLICY,
    "pa": Kind.PEER_AUTHENTICATION,
    "ra": Kind.REQUEST_AUTHENTICATION,
    "svc": Kind.SERVICE,
    "ns": Kind.NAMESPACE,
}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class TraceError(Exception):
    """The command cannot answer; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.namespace}/{self.name}"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trace",
        help="Show which proxies took a config change (pushed, ACKed, NACKed, pending)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("object", metavar="KIND/NAMESPACE/NAME | KIND/NAME")
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default: default)")
    parser.add_argument(
        "--istiod", default=DEFAULT_ISTIOD, metavar="URL", help=f"default {DEFAULT_ISTIOD}"
    )
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    parser.add_argument(
        "--wait",
        default=None,
        metavar="DURATION",
        help="poll until nothing is pending (e.g. 10s), at most this long",
    )
    parser.set_defaults(func=run)


def parse_kind(text: str) -> Kind:
    """A kind by name (any case), plural or short name; ValueError naming the choices."""
    wanted = text.strip().lower()
    if wanted in _SHORT_NAMES:
        return _SHORT_NAMES[wanted]
    for kind in Kind:
        if kind in _PSEUDO:
            continue
        singular = kind.value.lower()
        if wanted in (singular, _plural(singular)):
            return kind
    kinds = ", ".join(k.value for k in Kind if k not in _PSEUDO)
    raise ValueError(f'unknown kind "{text}": one of {kinds}')


def _plural(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return word[:-1] + "ies"
    return word + ("es" if word.endswith("s") else "s")


def parse_target(text: str, namespace: str | None) -> Target:
    """KIND/NAMESPACE/NAME, or KIND/NAME with `-n NAMESPACE` (default "default")."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f'"{text}" is not KIND/NAMESPACE/NAME or KIND/NAME')
    kind = parse_kind(parts[0])
    if len(parts) == 3:
        if namespace is not None and namespace != parts[1]:
            raise ValueError(f'"{text}" names namespace "{parts[1]}" but -n says "{namespace}"')
        return Target(kind, parts[1], parts[2])
    return Target(kind, namespace or "default", parts[1])


def parse_duration(text: str) -> float:
    """Seconds from a Go duration (`10s`, `1m30s`, `500ms`); ValueError when malformed."""
    value = text.strip()
    if not value or value == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value):
        raise ValueError(f'invalid duration "{text}" (e.g. 500ms, 10s, 1m30s)')
    return total


def normalize_url(text: str) -> str:
    url = text if "://" in text else f"http://{text}"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f'--istiod: "{text}" is not an http(s) URL')
    return url.rstrip("/")


def fetch(base: str, target: Target, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, Any]:
    """(HTTP status, JSON body) of istiod's /debug/trace; TraceError when unreachable."""
    query = urllib.parse.urlencode(
        {"kind": target.kind.value, "namespace": target.namespace, "name": target.name}
    )
    url = f"{base}/debug/trace?{query}"
    try:
        with OPENER.open(urllib.request.Request(url), timeout=timeout) as response:
            status, body = response.status, response.read(_MAX_BODY)
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read(_MAX_BODY)
        err.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        text = getattr(reason, "strerror", None) or str(reason)
        raise TraceError(f"--istiod: cannot reach {base}: {text}") from None
    try:
        return status, json.loads(body)
    except ValueError:
        text = body[:200].decode("utf-8", "replace").strip()
        raise TraceError(f"--istiod: {url} answered HTTP {status}, not JSON: {text}") from None


def _error(status: int, body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return f"HTTP {status}"


def trace(base: str, target: Target, wait: float | None) -> tuple[dict[str, Any], bool]:
    """The report, and whether --wait ran out before nothing was pending."""
    deadline = time.monotonic() + (wait or 0.0)
    for _ in range(int((wait or 0.0) / POLL_INTERVAL) + 2):
        status, body = fetch(base, target)
        if status == 200 and isinstance(body, dict):
            if wait is None or body.get("converged") or time.monotonic() >= deadline:
                return body, wait is not None and not body.get("converged")
        elif status != 404 or wait is None or time.monotonic() >= deadline:
            raise TraceError(f"{target}: {_error(status, body)}")
        time.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
    raise TraceError(f"{target}: no answer within --wait {wait:g}s")


def exit_code(report: dict[str, Any]) -> int:
    summary = report.get("summary") or {}
    if summary.get("nacked") or summary.get("reverted"):
        return EXIT_REJECTED
    if not report.get("converged"):
        return EXIT_PENDING
    return EXIT_LIVE


def run(args: argparse.Namespace) -> int:
    return main(args, sys.stdout, sys.stderr)


def main(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        target = parse_target(args.object, args.namespace)
        wait = parse_duration(args.wait) if args.wait is not None else None
        base = normalize_url(args.istiod)
    except ValueError as e:
        print(f"Error: {e}", file=err)
        return EXIT_USAGE
    try:
        report, timed_out = trace(base, target, wait)
    except TraceError as e:
        print(f"Error: {e}", file=err)
        return EXIT_ERROR
    if args.output == "json":
        print(json.dumps(report, indent=2), file=out)
    elif args.output == "yaml":
        print(yaml.safe_dump(report, sort_keys=False), end="", file=out)
    else:
        out.write(render_table(report))
    if timed_out:
        pending = report["summary"]["pending"] + report["summary"]["queued"]
        print(f"Error: timed out after --wait {args.wait}: {pending} pending", file=err)
    return exit_code(report)
