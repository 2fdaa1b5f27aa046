from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from navarch.durations import DurationError, format_go_duration, parse_go_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", timedelta(minutes=5)), ("30s", timedelta(seconds=30)),
        ("1h30m", timedelta(hours=1, minutes=30)), ("250ms", timedelta(milliseconds=250)),
        ("1.5h", timedelta(hours=1.5)), ("2h45m10s", timedelta(hours=2, minutes=45, seconds=10)),
        ("0", timedelta(0)), ("-5s", timedelta(seconds=-5)), ("100us", timedelta(microseconds=100)),
        ("1µs", timedelta(microseconds=1)), (".5s", timedelta(milliseconds=500)),
    ],
)
def test_parses_go_durations(text, expected):
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "5 m", "m", "5d", "1h-5m", "abc", "5mm"])
def test_rejects_non_durations(text):
    with pytest.raises(DurationError):
        parse_go_duration(text)


@given(st.integers(min_value=0, max_value=10**12))
def test_format_round_trips(micros):
    value = timedelta(microseconds=micros)
    assert parse_go_duration(format_go_duration(value)) == value


def test_format_is_compact():
    assert format_go_duration(timedelta(minutes=5)) == "5m"
    assert format_go_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_go_duration(timedelta(milliseconds=250)) == "250ms"
    assert format_go_duration(timedelta(0)) == "0s"
