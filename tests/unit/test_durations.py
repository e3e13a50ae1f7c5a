"""Durations as written in job and policy files, and their short human form."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from replica.config.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        (" 1h 30m ", timedelta(hours=1, minutes=30)),
    ],
)
def test_parse_duration_reads_each_unit_and_combinations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("value", ["90", 90, 4.5, None, True])
def test_parse_duration_rejects_numbers_without_a_unit(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)


def test_parse_duration_rejects_the_integer_yaml_makes_of_1_colon_30() -> None:
    # YAML 1.1 reads the unquoted `1:30` as the sexagesimal integer 90: a unit must be demanded.
    value = yaml.safe_load("rpo: 1:30")["rpo"]

    assert value == 90
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize("text", ["0s", "0h0m"])
def test_parse_duration_rejects_zero(text: str) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["-5m", "", "soon", "1.5h", "4H", "h", "15 minutes", "1h30"])
def test_parse_duration_rejects_negative_and_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "-"),
        (7.5, "7.5s"),
        (41, "41s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=2, minutes=5), "2h05m"),
        (timedelta(days=3, hours=4, minutes=59), "3d04h"),
    ],
)
def test_format_duration_gives_the_short_human_form(value: timedelta | float | None, expected: str) -> None:
    assert format_duration(value) == expected
