"""Restore targets named by a person or a client: text that names no usable path is a clear UsageError."""

from __future__ import annotations

from pathlib import Path

import pytest

from replica.errors import UsageError
from replica.stores.paths import named_path


@pytest.mark.parametrize("text", ["a\x00b", "~no-such-user-here/x", "/tmp/" + "n" * 300])
def test_text_that_names_no_usable_path_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="is not a usable path"):
        named_path(text)


def test_a_usable_path_is_made_absolute_with_home_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert named_path("restored") == (tmp_path / "restored").resolve()
    assert named_path("~/x", resolve=False) == tmp_path / "home" / "x"
