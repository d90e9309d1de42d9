"""`istioctl x explain PROXY '[METHOD] URL' [-H 'NAME: VALUE']... [--source-principal SPIFFE]
[--source-ip IP] [--destination-ip IP] [--inbound]`: why does this request go where it goes?

istiod replays the request through the proxy's generated config (`POST --istiod
URL/debug/explain?proxyID=PROXY`, default http://127.0.0.1:8080) and answers each step in
Envoy's order — listener, filter chain, route configuration, virtual host, the routes that did
not match and why, the route with its timeout/retries/fault, the authorization decision and
the AuthorizationPolicy rule that made it, cluster (subset, load balancing), endpoints with
their health and TLS mode — naming the Istio object each step came from, then the predicted
outcome: the backend endpoints it may reach, or the status Envoy answers itself (403 denied,
404 no route, 3xx redirect, direct response, fault abort, 503 no cluster/endpoint).

PROXY is a connected proxy's NAME.NAMESPACE (or its node ID). Outbound calls are replayed the
way the proxy receives them (gateways and NONE-mode sidecars on their bound listener,
iptables-redirected sidecars through virtualOutbound); `--inbound` replays a call to the
proxy's own workload (mutual TLS when `--source-principal` is given).
`-o table` (default) or `json` (istiod's answer).

Exit status: 0 explained; 1 istiod could not answer (unreachable, unknown proxy); 2 bad flags.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TextIO

from istioctl.experimental.trace import DEFAULT_ISTIOD, normalize_url
from istioctl.http import OPENER, reason

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
DEFAULT_TIMEOUT = 10.0
_MAX_BODY = 16 << 20
_COLUMNS = ("STEP", "NAME", "FROM", "DETAIL")


class ExplainError(Exception):
    """istiod could not answer; the message says why, for the user."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="Replay a request through a proxy's config: which route, cluster, policy, outcome",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("proxy", metavar="PROXY", help="NAME.NAMESPACE or node ID")
    parser.add_argument("request", metavar="'[METHOD] URL'", help="e.g. 'GET http://reviews:9080/'")
    parser.add_argument(
        "-H", "--header", action="append", default=[], metavar="'NAME: VALUE'", dest="headers"
    )
    parser.add_argument("--source-principal", default="", metavar="SPIFFE_ID")
    parser.add_argument("--source-ip", default="", metavar="IP")
    parser.add_argument("--destination-ip", default="", metavar="IP")
    parser.add_argument(
        "--port", type=int, default=0, help="the port dialled (default: the URL's); Host stays"
    )
    parser.add_argument("--inbound", action="store_true", help="a call to the proxy's workload")
    parser.add_argument(
        "--istiod", default=DEFAULT_ISTIOD, metavar="URL", help=f"default {DEFAULT_ISTIOD}"
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.set_defaults(func=run)


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON istiod takes; ValueError naming the bad argument."""
    words = args.request.split()
    if len(words) == 1:
        method, url = "GET", words[0]
    elif len(words) == 2:
        method, url = words[0].upper(), words[1]
    else:
        raise ValueError(f"request \"{args.request}\" is not '[METHOD] URL'")
    headers: dict[str, str] = {}
    for text in args.headers:
        name, sep, value = text.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"-H \"{text}\" is not 'NAME: VALUE'")
        headers[name.strip().lower()] = value.strip()
    body: dict[str, Any] = {"method": method, "url": url, "headers": headers}
    if args.source_principal:
        body["sourcePrincipal"] = args.source_principal
    if args.source_ip:
        body["sourceIP"] = args.source_ip
    if args.destination_ip:
        body["destinationIP"] = args.destination_ip
    if args.inbound:
        body["inbound"] = True
    if args.port:
        if not 0 < args.port < 65536:
            raise ValueError(f"--port {args.port} is not a port number")
        body["port"] = args.port
    return body


def fetch(base: str, proxy: str, body: dict[str, Any]) -> dict[str, Any]:
    url = f"{base}/debug/explain?{urllib.parse.urlencode({'proxyID': proxy})}"
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with OPENER.open(request, timeout=DEFAULT_TIMEOUT) as response:
            status, raw = response.status, response.read(_MAX_BODY)
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read(_MAX_BODY)
        err.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise ExplainError(f"--istiod: cannot reach {base}: {reason(err)}") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        text = raw[:200].decode("utf-8", "replace").strip()
        raise ExplainError(f"--istiod: {url} answered HTTP {status}, not JSON: {text}") from None
    if status != 200 or not isinstance(answer, dict):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise ExplainError(str(error or f"HTTP {status}"))
    return answer


def outcome_text(outcome: dict[str, Any]) -> str:
    kind, status = outcome.get("kind", ""), outcome.get("status", 0)
    if kind == "backend":
        clusters = ", ".join(outcome.get("clusters") or [])
        endpoints = ", ".join(outcome.get("endpoints") or [])
        text = f"backend: {clusters} → {endpoints}"
        faults = outcome.get("faultStatuses") or []
        if faults:
            text += f" (or a fault abort: {', '.join(str(s) for s in faults)})"
        return text
    if status:
        return f"{status} {kind}: {outcome.get('reason', '')}"
    return f"{kind}: {outcome.get('reason', '')}"


def render_table(answer: dict[str, Any]) -> str:
    request = answer.get("request") or {}
    headers = "  ".join(f"{k}: {v}" for k, v in (request.get("headers") or {}).items())
    lines = [
        f"Proxy:    {answer.get('proxy', '')}",
        f"Request:  {request.get('method', '')} {request.get('url', '')}  {headers}".rstrip(),
        "",
    ]
    rows = [_COLUMNS] + [
        (s.get("step", ""), s.get("name", ""), s.get("source", "") or "-", s.get("detail", ""))
        for s in answer.get("steps") or []
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(_COLUMNS) - 1)]
    for row in rows:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=False)]
        lines.append("   ".join([*cells, str(row[-1])]).rstrip())
    lines += ["", f"Outcome:  {outcome_text(answer.get('outcome') or {})}"]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    return main(args, sys.stdout, sys.stderr)


def main(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        body = build_request(args)
        base = normalize_url(args.istiod)
    except ValueError as e:
        print(f"Error: {e}", file=err)
        return EXIT_USAGE
    try:
        answer = fetch(base, args.proxy, body)
    except ExplainError as e:
        print(f"Error: {e}", file=err)
        return EXIT_ERROR
    if args.output == "json":
        print(json.dumps(answer, indent=2), file=out)
    else:
        out.write(render_table(answer))
    return EXIT_OK
