"""`istioctl` entry point: a thin argparse root that dispatches to one module per command.

Each command module exposes `add_parser(subparsers)` (registering its flags and setting
`func` to its `run(args) -> int`). Modules are imported here explicitly, never by side effect.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from istioctl import cmd_apply, cmd_bootstrap, cmd_kube_inject, cmd_validate
from istioctl.analyze import command as cmd_analyze
from istioctl.experimental import command as cmd_experimental
from istioctl.proxyconfig import command as cmd_proxy_config
from istioctl.proxystatus import command as cmd_proxy_status

_COMMANDS = (
    cmd_validate,
    cmd_bootstrap,
    cmd_proxy_config,
    cmd_proxy_status,
    cmd_analyze,
    cmd_experimental,
    cmd_kube_inject,
    cmd_apply,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="istioctl", description="Inspect and configure a pyistio mesh (Istio-compatible)."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in _COMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
