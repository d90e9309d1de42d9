"""What changed, and why a push happens: the value the debounce merges.

`PushRequest` is frozen; `merge` is pure (Istio's Merge/CopyMerge collapse into one). An empty
`configs_updated` with `forced` means "everything". A request whose keys are all of kind
`Endpoints` is endpoint-only: it rebuilds nothing but the endpoint index and pushes only EDS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

from pkg.config.model import ConfigKey, Kind

if TYPE_CHECKING:
    from pilot.model.push_context import PushContext


class TriggerReason(StrEnum):
    ENDPOINT = "endpoint"
    CONFIG = "config"
    SERVICE = "service"
    PROXY = "proxy"
    GLOBAL = "global"
    UNKNOWN = "unknown"
    DEBUG = "debug"
    SECRET = "secret"
    NAMESPACE = "namespace"
    PROXY_REQUEST = "proxyrequest"


def _freeze_counts(counts: Mapping[TriggerReason, int]) -> Mapping[TriggerReason, int]:
    return MappingProxyType(dict(counts))


@dataclass(frozen=True, slots=True)
class PushRequest:
    configs_updated: frozenset[ConfigKey] = frozenset()
    reasons: Mapping[TriggerReason, int] = field(default_factory=lambda: MappingProxyType({}))
    forced: bool = False
    # Loop time of the first event merged into this request (for convergence metrics).
    start: float = 0.0
    push: PushContext | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        keys: Iterable[ConfigKey],
        reason: TriggerReason,
        *,
        start: float = 0.0,
        forced: bool = False,
    ) -> PushRequest:
        return cls(frozenset(keys), _freeze_counts({reason: 1}), forced, start)

    def merge(self, other: PushRequest | None) -> PushRequest:
        """Union of both: keys unioned, reasons summed, forced OR-ed, the earlier start, the
        newer push context."""
        if other is None:
            return self
        reasons = dict(self.reasons)
        for reason, count in other.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
        starts = [s for s in (self.start, other.start) if s > 0]
        return PushRequest(
            configs_updated=self.configs_updated | other.configs_updated,
            reasons=_freeze_counts(reasons),
            forced=self.forced or other.forced,
            start=min(starts) if starts else 0.0,
            push=other.push if other.push is not None else self.push,
        )

    def with_push(self, push: PushContext) -> PushRequest:
        return PushRequest(self.configs_updated, self.reasons, self.forced, self.start, push)

    @property
    def endpoints_only(self) -> bool:
        return (
            not self.forced
            and bool(self.configs_updated)
            and all(k.kind is Kind.ENDPOINTS for k in self.configs_updated)
        )

    @property
    def credentials_only(self) -> bool:
        """Only istiod-issued credentials changed (a renewed workload certificate, keyed by
        its SPIFFE id, or the trust bundle): config is unchanged, so is the snapshot. Such
        keys are cluster-scoped Secret keys; Secret documents always have a namespace."""
        return (
            not self.forced
            and bool(self.configs_updated)
            and all(k.kind is Kind.SECRET and not k.namespace for k in self.configs_updated)
        )

    def kinds(self) -> frozenset[Kind]:
        return frozenset(k.kind for k in self.configs_updated)

    def has_kind(self, *kinds: Kind) -> bool:
        return any(k.kind in kinds for k in self.configs_updated)

    def only_kinds(self, allowed: frozenset[Kind]) -> bool:
        return all(k.kind in allowed for k in self.configs_updated)
