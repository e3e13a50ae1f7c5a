"""The command line's JSON text (replica.cli.json_text) is exactly what `json.dumps(value, indent=2,
sort_keys=True, default=str)` gives, for the shapes replica prints and for the corners of JSON encoding."""

from __future__ import annotations

import enum
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from replica.actions.evidence import EXPORT_FORMATS
from replica.cli import audit
from replica.cli.json_text import indented_json


class Level(enum.IntEnum):
    LOW = 1


class Name(str):
    pass


CORNERS: list[Any] = [
    {},
    [],
    (),
    {"empty": {}, "list": [], "nested": [[], {}, [[]]]},
    ["é", "\u2028", "\x00\x1f", '"quoted"\\', "日本", "\U0001f600"],
    [0.0, -0.0, 1e16, 1.5e-7, 123456789.123456789, float("nan"), float("inf"), -float("inf"), 2.0, 10**30, -1],
    [True, False, None, Level.LOW, Name("subclass"), 3],
    {"b": 1, "a": [1, {"z": None, "y": [True]}], "A": "upper first", "é": 2},
    {Name("key"): 1, "other": 2},
    {1: "int keys", 2: "are made strings"},
    [{"b": 1, "a": 2}, {"a": 3, "b": 4}, {"b": {"b": 5, "a": [{"a": 6, "b": 7}]}, "a": None}],  # shapes repeat
    {"time": datetime(2026, 11, 27, 10, 0, tzinfo=UTC), "path": Path("/srv/data"), "tuple": (1, "two")},
    "a bare string",
    42,
]


@pytest.mark.parametrize("value", CORNERS, ids=range(len(CORNERS)))
def test_corners_are_encoded_as_json_dumps_encodes_them(value: Any) -> None:
    assert indented_json(value) == json.dumps(value, indent=2, sort_keys=True, default=str)


def _random_value(rng: random.Random, depth: int) -> Any:
    choice = rng.randrange(9 if depth < 4 else 5)
    if choice == 0:
        return rng.choice(["", "text", "ü", "tab\there", "0"])
    if choice == 1:
        return rng.randint(-(10**12), 10**12)
    if choice == 2:
        return rng.uniform(-1e6, 1e6)
    if choice == 3:
        return rng.choice([True, False])
    if choice == 4:
        return None
    if choice in (5, 6):
        return {f"k{rng.randrange(50)}": _random_value(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(5))]


def test_random_documents_are_encoded_as_json_dumps_encodes_them() -> None:
    rng = random.Random(20261127)
    for _ in range(300):
        value = _random_value(rng, 0)
        assert indented_json(value) == json.dumps(value, indent=2, sort_keys=True, default=str)


def test_a_circular_document_is_refused_as_json_dumps_refuses_it() -> None:
    value: list[Any] = []
    value.append(value)
    with pytest.raises(ValueError, match="Circular reference"):
        indented_json(value)


def test_the_parser_offers_the_export_formats_of_the_evidence_pack() -> None:
    assert audit.EXPORT_FORMATS == EXPORT_FORMATS


def test_the_parser_offers_the_roles_tokens_take() -> None:
    from replica.catalog import tokens
    from replica.cli import web

    assert web.ROLES == tokens.ROLES
