"""`istioctl kube-inject -f FILE [-o FILE]`: add the Envoy sidecar to workloads offline.

The same injection as istiod's /inject webhook (pkg/inject/): the pod template of each Pod,
Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job and CronJob gets
the `istio-init` and `istio-proxy` containers; every other document is written back
unchanged. `-f -` reads stdin; the output (stdout, or `-o FILE`) is multi-document YAML.
Exit status 0, or 1 with `Error: ...` naming the file/document for bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import yaml

from pkg.config.yamldocs import load_documents
from pkg.inject.sidecar import InjectionSettings
from pkg.inject.workloads import InjectError, inject_object

STDIN = "-"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "kube-inject",
        help="Inject the Istio sidecar into Kubernetes pod resources",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("-f", "--filename", required=True, metavar="FILE",
                        help="input Kubernetes resource file, or - for stdin")  # fmt: skip
    parser.add_argument("-o", "--output", default=None, metavar="FILE",
                        help="modified output file (default: stdout)")  # fmt: skip
    parser.add_argument("--revision", "-r", default="default",
                        help="control plane revision (the istio.io/rev annotation)")  # fmt: skip
    parser.add_argument("--istiod", default=None, metavar="HOST:PORT",
                        help="istiod's secure xDS address the sidecar dials "
                             f"(default {InjectionSettings().xds_address})")  # fmt: skip
    parser.add_argument("--sts-url", default=None, metavar="URL",
                        help="istiod's STS endpoint the sidecar exchanges its token at "
                             f"(default {InjectionSettings().sts_uri})")  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = InjectionSettings(revision=args.revision)
    if args.istiod:
        settings = dataclasses.replace(settings, xds_address=args.istiod)
    if args.sts_url:
        settings = dataclasses.replace(settings, sts_uri=args.sts_url)
    name = args.filename
    try:
        data = sys.stdin.buffer.read() if name == STDIN else Path(name).read_bytes()
    except OSError as error:
        print(f'Error: cannot read file "{name}": {error.strerror or error}', file=sys.stderr)
        return 1
    out: list[Any] = []
    for document in load_documents(data, name):
        if document.error is not None:
            print(f"Error: {document.location}: failed to decode: {document.error}",
                  file=sys.stderr)  # fmt: skip
            return 1
        if document.obj is None:
            continue
        try:
            out.append(inject_object(document.obj, settings).obj)
        except (InjectError, ValueError) as error:
            print(f"Error: {document.location}: {error}", file=sys.stderr)
            return 1
    text = yaml.safe_dump_all(out, sort_keys=False, explicit_start=False)
    text = text.replace("\n...\n", "\n")
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"Error: -o: cannot write {args.output}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0
