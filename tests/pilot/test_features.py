"""Istio's env knobs, read with Istio's names and formats."""

from __future__ import annotations

import pytest

from pilot.features import Features, from_env
from pkg.errors import ConfigError


def test_defaults() -> None:
    features = from_env({})
    assert features == Features(0.1, 10.0, True, 0)
    assert features.effective_push_throttle >= 20


def test_go_durations_and_booleans() -> None:
    features = from_env(
        {
            "PILOT_DEBOUNCE_AFTER": "250ms",
            "PILOT_DEBOUNCE_MAX": "1m",
            "PILOT_ENABLE_EDS_DEBOUNCE": "false",
            "PILOT_PUSH_THROTTLE": "7",
        }
    )
    assert features.debounce_after == pytest.approx(0.25)
    assert features.debounce_max == pytest.approx(60.0)
    assert not features.enable_eds_debounce
    assert features.effective_push_throttle == 7


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PILOT_DEBOUNCE_AFTER", "soon"),
        ("PILOT_ENABLE_EDS_DEBOUNCE", "maybe"),
        ("PILOT_PUSH_THROTTLE", "-1"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        from_env({name: value})
