"""`istioctl validate -f FILE [-f FILE]...`: validate configuration files offline.

Each document is checked against its CRD schema and istiod's validation rules (through
`pkg.config.schema.parse_object`). Errors go to stderr, one line each,
`<kind>/<namespace>/<name>: <field path>: <reason>`; YAML problems name the file and the
document index. Exit status 0 when every document is valid (then `"<file>" is valid` is
printed per file on stdout, as istioctl does), 1 otherwise. `-f -` reads stdin; a directory
means every *.yaml, *.yml and *.json file below it. Kubernetes kinds pyistio does not read
(Deployment, ServiceAccount, ...) are skipped, and `kind: List` documents are expanded.

With `--envoy`, files that pass are also checked by real Envoy: the xDS they produce for
representative proxies is loaded by `envoy --mode validate` (istioctl/envoy_check.py); each
rejection is reported as `<kind>/<ns>/<name>: envoy rejected <resource> of proxy <id>:
<Envoy's message>`, exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from istioctl import envoy_check
from pkg.config.schema import parse_object
from pkg.config.yamldocs import list_items, load_documents

EXTENSIONS = (".yaml", ".yml", ".json")
STDIN = "-"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        aliases=["v"],
        help="Validate Istio policy and rules files",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        metavar="FILE",
        help="a file, a directory, or - for stdin (repeatable)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace of documents that do not set one (default: default)",
    )
    parser.add_argument(
        "--envoy",
        action="store_true",
        help="also run real Envoy (--mode validate) on the xDS the files produce for "
        "representative proxies; report what Envoy rejects, with the objects behind it",
    )
    parser.add_argument(
        "--envoy-path",
        metavar="PATH",
        help="the envoy binary for --envoy (default: envoy on PATH)",
    )
    parser.set_defaults(func=run)


@dataclass
class _FileResult:
    name: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def run(args: argparse.Namespace) -> int:
    code = validate_paths(args.filename, args.namespace, sys.stdout, sys.stderr)
    if code != 0 or not args.envoy:
        return code
    return envoy_validate_paths(
        args.filename, args.namespace, args.envoy_path, sys.stdout, sys.stderr
    )


def envoy_validate_paths(
    paths: list[str], namespace: str, envoy_path: str | None, out: TextIO, err: TextIO
) -> int:
    """`--envoy`: Envoy's verdict on the xDS of files that passed validation (exit 0/1)."""
    files = list(expand_paths(paths, []))
    if STDIN in files:
        print("Error: --envoy cannot read stdin (-f -); pass files", file=err)
        return 1
    try:
        envoy = envoy_check.find_envoy(envoy_path)
        proxies = envoy_check.render(files, namespace)
        rejections = envoy_check.check(envoy, proxies)
    except envoy_check.EnvoyCheckError as error:
        print(f"Error: {error}", file=err)
        return 1
    for rejection in rejections:
        for line in rejection.lines():
            print(line, file=err)
    if rejections:
        return 1
    names = ", ".join(p["id"].split("~")[2] for p in proxies)
    print(f"Envoy accepts the generated configuration (proxies: {names})", file=out)
    return 0


def validate_paths(paths: list[str], namespace: str, out: TextIO, err: TextIO) -> int:
    """Validate the given files/directories; print results; return the exit status."""
    if not paths:
        print("Error: no file specified (use -f FILE, -f DIR or -f -)", file=err)
        return 1
    results: list[_FileResult] = []
    missing: list[str] = []
    for name in expand_paths(paths, missing):
        results.append(_validate_file(name, namespace))
    failed = bool(missing) or any(r.errors for r in results)
    for line in missing:
        print(line, file=err)
    for result in results:
        for line in result.errors:
            print(line, file=err)
    for result in results:
        if failed:
            if result.warnings:
                _print_warnings(result, err)
        elif result.warnings:
            _print_warnings(result, out)
        elif result.name == STDIN:
            print("validation succeed", file=out)
        else:
            print(f'"{result.name}" is valid', file=out)
    return 1 if failed else 0


def _print_warnings(result: _FileResult, stream: TextIO) -> None:
    print(f'"{result.name}" has warnings:', file=stream)
    for line in result.warnings:
        print(f"\t* {line}", file=stream)


def expand_paths(paths: list[str], missing: list[str]) -> Iterator[str]:
    """The files named by `paths` (a directory: its YAML/JSON files), each once; paths that
    do not exist are appended to `missing`."""
    seen: set[str] = set()
    for name in paths:
        candidates: list[str]
        if name == STDIN:
            candidates = [STDIN]
        else:
            path = Path(name)
            if path.is_dir():
                candidates = sorted(
                    str(p) for p in path.rglob("*") if p.is_file() and p.suffix in EXTENSIONS
                )
            elif path.exists():
                candidates = [name]
            else:
                missing.append(f'Error: cannot stat file "{name}": no such file or directory')
                continue
        for candidate in candidates:
            if candidate not in seen:
                seen.add(candidate)
                yield candidate


def _validate_file(name: str, namespace: str) -> _FileResult:
    result = _FileResult(name)
    try:
        data = sys.stdin.buffer.read() if name == STDIN else Path(name).read_bytes()
    except OSError as error:
        result.errors.append(f'Error: cannot read file "{name}": {error.strerror or error}')
        return result
    for document in load_documents(data, name):
        if document.error is not None:
            result.errors.append(
                f"{name}: document {document.index}: failed to decode: {document.error}"
            )
            continue
        for obj in list_items(document.obj):
            parsed = parse_object(obj, default_namespace=namespace)
            result.errors.extend(str(e) for e in parsed.errors)
            result.warnings.extend(str(w) for w in parsed.warnings)
    return result
