"""What analysis reads: resources (with where they came from) and workloads.

`Origin` is Istio's file Position plus its field map: the file, the line the document starts
at, and the line of every field (keyed by path as written in the document, e.g.
`spec.gateways[0]`), so a message can point at the offending field. Objects read from a
running istiod have no file, hence no reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pkg.config.model import Config


@dataclass(frozen=True, slots=True)
class Origin:
    source: str = ""  # file path; "" when not from a file
    line: int = 0  # 1-based line where the document starts; 0 when unknown
    field_lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def reference(self, line: int = 0) -> str | None:
        """`file:line` (the field's line when given), just `file` for JSON, else None."""
        if not self.source:
            return None
        if self.source.endswith(".json"):
            return self.source
        shown = line or self.line
        return f"{self.source}:{shown}" if shown > 0 else self.source

    def line_of(self, path: str) -> int:
        """The line of the field at `path` (`spec.http[0].route[1].destination.host`), or of
        its closest ancestor present in the document; 0 when none is known."""
        lines = self.field_lines
        candidate = path
        for _ in range(64):  # bounded: a path has far fewer segments
            if not candidate:
                return 0
            line = lines.get(candidate)
            if line:
                return line
            candidate = _parent(candidate)
        return 0


def _parent(path: str) -> str:
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """Names a resource in messages: Istio's origin FriendlyName plus its Position."""

    kind: str
    namespace: str
    name: str
    origin: Origin = field(default_factory=Origin)

    @property
    def friendly_name(self) -> str:
        """`<Kind> <ns>/<name>`; cluster-scoped objects have no namespace."""
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"

    @property
    def full_name(self) -> str:
        """Istio's resource.FullName string: `ns/name`."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def comparator(self) -> str:
        return f"{self.kind}/{self.name}/{self.namespace}"


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


@dataclass(frozen=True, slots=True)
class Rejection:
    """A proxy NACKed configuration generated from this object (from istiod's configz)."""

    proxy: str  # NAME.NAMESPACE
    message: str  # Envoy's error
    type_url: str = ""
    serving: str = ""  # the version istiod serves instead ("": none)


@dataclass(frozen=True, slots=True)
class Resource:
    """One document. `config` is None when it failed validation (then `errors` say why)."""

    ref: ResourceRef
    config: Config[Any] | None
    errors: tuple[ValidationIssue, ...] = ()
    warnings: tuple[ValidationIssue, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.ref.kind

    @property
    def namespace(self) -> str:
        return self.ref.namespace

    @property
    def name(self) -> str:
        return self.ref.name

    def line_of(self, path: str) -> int:
        return self.ref.origin.line_of(path)


@dataclass(frozen=True, slots=True)
class Workload:
    """Something a selector can select: a Pod, a WorkloadEntry, the pod template of a
    Deployment (or StatefulSet, DaemonSet, ...) or, from a running istiod, a connected proxy."""

    kind: str
    namespace: str
    name: str
    labels: Mapping[str, str]
    in_mesh: bool = True
