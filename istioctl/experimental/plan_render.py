"""The text form of a plan (istiod's /debug/plan JSON, see pilot/plan/planner.py).

    Plan: VirtualService/default/reviews
    25 proxies in 2 classes (20 generator runs)

    Class 1: 24 proxies: productpage-0.default, productpage-1.default, ... (+19 more)
      CDS  no change
      RDS  1 changed (+4 bytes)
        ~ 9080
      push: full; size change +4 bytes
      --- a/RDS/9080
      +++ b/RDS/9080
      ...

    Class 2: 1 proxy: reviews-v1.default: no change

    Analysis: no new findings

Markers as Terraform's: + added, - removed, ~ changed.
"""

from __future__ import annotations

from typing import Any

SHOWN_NAMES = 5
_MARK = {"added": "+", "removed": "-", "changed": "~"}


def _signed(value: int) -> str:
    return f"{value:+d} bytes"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _proxies(cls: dict[str, Any]) -> str:
    names = list(cls.get("proxies", ()))
    count = int(cls.get("count", len(names)))
    head = ", ".join(names[:SHOWN_NAMES])
    more = f", ... (+{count - SHOWN_NAMES} more)" if count > SHOWN_NAMES else ""
    return f"{_count(count, 'proxy', 'proxies')}: {head}{more}"


def _type_line(t: dict[str, Any]) -> str:
    parts = [f"{len(t[key])} {key}" for key in ("added", "removed", "changed") if t.get(key)]
    if not parts:
        return f"  {t['type']:<4} no change"
    return f"  {t['type']:<4} {', '.join(parts)} ({_signed(int(t.get('sizeChange', 0)))})"


def render_class(index: int, cls: dict[str, Any], brief: bool) -> list[str]:
    title = f"Class {index}: {_proxies(cls)}"
    if not cls.get("changed"):
        return [f"{title}: no change"]
    lines = [title]
    diffs: list[str] = []
    for t in cls.get("types", ()):
        lines.append(_type_line(t))
        for resource in t.get("resources", ()):
            lines.append(f"    {_MARK.get(resource['change'], '?')} {resource['name']}")
            if not brief and resource.get("diff"):
                diffs.extend("  " + line for line in resource["diff"].splitlines())
    push = "endpoint-only (EDS)" if cls.get("endpointOnly") else "full"
    lines.append(f"  push: {push}; size change {_signed(int(cls.get('sizeChange', 0)))}")
    verdict = cls.get("envoy")
    if isinstance(verdict, dict):
        if verdict.get("accepted"):
            lines.append("  envoy: accepts the resulting configuration")
        else:
            lines.extend(f"  envoy: {line}" for line in verdict.get("rejections", ()))
    return lines + diffs


def render_text(report: dict[str, Any], brief: bool = False) -> str:
    objects = [*report.get("objects", ()), *(f"{d} (deleted)" for d in report.get("deleted", ()))]
    classes = report.get("classes", ())
    lines = [
        f"Plan: {', '.join(objects) or '(no objects)'}",
        f"{_count(int(report.get('proxies', 0)), 'proxy', 'proxies')} in "
        f"{_count(len(classes), 'class', 'classes')} "
        f"({report.get('generatorRuns', 0)} generator runs)",
    ]
    if report.get("simulated"):
        lines.append(
            "Proxies: simulated from the config directory (offline, no istiod; "
            "one per WorkloadEntry and Gateway)"
        )
    for warning in report.get("warnings", ()):
        lines.append(f"Warning: {warning}")
    for proxy in report.get("skipped", ()):
        lines.append(f"Not planned: {proxy['proxy']}: {proxy['reason']}")
    for index, cls in enumerate(classes, 1):
        lines.append("")
        lines.extend(render_class(index, cls, brief))
    lines.append("")
    findings = report.get("analysis", ())
    if not findings:
        lines.append("Analysis: no new findings")
    else:
        lines.append("Analysis: new findings")
        for msg in findings:
            origin = f" ({msg['origin']})" if msg.get("origin") else ""
            lines.append(f"  {msg['level']} [{msg['code']}]{origin} {msg['message']}")
    if not report.get("changed"):
        lines.append("No proxy's configuration would change.")
    return "\n".join(lines) + "\n"
