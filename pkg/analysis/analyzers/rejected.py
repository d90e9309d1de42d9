"""`pyistio.RejectedByProxyAnalyzer`: objects whose generated configuration a proxy NACKed.

Istio has no such message; pyistio's PYI0001 RejectedByProxy (Error) names the proxy and
quotes Envoy's error. The rejections come from istiod (`/debug/configz`, see
`pkg.analysis.configz`), so this fires only when analyzing a running istiod.
"""

from __future__ import annotations

from collections.abc import Iterator

from pkg.analysis import messages as m
from pkg.analysis.analyzers.base import Analyzer, message
from pkg.analysis.inputs import AnalysisInput
from pkg.analysis.messages import Message
from pkg.xds import typeurls


def analyze_rejections(inp: AnalysisInput) -> Iterator[Message]:
    for r in inp.resources:
        for rejection in r.rejections:
            serving = (
                f"its last accepted version {rejection.serving}"
                if rejection.serving
                else "nothing (it has no accepted version)"
            )
            kind = typeurls.short_name(rejection.type_url) if rejection.type_url else "xDS"
            yield message(m.REJECTED_BY_PROXY, r, rejection.proxy, kind, rejection.message, serving)


ANALYZERS = (
    Analyzer(
        "pyistio.RejectedByProxyAnalyzer",
        "Reports resources whose generated configuration a proxy rejected (NACK)",
        analyze_rejections,
    ),
)
