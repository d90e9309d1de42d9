"""Label selectors: an empty or missing selector matches everything, as in Istio."""

from __future__ import annotations

from collections.abc import Mapping


def selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """True when every key of `selector` is in `labels` with the same value."""
    if not selector:
        return True
    return all(labels.get(key) == value for key, value in selector.items())


def is_subset(subset: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """`subset` ⊆ `labels` (used for DestinationRule subset endpoints)."""
    return all(labels.get(key) == value for key, value in subset.items())
