"""istioctl's side of the proxy history: `--at`/`--from`/`--to` parsing (errors name the
flag), `x diff`'s per-type comparison of two config dumps and its text, and `x history`'s
table."""

from __future__ import annotations

import datetime

import pytest

from istioctl.experimental import diff, history
from istioctl.proxyconfig.at import At, Dump

ROUTE = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"
CLUSTERS = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"


def dump(routes: dict[str, int], clusters: list[str]) -> dict[str, object]:
    return {
        "configs": [
            {
                "@type": CLUSTERS,
                "dynamicActiveClusters": [
                    {"versionInfo": "x", "cluster": {"name": c, "type": "EDS"}} for c in clusters
                ],
            },
            {
                "@type": ROUTE,
                "dynamicRouteConfigs": [
                    {"versionInfo": str(w), "routeConfig": {"name": n, "weight": w}}
                    for n, w in routes.items()
                ],
            },
        ]
    }


def test_at_takes_versions_durations_and_times() -> None:
    assert At.parse("--at", "now").params == ()
    assert At.parse("--at", "2026-11-22T11:40:00Z/42").params == (
        ("version", "2026-11-22T11:40:00Z/42"),
    )
    assert At.parse("--at", "1h30m").params == (("ago", "5400"),)
    assert At.parse("--at", "10m").params == (("ago", "600"),)
    moment = datetime.datetime(2026, 11, 22, 11, 40, 0, 500000, datetime.UTC).timestamp()
    assert At.parse("--at", "2026-11-22T11:40:00.5Z").params == (("time", f"{moment:.6f}"),)
    with pytest.raises(ValueError, match="--from: expected a time"):
        At.parse("--from", "yesterday")


def test_diff_names_added_removed_and_changed_per_type() -> None:
    before = dump({"80": 100, "90": 1}, ["a", "b"])
    after = dump({"80": 80, "90": 1}, ["a", "c"])
    diffs = diff.diff_dumps(before, after)
    assert diffs["CDS"].added == ["c"] and diffs["CDS"].removed == ["b"]
    assert not diffs["CDS"].changed and not diffs["LDS"]
    assert list(diffs["RDS"].changed) == ["80"]
    assert '-  "weight": 100' in diffs["RDS"].changed["80"]
    assert '+  "weight": 80' in diffs["RDS"].changed["80"]
    text = diff.render("a.default", Dump({}, "V1", "T1"), Dump({}, "V2", "T2"), diffs)
    assert text.splitlines()[:4] == [
        "Proxy a.default: from V1 (T1) to V2 (T2)",
        "CDS: 1 added, 1 removed, 0 changed",
        "+ c",
        "- b",
    ]
    assert "RDS: 0 added, 0 removed, 1 changed\n~ 80\n--- 80 (from)\n+++ 80 (to)" in text
    same = diff.diff_dumps(before, before)
    assert not any(same.values())
    assert "No differences." in diff.render("p", Dump({}, "", ""), Dump({}, "", ""), same)


def test_history_table() -> None:
    text = history.render(
        {
            "name": "a.default",
            "connected": False,
            "disconnectedAt": "2026-11-22T11:41:00.000000Z",
            "dropped": 2,
            "snapshots": [
                {
                    "version": "2026-11-22T11:40:00Z/7",
                    "time": "2026-11-22T11:40:00.100000Z",
                    "reason": "push",
                    "changed": {"CDS": {"added": 1, "removed": 0, "changed": 1}},
                    "configs": ["DestinationRule/default/reviews"],
                }
            ],
        }
    )
    lines = text.splitlines()
    assert lines[0] == (
        "Proxy a.default (disconnected 2026-11-22T11:41:00.000000Z); 2 older snapshots"
        " dropped (PILOT_HISTORY_MAX_BYTES)"
    )
    assert lines[1].split() == history.COLUMNS
    assert lines[2].split() == [
        "2026-11-22T11:40:00Z/7",
        "2026-11-22T11:40:00.100000Z",
        "push",
        "CDS",
        "+1",
        "~1",
        "DestinationRule/default/reviews",
    ]
