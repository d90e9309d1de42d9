"""`istioctl x plan -f CHANGE.yaml [--istiod URL | --config-dir DIR] [-o text|json] [--envoy]`:
what a change would do to every connected (or, offline, simulated) proxy, before it is applied.

The files are first validated exactly as `istioctl validate` does (errors on stderr, exit 1,
nothing planned). Then istiod (`POST --istiod URL/debug/plan`, default http://127.0.0.1:8080)
runs its real generators on its current config plus the change, in a copy (nothing is applied
and nothing is pushed), for every connected proxy, grouped into classes of proxies whose
resources are identical. Per class: the proxies, per xDS type (CDS, EDS, LDS, RDS, SDS) the
resources added (+), removed (-) and changed (~) with a unified diff of their Envoy JSON,
whether the push would be endpoint-only, and the size change in bytes; then the analysis
findings the change introduces. A document annotated `plan.pyistio.io/delete: "true"` plans
the deletion of that object. `--envoy` also loads each changed class's resulting config into
real Envoy (`envoy --mode validate`, as `istioctl validate --envoy`).

Offline (`--config-dir DIR`, repeatable, instead of --istiod): no istiod is asked; the same
planner runs in a child process (`python -m pilot.plan`, see pilot/plan/offline.py) on DIR
loaded as istiod loads it, for SIMULATED proxies: one per WorkloadEntry (a router when a
Gateway selects it, else a sidecar), and one router per Gateway that selects
none of them. `--proxy NAME.NS` (repeatable) plans only those. A rejected document in DIR is an
error (exit 1) naming its file and object. `--mesh-config FILE`: the mesh config istiod uses.

Exit status (Terraform's `plan -detailed-exitcode`; Istio has no plan command): 0 no proxy's
config changes; 2 some proxy's config changes; 1 the change is invalid, Envoy rejects the
result, or istiod could not answer. (argparse also exits 2 on a malformed command line.)
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

import yaml

from istioctl import cmd_validate, envoy_check
from istioctl.experimental.plan_render import render_text
from istioctl.experimental.trace import DEFAULT_ISTIOD, normalize_url
from istioctl.http import OPENER
from pkg.config.yamldocs import list_items, load_documents

EXIT_UNCHANGED, EXIT_ERROR, EXIT_CHANGED = 0, 1, 2
DEFAULT_TIMEOUT = 60.0
_MAX_BODY = 64 << 20


class PlanError(Exception):
    """The plan could not be made; the message is for the user."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="Show what a config change would do to every connected proxy, without applying it",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_flags(parser)
    parser.add_argument(
        "--config-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="plan offline against this config directory (repeatable) instead of an istiod",
    )
    parser.add_argument(
        "--proxy",
        action="append",
        default=[],
        metavar="NAME.NS",
        help="with --config-dir: plan only this simulated proxy (repeatable)",
    )
    parser.add_argument(
        "--mesh-config", metavar="FILE", help="with --config-dir: istiod's MeshConfig YAML"
    )
    parser.set_defaults(func=run)


def add_flags(parser: argparse.ArgumentParser, files: bool = True) -> None:
    """The plan's flags (shared with `istioctl apply --plan`)."""
    if files:
        parser.add_argument(
            "-f",
            "--filename",
            action="append",
            default=[],
            metavar="FILE",
            help="the change: a file or directory (repeatable)",
        )
        parser.add_argument(
            "-n",
            "--namespace",
            default="default",
            help="namespace of documents that do not set one (default: default)",
        )
        parser.add_argument(
            "--istiod", default=DEFAULT_ISTIOD, metavar="URL", help=f"default {DEFAULT_ISTIOD}"
        )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.add_argument(
        "--brief", action="store_true", help="list changed resources without their diffs"
    )
    parser.add_argument(
        "--envoy",
        action="store_true",
        help="also load each changed class's resulting config into real Envoy (slower)",
    )
    parser.add_argument("--envoy-path", metavar="PATH", help="the envoy binary for --envoy")


def run(args: argparse.Namespace) -> int:
    return main(args, sys.stdout, sys.stderr)


