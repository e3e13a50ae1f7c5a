"""File-system helpers shared by the path-based stores: scratch folders, staging beside a target, promotion."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def temporary_directory(parent: Path, name: str) -> Iterator[Path]:
    """Yield a new empty directory `parent/name`, removed with its contents on exit whatever happened."""
    parent.mkdir(parents=True, exist_ok=True)
    directory = parent / name
    directory.mkdir()
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def directory_has_data(path: Path) -> bool:
    """Return True when `path` exists and is not an empty directory."""
    if not path.exists():
        return False
    if not path.is_dir():
        return True
    return any(path.iterdir())


def move_aside(path: Path, suffix: str) -> Path | None:
    """Rename an existing `path` to `path<suffix>` (never deleting it) and return the new path, or None."""
    if not path.exists() and not path.is_symlink():
        return None
    aside = path.with_name(path.name + suffix)
    path.rename(aside)
    return aside
