"""`istioctl bootstrap`: print a complete Envoy bootstrap for one proxy (`envoy -c FILE`)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, cast

from istioctl.bootstrap import (
    DEFAULT_ISTIOD_HTTP,
    INTERCEPTION_MODES,
    PROXY_TYPES,
    XDS_APIS,
    BootstrapError,
    BootstrapOptions,
    InterceptionMode,
    ProxyType,
    SecureMaterial,
    XdsApi,
    build_bootstrap,
    parse_labels,
    validate,
)
from istioctl.istiod_client import ADMIN_TOKEN_ENV, IstiodError, fetch_secure_material

PROG = "istioctl bootstrap"
_TRUE = frozenset({"1", "t", "true"})
_FALSE = frozenset({"0", "f", "false"})
_HEADER_VALUE = re.compile(r"[\x21-\x7e]+")


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
        action="append",
        default=None,
        metavar="HOST:PORT",
        help=(
            "istiod xDS HOST:PORT (default 127.0.0.1:15012, or :15010 with --insecure); repeat"
            " it, or give a comma-separated list, for several istiod replicas: Envoy connects"
            " to one of them and moves to another when it goes away"
        ),
    )
    parser.add_argument(
        "--istiod-http",
        default=None,
        metavar="URL",
        help=(
            "istiod HTTP URL the proxy's token and the mesh root are fetched from in secure mode"
            f" (default {DEFAULT_ISTIOD_HTTP}). istiod issues tokens to callers on its loopback;"
            f" from elsewhere set {ADMIN_TOKEN_ENV} to an admin token, sent as"
            " 'authorization: Bearer <value>' with the token request"
        ),
    )
    parser.add_argument("--admin-port", type=int, default=15000, help="Envoy admin port (0 = any)")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext xDS to istiod, no identity (default: TLS to istiod and a bearer token)",
    )
    parser.add_argument(
        "--xds-api",
        choices=XDS_APIS,
        default=None,
        help="ADS flavour (default delta; ISTIO_DELTA_XDS=false selects sotw)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default="-",
        help="output file (default stdout); in secure mode it holds the token and is made 0600",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Exit 0 on success, 2 for bad flags (or environment), 1 when istiod or the output fails."""
    try:
        opts = options_from_args(args)
        validate(opts)
        admin_token = None if opts.insecure else _admin_token(os.environ.get(ADMIN_TOKEN_ENV))
    except BootstrapError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    secure: SecureMaterial | None = None
    if not opts.insecure:
        try:
            secure = fetch_secure_material(
                opts.istiod_http_url,
                opts.namespace,
                opts.service_account,
                admin_token=admin_token,
            )
        except IstiodError as err:
            print(f"{PROG}: error: {err}", file=sys.stderr)
            return 1
    try:
        bootstrap = build_bootstrap(opts, secure=secure)
    except BootstrapError as err:
        # Only reachable when istiod's answer fails the builder's checks.
        print(f"{PROG}: error: istiod's answer is unusable: {err}", file=sys.stderr)
        return 1
    text = json.dumps(bootstrap, indent=2) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    try:
        # A secure bootstrap holds the proxy's token: only its owner may read it.
        _write_atomically(Path(args.output), text, private=secure is not None)
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
        istiod=",".join(args.istiod) if args.istiod else None,
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


def _admin_token(env: str | None) -> str | None:
    """ISTIOCTL_ADMIN_TOKEN, if set (blank = unset); never quoted back in errors."""
    if env is None or not env.strip():
        return None
    value = env.strip()
    if not _HEADER_VALUE.fullmatch(value):
        raise BootstrapError(ADMIN_TOKEN_ENV, "not a valid header value (no spaces or controls)")
    return value


def _write_atomically(path: Path, text: str, *, private: bool = False) -> None:
    """Write `text` to a temporary file next to `path`, then rename it over `path`. With
    `private`, the file is created 0600 (never readable by others, not even for a moment)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)
        # O_EXCL: never write through a symlink or a file someone else planted there.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if private:
                os.fchmod(f.fileno(), 0o600)  # exactly 0600, whatever the umask
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
