"""The table form of `istioctl x trace`: a summary of the change's reach, one row per proxy
(PROXY STATUS PUSH TYPES ACKED AT), then Envoy's messages for the NACKs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_HEADER = ("PROXY", "STATUS", "PUSH", "TYPES", "ACKED AT")


def _version(version: Any) -> str:
    if not isinstance(version, dict):
        return "unknown version"
    if version.get("deleted") and not version.get("resourceVersion"):
        return "no version (the object is not served)"
    text = f"resourceVersion {version.get('resourceVersion') or '-'}"
    return f"{text}, generation {version.get('generation', 0)}"


def _proxies(count: int) -> str:
    return f"{count} proxy" if count == 1 else f"{count} proxies"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.3f}s"


def _table(rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell plus three spaces, as istioctl's tabwriter."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _verdict(report: dict[str, Any]) -> str:
    summary = report["summary"]
    if summary.get("nacked"):
        return f"REJECTED by {_proxies(summary['nacked'])}"
    if summary.get("reverted"):
        return f"REVERTED: {_proxies(summary['reverted'])} given an older version back"
    if not report.get("converged"):
        waiting = summary.get("pending", 0) + summary.get("queued", 0)
        return f"PROPAGATING: {_proxies(waiting)} not there yet"
    return "LIVE on every proxy it concerns"


def render_table(report: dict[str, Any]) -> str:
    summary = report["summary"]
    title = f"{report['kind']} {report['namespace']}/{report['name']}"
    change = report.get("change") or "seen"
    when = report.get("eventTime") or "an unknown time"
    deleted = " (deleted)" if report.get("deleted") else ""
    lines = [f"{title}: {_version(report.get('version'))}{deleted}, {change} at {when}"]
    pushes = report.get("pushes") or []
    current = [p["id"] for p in pushes if p.get("current")]
    if current:
        lines.append(f"Pushes: {len(current)} carried it ({', '.join(current)})")
    else:
        lines.append("Pushes: none has carried this version yet")
    served = report.get("lastPushedVersion")
    if pushes and not pushes[0].get("current") and served:
        lines.append(f"Since pushed instead: {_version(served)}")
    lines.append(
        f"Pushed to {_proxies(summary['pushed'])}: ACKed by {summary['acked']}, NACKed by "
        f"{summary['nacked']}, pending {summary['pending']}; up to date {summary['upToDate']}, "
        f"not concerned {summary['notConcerned']}, queued {summary['queued']}"
        + (f", reverted {summary['reverted']}" if summary.get("reverted") else "")
        + (f", unknown {summary['unknown']}" if summary.get("unknown") else "")
        + f" (of {summary['proxies']} connected"
        + (f"; {summary['connectedLater']} connected later" if summary["connectedLater"] else "")
        + ")"
    )
    took = report.get("eventToLastAckSeconds")
    if took is not None:
        lines.append(f"Event to last ACK: {_duration(float(took))} ({report['lastAckTime']})")
    lines.append(_verdict(report))
    out = "\n".join(lines) + "\n"
    proxies = report.get("proxies") or []
    if proxies:
        rows = [_HEADER]
        for proxy in proxies:
            rows.append(
                (
                    proxy["proxy"],
                    proxy["status"],
                    proxy.get("push") or "-",
                    ",".join(proxy.get("types") or []) or "-",
                    proxy.get("ackedAt") or "-",
                )
            )
        out += "\n" + _table(rows)
    nacks = [p for p in proxies if p.get("nack")]
    if nacks:
        out += "\nNACKs:\n"
        for proxy in nacks:
            nack = proxy["nack"]
            out += f"  {proxy['proxy']} {nack['type']} (nonce {nack['nonce']}): {nack['message']}\n"
    return out
