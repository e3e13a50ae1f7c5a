"""JSON documents as the command line prints them: `json.dumps(value, indent=2, sort_keys=True, default=str)`.

The standard library encodes with an indent in pure Python, a generator per container and several calls per
value: ~0.45 s for the status of 10,000 jobs. `indented_json` gives the same text in about half the time: the
members of a container that are plain strings, numbers, booleans or null are written in the container's loop by
the same C helpers json uses (`encode_basestring_ascii`, `int.__repr__`, `float.__repr__`), without a call of
ours each, and the sorted, encoded keys of each shape of dict are reused. A unit test compares both on varied
documents.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any

INDENT = "  "
# Floats as json's floatstr writes them (allow_nan): NaN and the infinities as JavaScript spells them. repr() gives
# these three texts for them only, and no other scalar text ends in "n" or "f".
_SPECIAL_FLOATS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
# The exact types written in their container's loop; subclasses (an IntEnum, a str subclass) take the general
# path, as in json's encoder.
_SCALARS: dict[type, Callable[[Any], str]] = {
    str: encode_basestring_ascii,
    int: int.__repr__,
    float: float.__repr__,
    bool: {True: "true", False: "false"}.__getitem__,
    type(None): {None: "null"}.__getitem__,
}


class _Unsupported(Exception):
    """A value this encoder does not reproduce exactly (a dict key that is not a string): json.dumps takes over."""


# Per shape of dict (its keys, in insertion order) and indent: its keys in sorted order, each with the text that
# comes before its value. Documents repeat a few shapes thousands of times (a job, a destination, a run): their keys
# are sorted and encoded once.
_Layouts = dict[tuple[tuple[Any, ...], str], list[tuple[str, Any]]]


def indented_json(value: Any) -> str:
    """Return `json.dumps(value, indent=2, sort_keys=True, default=str)`: the same text, faster.

    Raises what json.dumps raises for values it cannot encode (with `default=str`, only circular containers).
    """
    parts: list[str] = []
    try:
        _append(value, parts, "\n", {})
    except (_Unsupported, RecursionError):
        return json.dumps(value, indent=2, sort_keys=True, default=str)
    return "".join(parts)


def _scalar_text(scalar: Callable[[Any], str], value: Any) -> str:
    text = scalar(value)
    return _SPECIAL_FLOATS.get(text, text) if text[-1] in "nf" else text


def _append(value: Any, parts: list[str], newline: str, layouts: _Layouts) -> None:
    """Append the text of `value`, whose own line starts with `newline` (a line break and its indent)."""
    scalar = _SCALARS.get(type(value))
    if scalar is not None:
        parts.append(_scalar_text(scalar, value))
    elif isinstance(value, str):
        parts.append(encode_basestring_ascii(value))
    elif isinstance(value, int):  # bool is a scalar type; an IntEnum is written as its number
        parts.append(int.__repr__(value))
    elif isinstance(value, float):
        parts.append(_scalar_text(float.__repr__, value))
    elif isinstance(value, list | tuple):
        _append_list(value, parts, newline, layouts)
    elif isinstance(value, dict):
        _append_dict(value, parts, newline, layouts)
    else:
        parts.append(encode_basestring_ascii(str(value)))  # default=str


def _append_list(values: list[Any] | tuple[Any, ...], parts: list[str], newline: str, layouts: _Layouts) -> None:
    if not values:
        parts.append("[]")
        return
    append, scalar_of = parts.append, _SCALARS.get
    inner = newline + INDENT
    separator = "[" + inner
    for item in values:
        scalar = scalar_of(type(item))
        if scalar is None:
            append(separator)
            _append(item, parts, inner, layouts)
        else:
            text = scalar(item)
            append(separator + (_SPECIAL_FLOATS.get(text, text) if text[-1] in "nf" else text))
        separator = "," + inner
    append(newline + "]")


def _append_dict(values: dict[Any, Any], parts: list[str], newline: str, layouts: _Layouts) -> None:
    if type(values) is not dict:
        raise _Unsupported(type(values))  # a subclass may read its items differently from a dict
    if not values:
        parts.append("{}")
        return
    append, scalar_of = parts.append, _SCALARS.get
    inner = newline + INDENT
    shape = (tuple(values), inner)
    layout = layouts.get(shape)
    if layout is None:
        keys = sorted(values)  # as json: mixed key types raise TypeError
        if any(type(key) is not str for key in keys):
            raise _Unsupported(keys)
        layout = [(("{" if first else ",") + inner + encode_basestring_ascii(key) + ": ", key)
                  for first, key in zip([True, *[False] * (len(keys) - 1)], keys, strict=True)]  # fmt: skip
        layouts[shape] = layout
    for prefix, key in layout:
        item = values[key]
        scalar = scalar_of(type(item))
        if scalar is None:
            append(prefix)
            _append(item, parts, inner, layouts)
        else:
            text = scalar(item)
            append(prefix + (_SPECIAL_FLOATS.get(text, text) if text[-1] in "nf" else text))
    append(newline + "}")
