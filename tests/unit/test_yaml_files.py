"""Strict YAML reading: duplicate keys, syntax errors and non-mapping documents are reported with a line."""

from __future__ import annotations

from pathlib import Path

import pytest

from replica.config.yaml_files import read_yaml_mapping


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_yaml_mapping_returns_nested_mappings(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "name: standard\nretention:\n  keep_last: 7\n")

    assert read_yaml_mapping(path) == {"name": "standard", "retention": {"keep_last": 7}}


def test_duplicate_key_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "name: standard\nretention:\n  keep_last: 7\n  keep_last: 0\n")

    with pytest.raises(ValueError) as raised:
        read_yaml_mapping(path)

    assert str(raised.value) == "line 4: duplicate key 'keep_last' (first on line 3)"


def test_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "name: standard\nrpo: [1h, 2h\nrto: 15m\n")

    with pytest.raises(ValueError, match=r"^line \d+: "):
        read_yaml_mapping(path)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just words\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "p.yaml", text)

    with pytest.raises(ValueError, match="expected a mapping"):
        read_yaml_mapping(path)


def test_a_key_that_is_a_list_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text("? [a, b]\n: 1\n")
    with pytest.raises(ValueError, match="line 1: a key must be a plain name, not list"):
        read_yaml_mapping(path)
