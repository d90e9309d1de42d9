"""The benchmark harness at a tiny size: it runs, every proxy converges, and an endpoint-only
change sends EDS only. Figures are not asserted (CI machines vary); sanity is."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks import render
from benchmarks.adsclient import client_specs
from benchmarks.adsparse import listener_route_names
from benchmarks.report import report
from benchmarks.results import RunResult, quantiles
from benchmarks.scenario import Options, go_duration, run

PROXIES = 5


def test_render_trims_and_expands() -> None:
    source = (
        "head\n---\n{{- range $i := until .Services }}\nname: s-{{$i}} {{div $i 2 }}"
        "/{{mod $i $.Services}}/{{ .Instances }}\n---\n{{- end }}"
    )
    assert render.render(source, 3, 7) == (
        "head\n---\nname: s-0 0/0/7\n---\nname: s-1 0/1/7\n---\nname: s-2 1/2/7\n---"
    )
    with pytest.raises(render.TemplateError):
        render.render("{{ if .Services }}x{{ end }}", 1)
    with pytest.raises(render.TemplateError):
        render.render("{{ range $i := until .Services }}x", 1)


@pytest.mark.parametrize("template", render.templates(), ids=lambda p: p.stem)
def test_every_template_renders_to_yaml(template: Path) -> None:
    text = render.render(template.read_text(), 3)
    assert "{{" not in text
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs
    assert all(isinstance(d, dict) and d.get("kind") for d in docs)


# One istiod start per template (~0.5 s of CPU each), so CI loads a representative few: the
# benchmark's own config, a Kubernetes Service source, WorkloadEntry endpoints and a Gateway.
# Every template renders above; `render.py --services 10 --check` loads all 17 into istiod.
ISTIOD_SUBSET = ("virtualservice", "externalname", "serviceentry-workloadentry", "gateways")


def test_istiod_accepts_templates() -> None:
    results = render.check_all([render.resolve_template(t) for t in ISTIOD_SUBSET], services=3)
    bad = [r for r in results if not r.ok]
    assert not bad, bad
    by_name = {r.template: r for r in results}
    assert set(by_name) == {f"{t}.yaml" for t in ISTIOD_SUBSET}
    assert by_name["virtualservice.yaml"].services == 4  # 3 + proxy-service-instance


def test_helpers() -> None:
    assert go_duration("100ms") == pytest.approx(0.1)
    assert go_duration("1m30s") == pytest.approx(90)
    q = quantiles([0.001 * i for i in range(1, 101)])
    assert (q["p50"], q["p99"], q["max"]) == (50.0, 99.0, 100.0)
    specs = client_specs(300, label_groups=2)
    assert len({s.ip for s in specs}) == 300
    assert specs[299].node_id == "sidecar~127.100.1.50~bench-299.default~default.svc.cluster.local"
    assert {s.app for s in specs} == {"bench-0", "bench-1"}
    assert listener_route_names(b"") == ()


@pytest.mark.parametrize("api", ["sotw", "delta"])
def test_xds_push_smoke(api: str, tmp_path: Path) -> None:
    result: RunResult = run(
        Options(
            services=10,
            proxies=PROXIES,
            api=api,
            workers=2,
            timeout=60,
            phase_timeout=15,
            idle_window=0.2,
            env={"PILOT_DEBOUNCE_AFTER": "20ms"},
            workdir=tmp_path,
            quiet=True,
        )
    )
    text = report(result)
    assert result.ok, text
    assert result.services == 12  # 10 + proxy-service-instance + bench-target
    assert result.istiod_problems == []
    assert result.client_errors == []
    assert result.istiod_exit_code == 0
    assert result.server_side_synced == PROXIES  # istiod saw every ACK (/debug/syncz)

    initial = result.initial
    assert initial.converged == PROXIES
    assert initial.responses_by_type == {t: PROXIES for t in ("CDS", "EDS", "LDS", "RDS")}
    assert initial.convergence_ms["n"] == PROXIES
    assert initial.bytes_per_proxy["median"] > 0

    changes = {p.name: p for p in result.changes}
    assert set(changes) == {"route", "cluster", "endpoint"}
    for phase in changes.values():
        assert phase.converged == PROXIES, text
        assert phase.not_converged == []
        p50, p99 = phase.convergence_ms["p50"], phase.convergence_ms["p99"]
        assert p50 is not None and p99 is not None and 0 < p50 <= p99, text
        assert phase.debounce_end_ms is not None and phase.debounce_end_ms > 0
        assert phase.debounce_source.startswith("istiod log")

    # An endpoint-only change sends EDS only, one (changed) resource per proxy.
    assert changes["endpoint"].responses_by_type == {"EDS": PROXIES}, text
    assert changes["endpoint"].resources_by_type == {"EDS": PROXIES}, text
    # The VirtualService edit changes every proxy's routes, and nothing else.
    assert changes["route"].responses_by_type == {"RDS": PROXIES}, text
    # The DestinationRule edit changes one cluster, whose endpoints are re-sent (warming).
    assert changes["cluster"].responses_by_type.get("CDS") == PROXIES, text
    assert set(changes["cluster"].responses_by_type) <= {"CDS", "EDS"}, text

    # Up-to-date proxies that come back on new streams (as after an istiod restart) are sent
    # nothing, SotW and Delta alike.
    reconnect = result.reconnect
    assert reconnect.converged == PROXIES, text
    assert reconnect.responses_by_type == {}, text
    assert reconnect.bytes_per_proxy["total"] == 0, text

    # SotW: the same clients against the floor server, both modes, every phase reached all.
    if api == "sotw":
        assert set(result.floor) == {"stream", "shared"}, text
        for phases in result.floor.values():
            names = [p.name for p in phases]
            assert names == ["floor-initial", "floor-route", "floor-cluster", "floor-endpoint"]
            assert all(p.converged == PROXIES for p in phases), text
        assert "istiod / floor CPU per proxy" in text
    else:
        assert result.floor == {}
