"""istiod's command line (DESIGN.md §2.1) → a frozen settings value."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pkg.config.types import Duration
from pkg.errors import ConfigError
from pkg.kube.client import SERVICE_HOST_ENV


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(value: str, flag: str) -> Address:
    host, sep, port = value.rpartition(":")
    if not sep:
        raise ConfigError(f"{flag}: expected HOST:PORT, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"{flag}: port must be a number, got {port!r}") from None
    if not 0 <= number <= 65535:
        raise ConfigError(f"{flag}: port must be between 0 and 65535, got {number}")
    return Address(host, number)


@dataclass(frozen=True, slots=True)
class Options:
    config_dirs: tuple[Path, ...]
    kubeconfig: Path | None
    mesh_config: Path | None
    state_dir: Path
    grpc_addr: Address
    secure_grpc_addr: Address | None
    mtls_grpc_addr: Address | None
    http_addr: Address
    monitoring_addr: Address | None
    webhook_addr: Address | None
    trust_domain: str | None
    domain_suffix: str
    log_level: str
    # Istio's --keepaliveMaxServerConnectionAge (its chart sets 30m) and its fixed 10s grace:
    # past these every xDS connection is closed, so none (e.g. one stuck behind a proxy that
    # stopped reading) lives forever. 0 = never.
    max_server_connection_age: float = 30 * 60.0
    max_server_connection_age_grace: float = 10.0
    # Kubernetes mode with the in-cluster config: neither --config-dir nor --kubeconfig, and
    # KUBERNETES_SERVICE_HOST set (istiod runs in a pod), as Istio's istiod.
    in_cluster: bool = False
    # --watched-namespaces: namespaced kinds are watched in these namespaces only (Istio's old
    # --appNamespace); empty = every namespace. Cluster-scoped kinds are always cluster-wide.
    watched_namespaces: tuple[str, ...] = ()

    @property
    def kubernetes(self) -> bool:
        return self.kubeconfig is not None or self.in_cluster


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="istiod", description="pyistio control plane (Istio-compatible)."
    )
    p.add_argument("--config-dir", action="append", default=[], metavar="DIR",
                   help="directory of Istio/Kubernetes YAML to serve (repeatable)")  # fmt: skip
    p.add_argument("--kubeconfig", default=None, metavar="FILE",
                   help="Kubernetes mode: config and registry from this cluster's API server "
                        "(in a pod, without --config-dir: the in-cluster config)")  # fmt: skip
    p.add_argument("--watched-namespaces", default="", metavar="NS[,NS...]",
                   help="Kubernetes mode: watch namespaced objects in these namespaces only "
                        "(default: all)")  # fmt: skip
    p.add_argument("--mesh-config", default=None, metavar="FILE",
                   help="Istio MeshConfig YAML")  # fmt: skip
    p.add_argument("--state-dir", default=".istiod-state", metavar="DIR")
    p.add_argument("--grpc-addr", default="127.0.0.1:15010")
    p.add_argument("--secure-grpc-addr", default="127.0.0.1:15012")
    p.add_argument(
        "--mtls-grpc-addr",
        default="",
        help="optional port for callers authenticating with a mesh certificate (CSR API, ADS)",
    )
    p.add_argument("--http-addr", default="127.0.0.1:8080")
    p.add_argument("--monitoring-addr", default="127.0.0.1:15014")
    p.add_argument("--webhook-addr", default="127.0.0.1:15017")
    p.add_argument(
        "--trust-domain",
        default=None,
        help="SPIFFE trust domain (default: meshConfig.trustDomain, cluster.local)",
    )
    p.add_argument("--domain-suffix", default="cluster.local")
    p.add_argument("--keepalive-max-server-connection-age", default="30m", metavar="DURATION",
                   help="close xDS connections older than this (Istio's "
                        "--keepaliveMaxServerConnectionAge; 0 = never)")  # fmt: skip
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "warn", "error"])  # fmt: skip
    return p


def parse_options(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Options:
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    if args.config_dir and args.kubeconfig:
        # Istio's --configDir would take Istio config from files and the registry from the
        # cluster; pyistio has no such mixed mode (docs/kubernetes.md).
        raise ConfigError(
            "--config-dir and --kubeconfig cannot be used together: --config-dir serves "
            "config files (standalone mode), --kubeconfig an API server (Kubernetes mode)"
        )
    namespaces = tuple(n.strip() for n in args.watched_namespaces.split(",") if n.strip())
    if namespaces and not (args.kubeconfig or _in_cluster(args, env)):
        raise ConfigError("--watched-namespaces needs Kubernetes mode (--kubeconfig, or in a pod)")
    for ns in namespaces:
        if not _DNS_LABEL.fullmatch(ns):
            raise ConfigError(f"--watched-namespaces: {ns!r} is not a valid namespace name")

    def optional(value: str, flag: str) -> Address | None:
        return parse_address(value, flag) if value else None

    return Options(
        config_dirs=tuple(Path(d) for d in args.config_dir),
        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
        mesh_config=Path(args.mesh_config) if args.mesh_config else None,
        state_dir=Path(args.state_dir),
        grpc_addr=parse_address(args.grpc_addr, "--grpc-addr"),
        secure_grpc_addr=optional(args.secure_grpc_addr, "--secure-grpc-addr"),
        mtls_grpc_addr=optional(args.mtls_grpc_addr, "--mtls-grpc-addr"),
        http_addr=parse_address(args.http_addr, "--http-addr"),
        monitoring_addr=optional(args.monitoring_addr, "--monitoring-addr"),
        webhook_addr=optional(args.webhook_addr, "--webhook-addr"),
        trust_domain=args.trust_domain,
        domain_suffix=args.domain_suffix,
        log_level="warning" if args.log_level == "warn" else args.log_level,
        max_server_connection_age=_duration(
            args.keepalive_max_server_connection_age, "--keepalive-max-server-connection-age"
        ),
        in_cluster=_in_cluster(args, env),
        watched_namespaces=tuple(dict.fromkeys(namespaces)),
    )


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _in_cluster(args: argparse.Namespace, env: Mapping[str, str]) -> bool:
    return not args.config_dir and not args.kubeconfig and bool(env.get(SERVICE_HOST_ENV))


def _duration(value: str, flag: str) -> float:
    try:
        seconds = Duration.parse(value).total_seconds()
    except ValueError as e:
        raise ConfigError(f"{flag}: {e}") from None
    if seconds < 0:
        raise ConfigError(f"{flag}: must not be negative, got {value!r}")
    return seconds
