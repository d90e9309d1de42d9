"""`istioctl proxy-status|ps [PROXY]`: the sync status of every proxy istiod serves, or, for
one PROXY, istiod's view of it diffed against its own config dump.

    istioctl proxy-status [--istiod URL... | --xds-address HOST:PORT...] [-n NS]
                          [-o table|json|yaml] [-v 1]
    istioctl proxy-status PROXY (--admin ENVOY_ADMIN_URL | --file CONFIG_DUMP)
                          [--istiod URL... | --xds-address HOST:PORT...]

PROXY is `NAME.NAMESPACE` (a bare NAME means NAMESPACE `default`, or `-n`). `-o json|yaml`
prints the `istio.io/debug/syncz` DiscoveryResponse (built from /debug/syncz with --istiod).

Several istiod replicas: repeat `--istiod` (or `--xds-address`), or give a comma-separated
list; as istioctl asks every istiod pod, the table then lists the proxies of all of them (the
ISTIOD column names the replica holding each), `-o json|yaml` prints one response per istiod
in the order given, and PROXY is compared against the istiod that holds it. Any istiod that
cannot be read fails the command (exit 1, naming its address).

Exit status 0 when the status (or the comparison, matching or not) was printed, 1 when istiod
or Envoy could not be read.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

import yaml
from google.protobuf import json_format

from istioctl.proxyconfig.configdump import DumpError, parse_config_dump
from istioctl.proxyconfig.sources import (
    AdminSource,
    FileSource,
    IstiodSource,
    Source,
    SourceError,
    normalize_url,
)
from istioctl.proxystatus import compare, sources
from istioctl.proxystatus.model import SyncReport
from istioctl.proxystatus.table import render_errors, render_table

OUTPUTS = ("table", "json", "yaml")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "proxy-status",
        aliases=["ps"],
        help="Retrieves the synchronization status of each Envoy in the mesh",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("proxy", nargs="?", metavar="PROXY", help="NAME.NAMESPACE of one proxy")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--istiod",
        action="append",
        metavar="URL",
        help=(
            f"istiod's HTTP debug address (default {sources.DEFAULT_ISTIOD}); repeat it or"
            " give a comma-separated list for several replicas"
        ),
    )
    source.add_argument(
        "--xds-address",
        action="append",
        metavar="HOST:PORT",
        help="ask istiod over plaintext ADS (istio.io/debug/syncz) instead of HTTP; repeatable",
    )
    envoy = parser.add_mutually_exclusive_group()
    envoy.add_argument("--admin", metavar="URL", help="the proxy's Envoy admin address")
    envoy.add_argument(
        "-f", "--file", metavar="FILE", help="a saved Envoy config dump (- for stdin)"
    )
    parser.add_argument("-n", "--namespace", default="", help="only proxies of this namespace")
    parser.add_argument("-o", "--output", default="table", help="one of table|json|yaml")
    parser.add_argument(
        "-v",
        "--verbosity",
        type=int,
        default=0,
        help="1: a column for every known or watched xDS type",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for istiod or Envoy"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return proxy_status(args, sys.stdout, sys.stderr)


def proxy_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    problem = _check(args)
    if problem:
        print(f"Error: {problem}", file=err)
        return 1
    try:
        if args.proxy:
            out.write(_diff(args))
        else:
            out.write(_status(args))
    except (sources.SourceError, SourceError, DumpError) as error:
        print(f"Error: {error}", file=err)
        return 1
    return 0


def _check(args: argparse.Namespace) -> str:
    if args.output not in OUTPUTS:
        return f"--output {args.output!r} is not supported: use one of {'|'.join(OUTPUTS)}"
    if args.timeout <= 0:
        return "--timeout must be positive"
    for flag, values in (("--istiod", args.istiod), ("--xds-address", args.xds_address)):
        if values is not None and not _addresses(values):
            return f"{flag} needs an address (several: repeat {flag} or separate with commas)"
    if args.proxy and args.admin is None and args.file is None:
        return (
            f"proxy-status {args.proxy} compares istiod's view with the proxy's own config "
            "dump: give --admin ENVOY_ADMIN_URL (e.g. http://127.0.0.1:15000) or --file FILE"
        )
    if not args.proxy and (args.admin is not None or args.file is not None):
        return "--admin and --file need a PROXY (NAME.NAMESPACE) to compare"
    return ""


def _proxy_id(args: argparse.Namespace) -> str:
    name = str(args.proxy).removeprefix("pod/")
    if "." in name or "~" in name:
        return name
    return f"{name}.{args.namespace or 'default'}"


def _addresses(values: list[str] | None) -> list[str]:
    """A repeatable flag's values, each possibly a comma-separated list, in order."""
    return [item.strip() for value in values or () for item in value.split(",") if item.strip()]


def _reports(args: argparse.Namespace) -> list[SyncReport]:
    """Every istiod's answer, in the order given."""
    if args.xds_address:
        return [sources.syncz_xds(a, args.timeout) for a in _addresses(args.xds_address)]
    urls = _addresses(args.istiod) or [sources.DEFAULT_ISTIOD]
    return [sources.syncz_http(url, args.timeout) for url in urls]


def _status(args: argparse.Namespace) -> str:
    reports = [report.in_namespace(args.namespace) for report in _reports(args)]
    if args.output != "table":
        return "".join(_machine_readable(report, args.output) for report in reports)
    proxies = [proxy for report in reports for proxy in report.proxies]
    table = render_table(proxies, time.time(), verbose=args.verbosity > 0)
    errors = render_errors(proxies)
    return table + (f"\n{errors}" if errors else "")


def _machine_readable(report: SyncReport, output: str) -> str:
    text = json_format.MessageToJson(report.response, indent=4)
    if output == "yaml":
        return str(yaml.safe_dump(yaml.safe_load(text), sort_keys=False))
    return text + "\n"


def _diff(args: argparse.Namespace) -> str:
    proxy = _proxy_id(args)
    envoy_source: Source
    try:
        if args.admin is not None:
            envoy_source = AdminSource(normalize_url("--admin", args.admin), args.timeout)
        else:
            envoy_source = FileSource(args.file)
        urls = [normalize_url("--istiod", url) for url in _addresses(args.istiod)]
    except ValueError as error:
        raise sources.SourceError(str(error)) from None
    envoy = parse_config_dump(envoy_source.config_dump())
    if args.xds_address:
        address = _holder(args, proxy, _addresses(args.xds_address))
        response = sources.config_dump_xds(address, proxy, args.timeout)
        if not response.resources:
            raise sources.SourceError(f"--xds-address: {address} has no proxy {proxy} connected")
        istiod = compare.from_response(response)
    else:
        url = _holder(args, proxy, urls or [sources.DEFAULT_ISTIOD])
        istiod = parse_config_dump(IstiodSource(url, proxy, args.timeout).config_dump())
    return "".join(section.render() for section in compare.compare(istiod, envoy))


def _holder(args: argparse.Namespace, proxy: str, addresses: list[str]) -> str:
    """Of several istiods, the one whose sync status lists `proxy` (one is used as given)."""
    if len(addresses) == 1:
        return addresses[0]
    flag = "--xds-address" if args.xds_address else "--istiod"
    for address in addresses:
        if args.xds_address:
            report = sources.syncz_xds(address, args.timeout)
        else:
            report = sources.syncz_http(address, args.timeout)
        if any(p.name == proxy or f"~{p.name}~" in proxy for p in report.proxies):
            return address
    raise sources.SourceError(f"{flag}: no istiod of {', '.join(addresses)} holds proxy {proxy}")
