"""`istioctl experimental|x|exp SUBCOMMAND`: the parent of the experimental commands, as in
Istio (`istioctl x ...`). Each subcommand module exposes `add_parser(subparsers)`."""

from __future__ import annotations

from typing import Any

from istioctl.experimental import diff, explain, history, plan, trace

_SUBCOMMANDS = (trace, explain, plan, diff, history)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "experimental",
        aliases=["x", "exp"],
        help="Experimental commands that may be modified or deprecated",
        description="Experimental commands that may be modified or deprecated.",
    )
    children = parser.add_subparsers(dest="experimental_command", metavar="COMMAND")
    children.required = True
    for module in _SUBCOMMANDS:
        module.add_parser(children)
