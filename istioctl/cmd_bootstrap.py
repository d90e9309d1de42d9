"""`istioctl bootstrap`: print a complete Envoy bootstrap for one proxy (`envoy -c FILE`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, cast

from istioctl.bootstrap import (
    INTERCEPTION_MODES,
    PROXY_TYPES,
    XDS_APIS,
    BootstrapError,
    BootstrapOptions,
    InterceptionMode,
    ProxyType,
    XdsApi,
    build_bootstrap,
    parse_labels,
)

PROG = "istioctl bootstrap"
_TRUE = frozenset({"1", "t", "true"})
_FALSE = frozenset({"0", "f", "false"})


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bootstrap",
        help="print an Envoy bootstrap that connects a proxy to istiod",
        description="Print a complete Envoy v3 bootstrap (JSON): `envoy -c FILE` is all it takes.",
    )
    parser.add_argument("--name", required=True, help="workload (pod) name")
    parser.add_argument("--namespace", required=True, help="workload namespace")
    parser.add_argument("--type", dest="proxy_type", choices=PROXY_TYPES, default="sidecar")
    parser.add_argument("--ip", default="127.0.0.1", help="workload IP (default 127.0.0.1)")
    parser.add_argument("--labels", default="", help="workload labels, k=v,k2=v2")
    parser.add_argument("--service-account", default="default")
    parser.add_argument("--interception-mode", choices=INTERCEPTION_MODES, default="REDIRECT")
    parser.add_argument(
        "--istiod",
        default=None,
        help="istiod xDS HOST:PORT (default 127.0.0.1:15012, or :15010 with --insecure)",
    )
    parser.add_argument(
        "--istiod-http", default=None, help="istiod HTTP URL (token and root; secure mode)"
    )
    parser.add_argument("--admin-port", type=int, default=15000, help="Envoy admin port (0 = any)")
    parser.add_argument(
        "--insecure", action="store_true", help="plaintext xDS to istiod, no identity"
    )
    parser.add_argument(
        "--xds-api",
        choices=XDS_APIS,
        default=None,
        help="ADS flavour (default delta; ISTIO_DELTA_XDS=false selects sotw)",
    )
    parser.add_argument("-o", "--output", default="-", help="output file (default stdout)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        opts = options_from_args(args)
        bootstrap = build_bootstrap(opts)
    except BootstrapError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(bootstrap, indent=2) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    try:
        _write_atomically(Path(args.output), text)
    except OSError as err:
        print(f"{PROG}: error: -o: cannot write {args.output}: {err}", file=sys.stderr)
        return 1
    return 0


def options_from_args(args: argparse.Namespace) -> BootstrapOptions:
    """Turn parsed flags into options; raises BootstrapError naming the bad flag."""
    return BootstrapOptions(
        name=args.name,
        namespace=args.namespace,
        proxy_type=cast(ProxyType, args.proxy_type),
        ip=args.ip,
        labels=parse_labels(args.labels),
        service_account=args.service_account,
        interception_mode=cast(InterceptionMode, args.interception_mode),
        istiod=args.istiod,
        istiod_http=args.istiod_http,
        admin_port=args.admin_port,
        insecure=args.insecure,
        xds_api=_xds_api(args.xds_api, os.environ.get("ISTIO_DELTA_XDS")),
    )


def _xds_api(flag: str | None, env: str | None) -> XdsApi:
    """The flag wins; else ISTIO_DELTA_XDS (a Go-style bool, as Istio); else delta."""
    if flag is not None:
        return cast(XdsApi, flag)
    if env is None or not env.strip():
        return "delta"
    value = env.strip().lower()
    if value in _TRUE:
        return "delta"
    if value in _FALSE:
        return "sotw"
    raise BootstrapError("ISTIO_DELTA_XDS", f"expected true or false, got {env!r}")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
