"""`istioctl proxy-status|ps [PROXY]`: the sync status of every proxy istiod serves, or, for
one PROXY, istiod's view of it diffed against its own config dump.

    istioctl proxy-status [--istiod URL | --xds-address HOST:PORT] [-n NS]
                          [-o table|json|yaml] [-v 1]
    istioctl proxy-status PROXY (--admin ENVOY_ADMIN_URL | --file CONFIG_DUMP)
                          [--istiod URL | --xds-address HOST:PORT]

PROXY is `NAME.NAMESPACE` (a bare NAME means NAMESPACE `default`, or `-n`). `-o json|yaml`
prints the `istio.io/debug/syncz` DiscoveryResponse (built from /debug/syncz with --istiod).
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
        metavar="URL",
        help=f"istiod's HTTP debug address (default {sources.DEFAULT_ISTIOD})",
    )
    source.add_argument(
        "--xds-address",
        metavar="HOST:PORT",
        help="ask istiod over plaintext ADS (istio.io/debug/syncz) instead of HTTP",
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


def _status(args: argparse.Namespace) -> str:
    report: SyncReport
    if args.xds_address:
        report = sources.syncz_xds(args.xds_address, args.timeout)
    else:
        report = sources.syncz_http(args.istiod or sources.DEFAULT_ISTIOD, args.timeout)
    report = report.in_namespace(args.namespace)
    if args.output != "table":
        text = json_format.MessageToJson(report.response, indent=4)
        if args.output == "yaml":
            return str(yaml.safe_dump(yaml.safe_load(text), sort_keys=False))
        return text + "\n"
    table = render_table(report.proxies, time.time(), verbose=args.verbosity > 0)
    errors = render_errors(report.proxies)
    return table + (f"\n{errors}" if errors else "")


def _diff(args: argparse.Namespace) -> str:
    proxy = _proxy_id(args)
    envoy_source: Source
    try:
        if args.admin is not None:
            envoy_source = AdminSource(normalize_url("--admin", args.admin), args.timeout)
        else:
            envoy_source = FileSource(args.file)
        istiod_url = normalize_url("--istiod", args.istiod or sources.DEFAULT_ISTIOD)
    except ValueError as error:
        raise sources.SourceError(str(error)) from None
    envoy = parse_config_dump(envoy_source.config_dump())
    if args.xds_address:
        response = sources.config_dump_xds(args.xds_address, proxy, args.timeout)
        if not response.resources:
            raise sources.SourceError(
                f"--xds-address: {args.xds_address} has no proxy {proxy} connected"
            )
        istiod = compare.from_response(response)
    else:
        istiod = parse_config_dump(IstiodSource(istiod_url, proxy, args.timeout).config_dump())
    return "".join(section.render() for section in compare.compare(istiod, envoy))
