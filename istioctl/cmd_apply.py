"""`istioctl apply -f FILE [-f FILE]... [--config-dir DIR] [--plan [--yes]] [--istiod URL]`:
validate files, then store them where a standalone istiod reads its config.

Without `--config-dir`, istiod at --istiod says where it reads from
(`/debug/configsources`, answered on loopback or to an admin token): its first config
directory. An istiod in Kubernetes mode reads from the API server: apply with kubectl there.

The files are validated as `istioctl validate` does (any error: exit 1, nothing stored). Each
file is then written into DIR under its own base name, atomically (a temporary file in DIR
renamed over the old one), so istiod's file watcher sees either the old or the new version,
never half of one. Applying the same file again replaces what it defined before.

`--plan` first shows what the change would do to every connected proxy (`istioctl x plan`,
asking istiod at --istiod) and asks for confirmation; only `yes` applies. `--yes` applies
without asking. Without a terminal to ask on and without `--yes`, nothing is applied (exit 1).

Exit status: 0 applied (or nothing to apply); 1 invalid, refused, declined or not written.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from istioctl import cmd_validate
from istioctl.experimental import plan
from istioctl.experimental.trace import DEFAULT_ISTIOD, normalize_url
from istioctl.proxystatus.sources import SourceError, get_json


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "apply",
        help="Validate files and store them in istiod's config directory",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        metavar="FILE",
        help="a file or directory (repeatable)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace of documents that do not set one (default: default)",
    )
    parser.add_argument(
        "--config-dir",
        default=None,
        metavar="DIR",
        help="the directory istiod watches (default: asked from istiod at --istiod)",
    )
    parser.add_argument(
        "--istiod", default=DEFAULT_ISTIOD, metavar="URL", help=f"default {DEFAULT_ISTIOD}"
    )
    parser.add_argument(
        "--plan", action="store_true", help="show the plan of the change and ask before applying"
    )
    parser.add_argument("-y", "--yes", action="store_true", help="apply without asking")
    plan.add_flags(parser, files=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return main(args, sys.stdin, sys.stdout, sys.stderr)


def istiod_config_dir(istiod: str, timeout: float = 10.0) -> Path:
    """The first config directory of the standalone istiod at `istiod`; ValueError says why
    there is none."""
    base = normalize_url(istiod)
    try:
        info = get_json(f"{base}/debug/configsources", "--istiod", timeout)
    except SourceError as error:
        raise ValueError(f"{error} (or pass --config-dir)") from None
    mode = info.get("mode") if isinstance(info, dict) else None
    if mode == "kubernetes":
        raise ValueError(
            f"--istiod {base} reads its config from the Kubernetes API server "
            f"({info.get('apiServer', '?')}): apply there, e.g. with kubectl apply"
        )
    dirs = info.get("configDirs") if isinstance(info, dict) else None
    if mode != "files" or not isinstance(dirs, list) or not dirs:
        raise ValueError(f"--istiod {base} names no config directory: pass --config-dir")
    return Path(str(dirs[0]))


def main(args: argparse.Namespace, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    if args.config_dir is None:
        try:
            target = istiod_config_dir(args.istiod)
        except ValueError as error:
            print(f"Error: {error}", file=err)
            return 1
    else:
        target = Path(args.config_dir)
    if not target.is_dir():
        print(f'Error: --config-dir "{target}": no such directory', file=err)
        return 1
    files = list(cmd_validate.expand_paths(args.filename, []))
    if cmd_validate.STDIN in files:
        print("Error: apply cannot read stdin (-f -); pass files", file=err)
        return 1
    if cmd_validate.validate_paths(args.filename, args.namespace, io.StringIO(), err) != 0:
        return 1
    names = [Path(f).name for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        print(f"Error: two files named {', '.join(duplicates)}: rename one", file=err)
        return 1
    if args.plan:
        try:
            base = normalize_url(args.istiod)
        except ValueError as error:
            print(f"Error: {error}", file=err)
            return 1
        code, report = plan.make_plan(files, args.namespace, base, args.envoy, args.envoy_path, err)
        if report is None or code == plan.EXIT_ERROR:
            if report is not None:
                plan.show(report, args.output, args.brief, out)
            print("Nothing applied.", file=err)
            return 1
        plan.show(report, args.output, args.brief, out)
        if not args.yes and not confirm(stdin, out, err):
            return 1
    for name in files:
        write_atomically(target, Path(name))
        print(f'"{name}" applied to {target / Path(name).name}', file=out)
    return 0


def confirm(stdin: TextIO, out: TextIO, err: TextIO) -> bool:
    """Terraform's question: only `yes` applies."""
    if not stdin.isatty():
        print(
            "Error: --plan asks before applying, but there is no terminal to ask on; "
            "pass --yes to apply without asking. Nothing applied.",
            file=err,
        )
        return False
    out.write("Apply this change? Only 'yes' will be accepted: ")
    out.flush()
    answer = stdin.readline().strip()
    if answer != "yes":
        print("Apply cancelled. Nothing applied.", file=err)
        return False
    return True


def write_atomically(directory: Path, source: Path) -> None:
    data = source.read_bytes()
    fd, tmp = tempfile.mkstemp(prefix=".istioctl-apply-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, directory / source.name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
