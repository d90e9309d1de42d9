"""Read istiod's /metrics text the way Prometheus does (prometheus_client's text parser).

The parser names counter samples `<name>_total` whatever the text said; `Scrape` gives them
back their family name, so tests ask for Istio's names (`pilot_xds_pushes`, not `..._total`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    text: str
    families: Mapping[str, Metric]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        return cls(text, {f.name: f for f in text_string_to_metric_families(text)})

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels` (0 if none):
        `value("pilot_xds_pushes", type="rds")`, `value("pilot_debounce_time_count")`."""
        total = 0.0
        for family in self.families.values():
            for sample in family.samples:
                sample_name = sample.name
                if family.type == "counter" and sample_name == f"{family.name}_total":
                    sample_name = family.name
                if sample_name != name:
                    continue
                if all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def buckets(self, name: str, **labels: str) -> list[str]:
        """The `le` bounds of histogram `name` (first series matching `labels`), in order."""
        seen: list[str] = []
        for sample in self.families[name].samples:
            if not sample.name.endswith("_bucket"):
                continue
            if not all(sample.labels.get(k) == v for k, v in labels.items()):
                continue
            le = sample.labels["le"]
            if le in seen:
                break
            seen.append(le)
        return seen

    def label_values(self, name: str, label: str) -> set[str]:
        family = self.families.get(name)
        if family is None:
            return set()
        return {s.labels[label] for s in family.samples if label in s.labels}
