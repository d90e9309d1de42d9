from __future__ import annotations

import pytest

from pkg.config.types import Duration


@pytest.mark.parametrize(
    ("text", "seconds", "nanos"),
    [
        ("1.5s", 1, 500_000_000),
        ("100ms", 0, 100_000_000),
        ("5m", 300, 0),
        ("1h30m", 5400, 0),
        ("1h2m3.25s", 3723, 250_000_000),
        ("300us", 0, 300_000),
        ("2µs", 0, 2_000),
        ("7ns", 0, 7),
        ("0", 0, 0),
        ("0s", 0, 0),
        ("+3s", 3, 0),
        ("-2.5s", -2, -500_000_000),
        (".5s", 0, 500_000_000),
        ("1.s", 1, 0),
    ],
)
def test_parse_go_durations(text: str, seconds: int, nanos: int) -> None:
    assert Duration.parse(text) == Duration(seconds, nanos)


@pytest.mark.parametrize("text", ["", "s", "1", "1.5", "1x", "--1s", "1s2", ".s", "1 s", "-"])
def test_parse_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        Duration.parse(text)


def test_parse_rejects_overflow() -> None:
    with pytest.raises(ValueError, match="out of range"):
        Duration.parse("3000000h")


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (Duration(1, 500_000_000), "1.500s"),
        (Duration(0, 100_000_000), "0.100s"),
        (Duration(300, 0), "300s"),
        (Duration(0, 1_000), "0.000001s"),
        (Duration(0, 1), "0.000000001s"),
        (Duration(-1, -500_000_000), "-1.500s"),
        (Duration(0, 0), "0s"),
    ],
)
def test_str_is_protobuf_json(duration: Duration, text: str) -> None:
    assert str(duration) == text


def test_total_seconds_and_nanoseconds() -> None:
    duration = Duration.parse("1m0.25s")
    assert duration.total_seconds() == 60.25
    assert duration.total_nanoseconds() == 60_250_000_000
    assert Duration.from_seconds(0.1) == Duration(0, 100_000_000)


def test_durations_order_by_length() -> None:
    assert Duration.parse("999ms") < Duration.parse("1s") < Duration.parse("1m")
    assert Duration.parse("-1s") < Duration.parse("0s")
