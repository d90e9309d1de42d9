"""`python -m pilot.plan --config-dir DIR -f CHANGE.yaml [--proxy NAME.NS]...`: the plan of a
change against a config directory, with no istiod. It backs `istioctl x plan --config-dir`.

istioctl never imports pilot, so it runs this module as a child process (as `istioctl validate
--envoy` runs `python -m pilot.render`) and renders its answer. The answer is the JSON that
istiod's `POST /debug/plan` answers (pilot/plan/planner.py), plus `"simulated": true` and the
simulated proxies' node ids: the same planner, diff and analysis run on the same inputs.

The directory is loaded as istiod loads its config directories (`FileConfigSource.load` into
a `ConfigStore`, joined with the mesh config by an `Environment`); a rejected document (or a
duplicate, or a missing directory) is an error naming its file, object and field: exit 1.

No proxy is connected, so the planned proxies are simulated from the config, as a user would
expect them to be deployed, each authenticated with its service account (mesh mTLS):
  - one proxy per WorkloadEntry with an IP address (its address, labels, service account,
    namespace; node name `<entry>.<namespace>`). Pod documents are none: istiod's config-dir
    loader ignores them (`OBSERVED_KINDS`: they do not describe running workloads);
  - the proxy is a router (a gateway) when a Gateway's non-empty selector matches its labels,
    else a sidecar;
  - a Gateway whose selector matches none of those workloads gets one router of its own in
    its namespace with the selector as labels (`<selector's app or istio label>.<namespace>`).
`--proxy NAME.NS` (repeatable) restricts the plan to those proxies; an unknown one is an error.

Exit status: 0 the plan was made (whatever it says); 1 the directory, mesh config, change
file or a --proxy is in error (the reason on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilot.bootstrap.environment import Environment
from pilot.config.file import FileConfigSource
from pilot.config.store import ConfigStore
from pilot.model.proxy import InvalidNodeError, Proxy, parse_node
from pilot.model.push_context import PushContext
from pilot.plan.compute import PlanTarget
from pilot.plan.planner import MAX_CHANGE_BYTES, plan_json
from pilot.xds.generators import default_generators, generators_for
from pkg.config.labels import selector_matches
from pkg.config.mesh import MeshConfig, load_mesh_config
from pkg.config.model import Config, Kind
from pkg.credentials import Identity
from pkg.errors import ConfigError

DOMAIN_SUFFIX = "cluster.local"
GATEWAY_IP = "127.0.0.3"  # a Gateway without a workload in the directory: a placeholder IP


class OfflineError(Exception):
    """The plan could not be made; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class SimulatedProxy:
    """One proxy as it would connect: what its node id and metadata would say."""

    type: str  # "sidecar" | "router"
    ip: str
    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    service_account: str

    @property
    def short(self) -> str:
        return f"{self.name}.{self.namespace}"

    @property
    def node_id(self) -> str:
        return f"{self.type}~{self.ip}~{self.short}~{self.namespace}.svc.{DOMAIN_SUFFIX}"

    def proxy(self, trust_domain: str) -> Proxy:
        metadata = {
            "NAMESPACE": self.namespace,
            "INSTANCE_IPS": self.ip,
            "LABELS": dict(self.labels),
            "SERVICE_ACCOUNT": self.service_account,
        }
        proxy = parse_node(self.node_id, metadata)
        identity = Identity(trust_domain, self.namespace, self.service_account)
        return dataclasses.replace(proxy, identity=identity)


def load_dir(dirs: Sequence[Path]) -> ConfigStore:
    """The directories as istiod loads them; their problems raise OfflineError."""
    for directory in dirs:
        if not directory.is_dir():
            raise OfflineError(f"--config-dir: {directory}: not a directory")
    store = ConfigStore()
    source = FileConfigSource(list(dirs), store)
    asyncio.run(source.load())
    problems = source.problems
    if problems:
        raise OfflineError("\n".join(f"--config-dir: {p}" for p in problems))
    return store


