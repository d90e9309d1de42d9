"""Run the analyzers on YAML text; results as Istio's message strings or (code, name) pairs."""

from __future__ import annotations

from pkg.analysis.analyzers import ALL, Analyzer
from pkg.analysis.inputs import AnalysisInput
from pkg.analysis.loader import load_text, merge
from pkg.analysis.messages import Message
from pkg.analysis.runner import analyze

FILE = "mesh.yaml"


def messages(
    *docs: str, analyzers: tuple[Analyzer, ...] = ALL, namespace: str | None = None
) -> list[Message]:
    loaded = merge(
        load_text(doc, f"f{i}.yaml" if i else FILE, "default") for i, doc in enumerate(docs)
    )
    return list(analyze(AnalysisInput(loaded), namespace=namespace, analyzers=analyzers).messages)


def lines(*docs: str, **kwargs: object) -> list[str]:
    return [str(m) for m in messages(*docs, **kwargs)]  # type: ignore[arg-type]


def codes(*docs: str, **kwargs: object) -> list[tuple[str, str]]:
    """(code, "<Kind> <ns>/<name>") of every message."""
    out = []
    for m in messages(*docs, **kwargs):  # type: ignore[arg-type]
        out.append((m.type.code, m.resource.friendly_name if m.resource else ""))
    return out


SERVICES = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}, {name: grpc, port: 9090}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 127.0.0.10, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: default}
spec: {address: 127.0.0.11, labels: {app: ratings, version: v1}}
"""
