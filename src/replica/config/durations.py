"""Durations as users write them in job and policy files: `90s`, `15m`, `4h`, `1d`, `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: object) -> timedelta:
    """Return the timedelta written as `text` (e.g. `4h`, `1h30m`).

    Raises ValueError for anything else, including bare numbers: YAML reads `1:30` as 90, so a unit is required.
    """
    if isinstance(text, timedelta):
        return text
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as '15m' or '4h', got {text!r}")
    compact = text.strip().replace(" ", "")
    if not compact or _PART.sub("", compact) != "":
        raise ValueError(f"expected a duration such as '15m' or '4h', got {text!r}")
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(compact))
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {text!r}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta | float | None) -> str:
    """Return a short human form (`2h05m`, `41s`, `3d04h`) of a timedelta or a number of seconds."""
    if value is None:
        return "-"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    rounded = round(seconds)
    if rounded < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, second = divmod(rounded, 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    if days:
        return f"{days}d{hour:02d}h"
    if hours:
        return f"{hours}h{minute:02d}m"
    return f"{minute}m{second:02d}s"


def spell_duration(value: timedelta) -> str:
    """Return a duration as users write one (`1h`, `1h30m`, `2d`, `45s`): the form the error messages use."""
    seconds = int(value.total_seconds())
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda value: f"{int(value.total_seconds())}s", return_type=str),
]