def simulated_proxies(configs: Mapping[Kind, Sequence[Config[Any]]]) -> list[SimulatedProxy]:
    """The proxies the config implies (see the module docstring), sorted by node id."""
    selectors = [
        (g.namespace, dict(g.spec.selector))
        for g in configs.get(Kind.GATEWAY, ())
        if g.spec.selector
    ]
    workloads: list[tuple[str, str, str, dict[str, str], str]] = []
    for entry in configs.get(Kind.WORKLOAD_ENTRY, ()):
        spec = entry.spec
        if spec.address and not spec.address.startswith("unix://"):
            labels = {**dict(entry.meta.labels), **dict(spec.labels)}
            account = spec.service_account or "default"
            workloads.append((entry.name, entry.namespace, spec.address, labels, account))
    out: list[SimulatedProxy] = []
    served: set[int] = set()
    for name, namespace, ip, labels, account in workloads:
        matched = [i for i, (_, sel) in enumerate(selectors) if selector_matches(sel, labels)]
        served.update(matched)
        kind = "router" if matched else "sidecar"
        out.append(
            SimulatedProxy(kind, ip, name, namespace, tuple(sorted(labels.items())), account)
        )
    seen = {p.short for p in out}
    for index, (namespace, selector) in enumerate(selectors):
        if index in served:
            continue
        name = selector.get("istio") or selector.get("app") or "gateway"
        proxy = SimulatedProxy(
            "router", GATEWAY_IP, name, namespace, tuple(sorted(selector.items())), "default"
        )
        if proxy.short not in seen:
            seen.add(proxy.short)
            out.append(proxy)
    return sorted(out, key=lambda p: p.node_id)


def select(proxies: Sequence[SimulatedProxy], wanted: Sequence[str]) -> list[SimulatedProxy]:
    """The proxies named NAME.NS in `wanted` (all when empty)."""
    if not wanted:
        return list(proxies)
    by_name = {p.short: p for p in proxies}
    unknown = [w for w in wanted if w not in by_name]
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise OfflineError(
            f"--proxy: no simulated proxy {', '.join(unknown)} (the config implies: {known})"
        )
    return [by_name[w] for w in dict.fromkeys(wanted)]


def offline_plan(
    dirs: Sequence[Path],
    change: bytes,
    wanted: Sequence[str] = (),
    mesh: MeshConfig | None = None,
    resources: bool = False,
) -> dict[str, Any]:
    """The plan of `change` against the directories, for their simulated proxies."""
    mesh = mesh or MeshConfig()
    env = Environment(load_dir(dirs), mesh, DOMAIN_SUFFIX)
    inputs = env.push_inputs()
    live = PushContext.build(inputs)
    proxies = select(simulated_proxies(inputs.configs), wanted)
    defaults = default_generators()
    targets = []
    for simulated in proxies:
        try:
            proxy = simulated.proxy(mesh.trust_domain)
        except InvalidNodeError as error:
            raise OfflineError(f"proxy {simulated.short}: {error}") from None
        targets.append(PlanTarget(proxy, generators_for(proxy, defaults)))
    report = plan_json(change, targets, live, inputs, resources=resources)
    return {**report, "simulated": True, "simulatedProxies": [p.node_id for p in proxies]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pilot.plan", description=__doc__)
    parser.add_argument("--config-dir", action="append", type=Path, required=True)
    parser.add_argument("-f", "--filename", default="-", help="the change file ('-': stdin)")
    parser.add_argument("--proxy", action="append", default=[], metavar="NAME.NS")
    parser.add_argument("--mesh-config", type=Path, help="Istio MeshConfig YAML")
    parser.add_argument("--resources", action="store_true", help="each class's resources after")
    args = parser.parse_args(argv)
    # The loader logs each rejected document; here they are the error message instead.
    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    try:
        if args.filename == "-":
            change = sys.stdin.buffer.read(MAX_CHANGE_BYTES + 1)
        else:
            change = Path(args.filename).read_bytes()
        if len(change) > MAX_CHANGE_BYTES:
            raise OfflineError("the change file is too large")
        mesh = load_mesh_config(args.mesh_config) if args.mesh_config else None
        report = offline_plan(args.config_dir, change, args.proxy, mesh, args.resources)
    except (OfflineError, OSError, ValueError, ConfigError) as error:
        print(error, file=sys.stderr)
        return 1
    json.dump(report, sys.stdout)
    return 0
