"""/metrics text: Istio's counter names (no `_total`), everything else as Prometheus writes it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from pkg.monitoring import exposition


def test_counters_are_named_as_istio_exports_them() -> None:
    registry = CollectorRegistry()
    pushes = Counter("pilot_xds_pushes", "Pushes.", ["type"], registry=registry)
    pushes.labels(type="cds").inc(3)
    text = exposition(registry).decode()
    assert "# TYPE pilot_xds_pushes counter" in text
    assert 'pilot_xds_pushes{type="cds"} 3\n' in text
    assert "_total" not in text and "_created" not in text


def test_gauges_histograms_and_escaping_stay_prometheus_text() -> None:
    registry = CollectorRegistry()
    Gauge("pilot_xds", "Connected.", ["version"], registry=registry).labels(
        version='1.28 "x"\\y'
    ).set(2)
    latency = Histogram("pilot_proxy_convergence_time", "Delay.", buckets=(0.1, 1.0),
                        registry=registry)  # fmt: skip
    latency.observe(0.5)
    text = exposition(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["pilot_xds"].samples[0].labels == {"version": '1.28 "x"\\y'}
    assert families["pilot_xds"].samples[0].value == 2
    buckets = {
        s.labels["le"]: s.value
        for s in families["pilot_proxy_convergence_time"].samples
        if s.name.endswith("_bucket")
    }
    assert buckets == {"0.1": 0, "1.0": 1, "+Inf": 1}
    assert "pilot_proxy_convergence_time_count 1" in text
