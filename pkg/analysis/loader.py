"""Documents → what analysis reads: resources, workloads, namespaces and parse problems.

Every document goes through the same parsing and validation as istiod's (`parse_object`); a
document it rejects still becomes a `Resource` (with `config=None` and its errors) so that the
schema analyzer reports it and other analyzers know the object exists. Documents that are not
objects at all (YAML syntax errors, no apiVersion/kind) are parse problems, as in istioctl.
Kinds pyistio does not serve but that carry workloads (Pod, and the pod templates of
Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job and CronJob) become
`Workload`s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pkg.analysis.resource import Origin, Resource, ResourceRef, ValidationIssue, Workload
from pkg.analysis.yamllines import chunk_start, document_nodes, field_lines
from pkg.config.model import Kind
from pkg.config.schema import FieldError, parse_object
from pkg.config.specs.networking import WorkloadEntry
from pkg.config.yamldocs import load_documents

INJECT = "sidecar.istio.io/inject"
# kind → path of the pod template's metadata, for kinds whose pods are workloads.
_TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template", "metadata"),
    "StatefulSet": ("spec", "template", "metadata"),
    "DaemonSet": ("spec", "template", "metadata"),
    "ReplicaSet": ("spec", "template", "metadata"),
    "ReplicationController": ("spec", "template", "metadata"),
    "Job": ("spec", "template", "metadata"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "metadata"),
    "Pod": ("metadata",),
}


@dataclass(frozen=True, slots=True)
class ParseProblem:
    """A document that is not an object istioctl can read (Istio: "Error(s) adding files")."""

    source: str
    index: int
    reason: str

    def __str__(self) -> str:
        return f"error processing {self.source}[{self.index}]: {self.reason}"


@dataclass(frozen=True, slots=True)
class Loaded:
    resources: tuple[Resource, ...] = ()
    workloads: tuple[Workload, ...] = ()
    problems: tuple[ParseProblem, ...] = ()
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def merge(parts: Iterable[Loaded]) -> Loaded:
    """Union in order; a later resource or workload replaces an earlier one of the same
    kind, namespace and name (as Istio's file source: the last document applied wins)."""
    resources: dict[tuple[str, str, str], Resource] = {}
    workloads: dict[tuple[str, str, str], Workload] = {}
    problems: list[ParseProblem] = []
    namespaces: dict[str, Mapping[str, str]] = {}
    for part in parts:
        for r in part.resources:
            resources[(r.kind, r.namespace, r.name)] = r
        for w in part.workloads:
            workloads[(w.kind, w.namespace, w.name)] = w
        problems.extend(part.problems)
        namespaces.update(part.namespace_labels)
    return Loaded(tuple(resources.values()), tuple(workloads.values()), tuple(problems), namespaces)


def load_text(data: bytes | str, source: str, default_namespace: str) -> Loaded:
    """Every document of one YAML/JSON file (or stdin, `source="-"`)."""
    documents = load_documents(data, source)
    text = data.decode("utf-8-sig", "replace") if isinstance(data, bytes) else data
    lines = text.splitlines()
    nodes = {node.start_mark.line + 1: node for node in document_nodes(text)}
    builder = _Builder(default_namespace)
    for doc in documents:
        if doc.error is not None or doc.obj is None:
            builder.problems.append(ParseProblem(source, doc.index, doc.error or "empty"))
            continue
        node = nodes.get(doc.line)
        fields = field_lines(node) if node is not None else {}
        start = chunk_start(lines, doc.line) if doc.line else 0
        items = doc.obj.get("items")
        kind = doc.obj.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
            for i, item in enumerate(items):
                prefix = f"items[{i}]"
                sub = _sub_fields(fields, prefix)
                origin = Origin(source, fields.get(prefix, start), sub)
                builder.add(item, origin, source, doc.index)
            continue
        builder.add(doc.obj, Origin(source, start, fields), source, doc.index)
    return builder.build()


def load_objects(objects: Iterable[object], default_namespace: str = "default") -> Loaded:
    """Objects already decoded (istiod's /debug/configz): no file, so no references."""
    builder = _Builder(default_namespace)
    for index, obj in enumerate(objects):
        builder.add(obj, Origin(), "configz", index)
    return builder.build()


def _sub_fields(fields: Mapping[str, int], prefix: str) -> dict[str, int]:
    head = prefix + "."
    return {k[len(head) :]: v for k, v in fields.items() if k.startswith(head)}


class _Builder:
    def __init__(self, default_namespace: str) -> None:
        self.default_namespace = default_namespace
        self.resources: list[Resource] = []
        self.workloads: list[Workload] = []
        self.problems: list[ParseProblem] = []
        self.namespaces: dict[str, Mapping[str, str]] = {}

    def build(self) -> Loaded:
        return merge(
            [
                Loaded(
                    tuple(self.resources),
                    tuple(self.workloads),
                    tuple(self.problems),
                    self.namespaces,
                )
            ]
        )

    def add(self, obj: object, origin: Origin, source: str, index: int) -> None:
        problem = _not_an_object(obj)
        if problem:
            self.problems.append(ParseProblem(source, index, problem))
            return
        parsed = parse_object(obj, default_namespace=self.default_namespace)
        if parsed.ignored:
            workload = _controller_workload(obj, self.default_namespace)
            if workload is not None:
                self.workloads.append(workload)
            return
        config = parsed.config
        if config is not None:
            ref = ResourceRef(config.meta.kind.value, config.namespace, config.name, origin)
            annotations = config.meta.annotations
        else:
            first = parsed.errors[0]
            ref = ResourceRef(first.kind, first.namespace, first.name, origin)
            annotations = _raw_annotations(obj)
        self.resources.append(
            Resource(
                ref,
                config,
                errors=_issues(parsed.errors),
                warnings=_issues(parsed.warnings),
                annotations=annotations,
            )
        )
        if config is None:
            return
        if config.meta.kind is Kind.NAMESPACE:
            self.namespaces[config.name] = config.meta.labels
        elif config.meta.kind is Kind.WORKLOAD_ENTRY:
            spec: WorkloadEntry = config.spec
            labels = {**config.meta.labels, **spec.labels}
            self.workloads.append(
                Workload(Kind.WORKLOAD_ENTRY.value, config.namespace, config.name, labels)
            )


def _not_an_object(obj: object) -> str:
    """Why `obj` is not a Kubernetes-style object at all ("" when it is one)."""
    if not isinstance(obj, dict):
        return "document is not a mapping"
    missing = [k for k in ("apiVersion", "kind") if not isinstance(obj.get(k), str) or not obj[k]]
    if missing:
        return (
            "unable to parse resource with no group, version and kind ("
            + ", ".join(f"{k} is missing" for k in missing)
            + ")"
        )
    return ""


def _issues(errors: Iterable[FieldError]) -> tuple[ValidationIssue, ...]:
    return tuple(ValidationIssue(e.path, e.reason) for e in errors)


def _raw_annotations(obj: object) -> Mapping[str, str]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(annotations, dict):
        return {}
    return {str(k): str(v) for k, v in annotations.items()}


def _controller_workload(obj: object, default_namespace: str) -> Workload | None:
    """The workload a Pod is, or a controller's pod template describes."""
    if not isinstance(obj, dict):
        return None
    kind = str(obj.get("kind"))
    path = _TEMPLATE_PATHS.get(kind)
    meta = obj.get("metadata")
    if path is None or not isinstance(meta, dict):
        return None
    template: Any = obj
    for key in path:
        template = template.get(key) if isinstance(template, dict) else None
    if not isinstance(template, dict):
        return None
    labels = _str_map(template.get("labels"))
    annotations = _str_map(template.get("annotations"))
    in_mesh = labels.get(INJECT, annotations.get(INJECT, "true")) != "false"
    namespace = meta.get("namespace")
    return Workload(
        kind,
        namespace if isinstance(namespace, str) and namespace else default_namespace,
        str(meta.get("name") or ""),
        labels,
        in_mesh,
    )


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}
