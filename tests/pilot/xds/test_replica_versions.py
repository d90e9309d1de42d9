"""Equal config gives equal resource versions in every istiod process: what lets a proxy move
to another replica (or a restarted istiod) and be sent nothing.

Each replica builds its resources on its own, in its own Python process, with its own hash
seed (PYTHONHASHSEED randomizes set and dict-of-set iteration order). Versions are content
hashes of the serialized resources, so any ordering that leaks from a set into a resource (or
any serialization that is not deterministic) would give a moved proxy different versions and
a full resend. Here three processes with different hash seeds build every proxy's CDS, EDS,
LDS and RDS from the same Bookinfo config (Istio's samples: Services, Deployments, an
ingress Gateway, DestinationRules with subsets and mTLS, weighted, fault-injecting and
delaying VirtualServices, an egress ServiceEntry, plus WorkloadEntries for inbound views)
and must agree on every name and version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pilot.model.proxy_view import proxy_view
from pilot.model.push_context import PushContext, PushInputs
from pilot.render import load_configs, roles
from pilot.serviceregistry.aggregate import build_registry
from pilot.xds.generators import default_generators, generators_for
from pkg.config.mesh import mesh_config_from_dict
from pkg.xds import typeurls

REPO = Path(__file__).resolve().parents[3]
BOOKINFO = REPO.parent / "shared" / "conformance" / "bookinfo"
FILES = (
    "platform/bookinfo.yaml",
    "networking/bookinfo-gateway.yaml",
    "networking/destination-rule-all-mtls.yaml",
    "networking/virtual-service-reviews-80-20.yaml",
    "networking/fault-injection-details-v1.yaml",
    "networking/virtual-service-ratings-test-delay.yaml",
    "networking/egress-rule-google-apis.yaml",
)
WORKLOADS = """
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec:
  address: 127.0.40.1
  labels: {app: reviews, version: v1}
  serviceAccount: bookinfo-reviews
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage-v1, namespace: default}
spec:
  address: 127.0.40.2
  labels: {app: productpage, version: v1}
  serviceAccount: bookinfo-productpage
"""
TYPES = (typeurls.CLUSTER, typeurls.ENDPOINT, typeurls.LISTENER, typeurls.ROUTE)


def versions(paths: list[Path]) -> dict[str, dict[str, dict[str, str]]]:
    """proxy id → type URL → resource name → version, for the representative proxies of the
    files (pilot/render.py's), each asking for everything (wildcard)."""
    configs = load_configs(paths, "default")
    mesh = mesh_config_from_dict(None)
    registry = build_registry(configs, "cluster.local", mesh.trust_domain)
    push = PushContext.build(
        PushInputs(
            configs=configs,
            services=registry.services,
            endpoints=registry.endpoint_index(),
            mesh=mesh,
            domain_suffix="cluster.local",
        )
    )
    defaults = default_generators()
    out: dict[str, dict[str, dict[str, str]]] = {}
    for role in roles(configs, "default"):
        view = proxy_view(role.proxy(mesh.trust_domain), push)
        generators = generators_for(view.proxy, defaults)
        per_type: dict[str, dict[str, str]] = {}
        for type_url in TYPES:
            names = None
            if type_url == typeurls.ENDPOINT:
                names = frozenset(per_type[typeurls.CLUSTER])
            elif type_url == typeurls.ROUTE:
                names = frozenset(_route_names(generators, view))
            built = generators[type_url].generate(view, names)
            per_type[type_url] = {r.name: r.version for r in built}
        out[role.node_id] = per_type
    return out


def _route_names(generators: Any, view: Any) -> set[str]:
    """The route configurations the listeners name (by `rds.route_config_name`)."""
    names: set[str] = set()
    for listener in generators[typeurls.LISTENER].generate(view, None):
        text = json.dumps(_dict(listener.unpack()))
        for part in text.split('"routeConfigName": "')[1:]:
            names.add(part.split('"', 1)[0])
    return names


def _dict(message: Any) -> dict[str, Any]:
    from google.protobuf import json_format

    return dict(json_format.MessageToDict(message))


def _paths(tmp_path: Path) -> list[Path]:
    workloads = tmp_path / "workloads.yaml"
    workloads.write_text(WORKLOADS)
    return [BOOKINFO / f for f in FILES] + [workloads]


def _in_process_with_seed(paths: list[Path], seed: str) -> Any:
    code = (
        "import json, sys; from pathlib import Path;"
        "from tests.pilot.xds.test_replica_versions import versions;"
        "json.dump(versions([Path(p) for p in sys.argv[1:]]), sys.stdout)"
    )
    env = {**os.environ, "PYTHONHASHSEED": seed}
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_every_process_builds_the_same_versions(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    first = _in_process_with_seed(paths, "1")
    # The config is rich enough to mean something: sidecars (with inbound) and a gateway,
    # each with clusters, load assignments, listeners and routes.
    assert any(node.startswith("router~") for node in first), list(first)
    assert sum(node.startswith("sidecar~") for node in first) >= 3, list(first)
    for node, per_type in first.items():
        assert all(per_type[t] for t in TYPES), (node, {t: len(v) for t, v in per_type.items()})
    for seed in ("2", "12345"):
        other = _in_process_with_seed(paths, seed)
        assert other.keys() == first.keys()
        for node in first:
            for type_url in TYPES:
                assert other[node][type_url] == first[node][type_url], (
                    f"PYTHONHASHSEED={seed}: {node} {typeurls.short_name(type_url)} differs: "
                    + str(
                        {
                            n: (v, other[node][type_url].get(n))
                            for n, v in first[node][type_url].items()
                            if other[node][type_url].get(n) != v
                        }
                    )
                )
