"""Every analyzer, in one registry (`ALL`), one module per family."""

from __future__ import annotations

from pkg.analysis.analyzers import (
    authz,
    destinationrule,
    rejected,
    schema,
    selectors,
    virtualservice,
)
from pkg.analysis.analyzers.base import Analyzer

ALL: tuple[Analyzer, ...] = (
    *authz.ANALYZERS,
    *destinationrule.ANALYZERS,
    *rejected.ANALYZERS,
    *schema.ANALYZERS,
    *selectors.ANALYZERS,
    *virtualservice.ANALYZERS,
)

__all__ = ["ALL", "Analyzer"]
