"""The collector every validator writes to: errors and warnings, each with a field path."""

from __future__ import annotations

from collections.abc import Iterable

from pkg.config.model import Meta


class Report:
    """Errors and warnings of one object, as `(path, reason)` pairs, plus the object's `Meta`.

    Paths are written as in Kubernetes errors: `spec.http[0].route[1].weight`, with map entries
    as `spec.portLevelMtls[80]`.
    """

    __slots__ = ("errors", "meta", "warnings")

    def __init__(self, meta: Meta) -> None:
        self.meta = meta
        self.errors: list[tuple[str, str]] = []
        self.warnings: list[tuple[str, str]] = []

    def error(self, path: str, reason: str | None) -> None:
        """Record `reason` at `path`; a None reason (a check that passed) is ignored."""
        if reason is not None:
            self.errors.append((path, reason))

    def errors_at(self, path: str, reasons: Iterable[str]) -> None:
        for reason in reasons:
            self.errors.append((path, reason))

    def warn(self, path: str, reason: str | None) -> None:
        if reason is not None:
            self.warnings.append((path, reason))

    @property
    def namespace(self) -> str:
        return self.meta.namespace
