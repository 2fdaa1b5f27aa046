"""Go-style durations (`5m`, `30s`, `1h30m`, `250ms`), as the Go Navarch's YAML used them."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """A string that is not a Go duration."""


def parse_go_duration(text: str) -> timedelta:
    """Parse a duration the way Go's `time.ParseDuration` does.

    Accepts an optional sign and a sequence of decimal numbers each with a unit
    (ns, us/µs, ms, s, m, h); "0" alone is allowed.
    """
    s = text.strip()
    if not s:
        raise DurationError("empty duration")
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return timedelta(0)
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise DurationError(
                f"{text!r} is not a duration; write a number with a unit, such as 30s, 5m or 1h30m"
            )
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return timedelta(seconds=sign * total)


def format_go_duration(value: timedelta) -> str:
    """Format a timedelta compactly in Go's syntax (`1h30m`, `45s`, `250ms`)."""
    total_us = round(value.total_seconds() * 1_000_000)
    if total_us == 0:
        return "0s"
    sign = "-" if total_us < 0 else ""
    total_us = abs(total_us)
    hours, rem = divmod(total_us, 3_600_000_000)
    minutes, rem = divmod(rem, 60_000_000)
    seconds, micros = divmod(rem, 1_000_000)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if micros and not (hours or minutes or seconds):
        out += f"{micros // 1000}ms" if micros % 1000 == 0 else f"{micros}us"
    elif micros:
        out += f"{seconds}.{micros:06d}".rstrip("0") + "s"
    elif seconds:
        out += f"{seconds}s"
    return sign + out


def _coerce(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a duration; write e.g. 30s or 5m")
    if isinstance(value, str):
        return parse_go_duration(value)
    if isinstance(value, int | float):
        raise DurationError(
            f"{value!r} has no unit; write a duration such as {value}s or {value}m"
        )
    raise DurationError(f"{value!r} is not a duration; write e.g. 30s or 5m")


GoDuration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_go_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "examples": ["30s", "5m", "1h30m"]}),
]
"""A timedelta field that reads and writes Go duration strings in YAML and JSON."""
