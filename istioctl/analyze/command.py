"""`istioctl analyze [FILE|DIR|-]... [-f FILE]... [--istiod URL]`: Istio's analysis messages.

Inputs: files and directories (every *.yaml, *.yml and *.json below, always recursively; `-R`
is accepted for compatibility), positional or with `-f`; and a running istiod (`--istiod`,
default http://127.0.0.1:8080 when no file is given): its /debug/configz objects, with proxies'
rejections, and its connected proxies. Files given with `--istiod` are analyzed on top of
istiod's configs, as istioctl simulates applying files to a live cluster. Files alone get
Istio's default ingress gateway workload (`istio: ingressgateway` in the Istio namespace).

Output and exit status are istioctl's: one `<Level> [<Code>] (<Kind> <ns>/<name> <file:line>)
<message>` line per message (`-o log`), or `-o json|yaml`; messages below `--output-threshold`
(default Info) are not shown; in log format the status is 79 when a message is at or above
`--failure-threshold` (default Error), else 65 when a document could not be parsed (unless
`--ignore-unknown`), else 0. An invalid `-o` is 64, other errors 1. Only messages about
objects in `--namespace` (default `default`) are kept unless `-A`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from istioctl.analyze.sources import SourceError, gather_files, read_istiod
from pkg.analysis.analyzers import Analyzer
from pkg.analysis.defaults import default_ingress
from pkg.analysis.inputs import AnalysisInput
from pkg.analysis.loader import Loaded, load_text, merge
from pkg.analysis.messages import CONFIG_ANALYSIS_URL, KNOWN_CODES, Level
from pkg.analysis.output import Format, render
from pkg.analysis.runner import Suppression, analyze, select
from pkg.config.mesh import MeshConfig, load_mesh_config
from pkg.errors import ConfigError

DEFAULT_ISTIOD = "http://127.0.0.1:8080"
EXIT_ERROR = 1
EXIT_USAGE = 64
EXIT_DATA = 65
EXIT_ISSUES = 79
NO_ISSUES = "\u2714 No validation issues found when analyzing"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="Analyze Istio configuration and print validation messages",
        description=(__doc__ or "").split("\n\n")[1],
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="a file, a directory or -")
    parser.add_argument(
        "-f", "--filename", action="append", default=[], metavar="FILE", help="(repeatable)"
    )
    parser.add_argument(
        "-R", "--recursive", action="store_true", help="accepted; directories are always walked"
    )
    parser.add_argument("-o", "--output", default="log", help="log (default), json or yaml")
    parser.add_argument("--failure-threshold", default="Error", metavar="LEVEL")
    parser.add_argument("--output-threshold", default="Info", metavar="LEVEL")
    parser.add_argument("-n", "--namespace", default="", help="namespace to analyze")
    parser.add_argument("-A", "--all-namespaces", action="store_true")
    parser.add_argument("-S", "--suppress", action="append", default=[], metavar="CODE=RESOURCE")
    parser.add_argument("-L", "--list-analyzers", action="store_true")
    parser.add_argument("--analyzer", action="append", default=[], metavar="NAME")
    parser.add_argument(
        "--color", nargs="?", const="true", default=None, metavar="BOOL", help="default: a tty"
    )
    parser.add_argument("--ignore-unknown", action="store_true")
    parser.add_argument("--meshConfigFile", dest="mesh_config", default="", metavar="FILE")
    parser.add_argument("--istiod", default="", metavar="URL", help="a running istiod")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return Analyze(args, sys.stdout, sys.stderr).run()


class Analyze:
    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.namespace = None if args.all_namespaces else (args.namespace or "default")
        self.target = "all namespaces" if self.namespace is None else f"namespace: {self.namespace}"
        self.mesh: MeshConfig | None = None

    def fail(self, message: str, code: int = EXIT_ERROR) -> int:
        print(f"Error: {message}", file=self.err)
        return code

    def run(self) -> int:
        a = self.args
        try:
            fmt = Format(a.output.lower())
        except ValueError:
            return self.fail(
                f"{a.output} not a valid option for format. See istioctl analyze --help",
                EXIT_USAGE,
            )
        if a.list_analyzers:
            self.out.write(_analyzer_list())
            return 0
        try:
            failure = Level.parse(a.failure_threshold)
            output = Level.parse(a.output_threshold)
            analyzers = select(a.analyzer)
            suppressions = [Suppression.parse(s) for s in a.suppress]
        except ValueError as error:
            return self.fail(str(error))
        for rule in suppressions:
            if rule.code not in KNOWN_CODES:
                print(
                    f"Warning: Supplied message code '{rule.code}' is an unknown message code"
                    " and will not have any effect.",
                    file=self.err,
                )
        try:
            loaded, names = self.load()
        except (SourceError, ConfigError) as error:
            return self.fail(str(error))
        except OSError as error:  # e.g. reading stdin
            return self.fail(str(error.strerror or error))
        return self.report(loaded, names, fmt, failure, output, analyzers, suppressions)

    def load(self) -> tuple[Loaded, list[str]]:
        a = self.args
        mesh = load_mesh_config(Path(a.mesh_config)) if a.mesh_config else None
        self.mesh = mesh
        paths = [*a.files, *a.filename]
        files = gather_files(paths, self.err)
        default_ns = self.namespace or "default"
        parts: list[Loaded] = []
        istiod = a.istiod or ("" if paths else DEFAULT_ISTIOD)
        if istiod:
            parts.append(read_istiod(istiod, a.timeout))
        else:
            parts.append(default_ingress(mesh.root_namespace if mesh else "istio-system"))
        parts.extend(load_text(f.data, f.name, default_ns) for f in files)
        return merge(parts), [f.name for f in files]

    def report(
        self,
        loaded: Loaded,
        names: list[str],
        fmt: Format,
        failure: Level,
        output: Level,
        analyzers: Sequence[Analyzer],
        suppressions: list[Suppression],
    ) -> int:
        result = analyze(
            AnalysisInput(loaded, self.mesh),
            namespace=self.namespace,
            suppressions=suppressions,
            analyzers=analyzers,
        )
        if self.args.verbose:
            print(f"Analyzed resources in {self.target}", file=self.err)
            print("Executed analyzers:", file=self.err)
            for name in result.executed:
                print(f"\t {name}", file=self.err)
            print(file=self.err)
        problem_files = sorted({p.source for p in loaded.problems})
        if loaded.problems:
            print("Error(s) adding files:", file=self.err)
            for problem in loaded.problems:
                print(f"\t* {problem}", file=self.err)
        shown = [msg for msg in result.messages if msg.type.level.at_least(output)]
        colorize = _colorize(self.args.color, self.out)
        print(render(shown, fmt, colorize=colorize), file=self.out)
        if not shown:
            self.success(names, len(problem_files))
        if fmt is not Format.LOG:
            return 0
        if any(msg.type.level.at_least(failure) for msg in result.messages):
            return self.fail(
                f"Analyzers found issues when analyzing {self.target}.\n"
                f"See {CONFIG_ANALYSIS_URL} for more information about causes and resolutions.",
                EXIT_ISSUES,
            )
        if problem_files and not self.args.ignore_unknown:
            return self.fail("Some files couldn't be parsed.", EXIT_DATA)
        return 0

    def success(self, names: list[str], unparsed: int) -> None:
        if unparsed:
            noun = "file" if unparsed == 1 else "files"
            print(
                f"No validation issues found when analyzing {self.target} (but {unparsed}"
                f" {noun} could not be parsed).",
                file=self.err,
            )
        elif len(names) > 1:
            listing = "\n  - ".join(names)
            print(f"{NO_ISSUES}:\n  - {listing}", file=self.err)
        else:
            print(f"{NO_ISSUES} {names[0] if names else self.target}.", file=self.err)


def _analyzer_list() -> str:
    lines: list[str] = []
    for analyzer in sorted(select([]), key=lambda a: a.name):
        lines.append(f"* {analyzer.name}:\n")
        if analyzer.description:
            lines.append(f"    {analyzer.description}\n")
    return "".join(lines)


def _colorize(flag: str | None, stream: TextIO) -> bool:
    """`--color[=BOOL]`; by default on a terminal unless TERM=dumb (as istioctl)."""
    if flag is not None:
        return flag.lower() in ("true", "1", "yes")
    if os.environ.get("TERM", "").lower() == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