def main(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    config_dirs: list[str] = list(getattr(args, "config_dir", None) or [])
    proxies: list[str] = list(getattr(args, "proxy", None) or [])
    if config_dirs and args.istiod != DEFAULT_ISTIOD:
        print("Error: --config-dir and --istiod are mutually exclusive", file=err)
        return EXIT_ERROR
    mesh_config: str | None = getattr(args, "mesh_config", None)
    if (proxies or mesh_config) and not config_dirs:
        print("Error: --proxy and --mesh-config need --config-dir", file=err)
        return EXIT_ERROR
    try:
        base = normalize_url(args.istiod)
    except ValueError as error:
        print(f"Error: {error}", file=err)
        return EXIT_ERROR
    code, report = make_plan(
        args.filename,
        args.namespace,
        base,
        args.envoy,
        args.envoy_path,
        err,
        config_dirs=config_dirs,
        proxies=proxies,
        mesh_config=mesh_config,
    )
    if report is None:
        return code
    show(report, args.output, args.brief, out)
    return code


def make_plan(
    files: list[str],
    namespace: str,
    base: str,
    envoy: bool,
    envoy_path: str | None,
    err: TextIO,
    *,
    config_dirs: list[str] | None = None,
    proxies: list[str] | None = None,
    mesh_config: str | None = None,
) -> tuple[int, dict[str, Any] | None]:
    """(exit status, istiod's plan with the Envoy verdict) — None when nothing was planned.
    With `config_dirs`: planned offline against them (`python -m pilot.plan`), not by istiod."""
    if cmd_validate.validate_paths(files, namespace, io.StringIO(), err) != 0:
        return EXIT_ERROR, None
    data = change_bytes(files, namespace)
    try:
        if config_dirs:
            report = offline_plan(config_dirs, proxies or [], data, envoy, mesh_config)
        else:
            report = request_plan(base, data, resources=envoy)
    except PlanError as error:
        print(f"Error: {error}", file=err)
        return EXIT_ERROR, None
    if not report.get("valid", False):
        for line in report.get("errors") or ["istiod refused the change"]:
            print(line, file=err)
        return EXIT_ERROR, None
    if envoy:
        try:
            rejected = envoy_verdict(report, envoy_path)
        except envoy_check.EnvoyCheckError as error:
            print(f"Error: {error}", file=err)
            return EXIT_ERROR, report
        if rejected:
            return EXIT_ERROR, report
    return (EXIT_CHANGED if report.get("changed") else EXIT_UNCHANGED), report


def change_bytes(files: list[str], namespace: str) -> bytes:
    """Every document of the files as one YAML stream, each with its namespace made explicit
    (istiod defaults to "default")."""
    docs: list[Any] = []
    for name in cmd_validate.expand_paths(files, []):
        raw = sys.stdin.buffer.read() if name == cmd_validate.STDIN else Path(name).read_bytes()
        for document in load_documents(raw, name):
            for obj in list_items(document.obj):
                if isinstance(obj, dict):
                    meta = obj.setdefault("metadata", {})
                    if isinstance(meta, dict):
                        meta.setdefault("namespace", namespace)
                docs.append(obj)
    return yaml.safe_dump_all(docs, sort_keys=False).encode()


def request_plan(base: str, data: bytes, resources: bool = False) -> dict[str, Any]:
    url = f"{base}/debug/plan" + ("?resources=true" if resources else "")
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"content-type": "application/yaml"}
    )
    try:
        with OPENER.open(request, timeout=DEFAULT_TIMEOUT) as response:
            status, body = response.status, response.read(_MAX_BODY)
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read(_MAX_BODY)
        error.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", None) or error
        text = getattr(reason, "strerror", None) or str(reason)
        raise PlanError(f"--istiod: cannot reach {base}: {text}") from None
    if status != 200:
        text = body[:200].decode("utf-8", "replace").strip()
        raise PlanError(f"--istiod: {url} answered HTTP {status}: {text}")
    try:
        report: dict[str, Any] = json.loads(body)
    except ValueError:
        raise PlanError(f"--istiod: {url} answered with something other than JSON") from None
    return report


def offline_plan(
    config_dirs: list[str],
    proxies: list[str],
    data: bytes,
    resources: bool = False,
    mesh_config: str | None = None,
) -> dict[str, Any]:
    """The plan of `python -m pilot.plan` (a child process: istioctl does not import pilot)."""
    cmd = [sys.executable, "-m", "pilot.plan", "-f", "-"]
    cmd += [arg for d in config_dirs for arg in ("--config-dir", d)]
    cmd += [arg for p in proxies for arg in ("--proxy", p)]
    if resources:
        cmd.append("--resources")
    if mesh_config:
        cmd += ["--mesh-config", mesh_config]
    try:
        done = subprocess.run(cmd, input=data, capture_output=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        raise PlanError("planning offline timed out") from None
    if done.returncode != 0:
        raise PlanError(done.stderr.decode("utf-8", "replace").strip()[-4000:])
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        raise PlanError("python -m pilot.plan answered with something other than JSON") from None
    return report


def envoy_verdict(report: dict[str, Any], envoy_path: str | None) -> bool:
    """Run Envoy on each changed class's resulting config; record the verdict in the report
    (`envoy`: list of rejection lines, per class). True when Envoy rejected something."""
    envoy = envoy_check.find_envoy(envoy_path)
    rejected = False
    for cls in report.get("classes", ()):
        resources = cls.pop("resources", None)
        if not cls.get("changed") or resources is None:
            continue
        lines = [line for r in envoy_check.check(envoy, [resources]) for line in r.lines()]
        cls["envoy"] = {"accepted": not lines, "rejections": lines}
        rejected = rejected or bool(lines)
    return rejected


def show(report: dict[str, Any], output: str, brief: bool, out: TextIO) -> None:
    if output == "json":
        json.dump(report, out, indent=2)
        out.write("\n")
    else:
        out.write(render_text(report, brief))
