"""istiod's side of `istioctl x plan`: a change file in, the plan as JSON out.

The change goes into a copy: the inputs of the live snapshot (`PushInputs`: the objects istiod
serves, the mesh config, JWKS, pods) are copied with the change applied, the service registry
is rebuilt from the copy, and a new PushContext is built from it. The live store, the live
PushContext and the connected proxies are never touched; nothing is pushed.

The answer (`plan_json`):
    {"valid": bool, "errors": [...], "warnings": [...], "changed": bool,
     "objects": ["Kind/ns/name", ...], "deleted": [...], "proxies": N, "classes": [...],
     "generatorRuns": N, "skipped": [{"proxy", "reason"}], "analysis": [message, ...]}
`analysis` holds the findings of pkg/analysis on the resulting config that the current config
does not already have (Istio's message JSON: code, level, origin, message).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from pilot.model.push_context import PushContext, PushInputs
from pilot.plan.change import Change, apply_change, parse_change
from pilot.plan.compute import PlanTarget, compute_plan
from pilot.serviceregistry.aggregate import build_registry
from pkg.analysis.inputs import AnalysisInput
from pkg.analysis.loader import load_objects
from pkg.analysis.runner import analyze
from pkg.config.model import Config, Kind
from pkg.config.schema import OBSERVED_KINDS

MAX_CHANGE_BYTES = 4 * 1024 * 1024


def planned_inputs(
    inputs: PushInputs,
    change: Change,
    *,
    require_pods: bool = False,
    send_unhealthy: bool = False,
) -> PushInputs:
    """The inputs of the snapshot istiod would build once the change is applied."""
    configs = apply_change(inputs.configs, change)
    registry = build_registry(
        configs,
        inputs.domain_suffix,
        inputs.mesh.trust_domain,
        require_pods=require_pods,
        send_unhealthy=send_unhealthy,
    )
    pods_by_ip, pods_by_name = registry.pods.workloads()
    return dataclasses.replace(
        inputs,
        configs=configs,
        services=registry.services,
        endpoints=registry.endpoint_index(),
        pods_by_ip=pods_by_ip,
        pods_by_name=pods_by_name,
    )


def new_findings(
    before: Mapping[Kind, tuple[Config[Any], ...]],
    after: Mapping[Kind, tuple[Config[Any], ...]],
    inputs: PushInputs,
) -> list[dict[str, Any]]:
    """Analysis findings of `after` that `before` does not have."""

    def run(configs: Mapping[Kind, tuple[Config[Any], ...]]) -> dict[str, dict[str, Any]]:
        objects = [
            dict(c.raw) for kind, cs in configs.items() if kind not in OBSERVED_KINDS for c in cs
        ]
        result = analyze(AnalysisInput(load_objects(objects), inputs.mesh), namespace=None)
        return {str(m): m.as_dict() for m in result.messages}

    old = run(before)
    return [message for text, message in run(after).items() if text not in old]


def plan_json(
    data: bytes,
    targets: Sequence[PlanTarget],
    live: PushContext,
    inputs: PushInputs,
    *,
    require_pods: bool = False,
    send_unhealthy: bool = False,
    resources: bool = False,
) -> dict[str, Any]:
    """The plan of the change in `data` for `targets`, against the live snapshot `live` built
    from `inputs`. `resources`: also each class's resources after the change (for Envoy)."""
    change = parse_change(data, "change")
    out: dict[str, Any] = {
        "valid": change.valid,
        "errors": list(change.errors),
        "warnings": list(change.warnings),
        "objects": [str(c.key) for c in change.upserts],
        "deleted": [str(k) for k in change.deletes],
    }
    if not change.valid:
        return {**out, "changed": False, "proxies": 0, "classes": [], "generatorRuns": 0}
    after_inputs = planned_inputs(
        inputs, change, require_pods=require_pods, send_unhealthy=send_unhealthy
    )
    after = PushContext.build(after_inputs, version=f"{live.version}+plan")
    plan = compute_plan(targets, live, after)
    return {
        **out,
        "changed": plan.changed,
        "proxies": sum(len(c.proxies) for c in plan.classes),
        "generatorRuns": plan.generator_runs,
        "classes": [c.as_json(resources) for c in plan.classes],
        "skipped": [{"proxy": p, "reason": why} for p, why in plan.skipped],
        "analysis": new_findings(inputs.configs, after_inputs.configs, inputs),
    }
