"""File-system helpers shared by the path-based stores: scratch folders, staging beside a target, promotion."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from replica.errors import UsageError
from replica.stores.base import RestoreMethod, Store, Target


def named_path(to: str, *, resolve: bool = True) -> Path:
    """Return the absolute path a restore target names (`~` expanded; symbolic links resolved unless `resolve` is
    False). Raises UsageError for text that names no usable path: a NUL byte, an unknown user's home, a name longer
    than the file system takes (the web API passes what a client typed; a 500 would say replica broke)."""
    try:
        path = Path(to).expanduser()
        path = path.resolve() if resolve else path.absolute()
        path.exists()  # a name the file system refuses fails here, before anything is planned
    except (ValueError, RuntimeError, OSError) as error:
        raise UsageError(f"restore target {to[:200]!r} is not a usable path: {error}") from None
    return path


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


class SingleFileStore(Store):
    """A store whose data is one file (SQLite, Redis RDB): restores write a file, staged beside its final path."""

    restored_file_name: ClassVar[str]
    file_description: ClassVar[str]
    companion_suffixes: ClassVar[tuple[str, ...]] = ()

    @contextlib.contextmanager
    def _file_target(self, parent: Path, name: str) -> Iterator[Target]:
        """Yield a file path inside a fresh directory; the directory goes on exit (the file too unless moved)."""
        with temporary_directory(parent, name) as directory:
            path = directory / self.restored_file_name
            yield Target(description=f"{self.file_description} {path}", path=path)

    def scratch_target(self, scratch: Path, label: str) -> contextlib.AbstractContextManager[Target]:
        return self._file_target(scratch, f"verify-{label}")

    def target_has_data(self, target: Target) -> bool:
        assert target.path is not None
        return target.path.exists() or target.path.is_symlink()

    def staging_target(self, final: Target, label: str) -> contextlib.AbstractContextManager[Target]:
        assert final.path is not None
        return self._file_target(final.path.parent, f".{final.path.name}.replica-restore-{label}")

    def restore_method(self, target: Target, stored_name: str) -> RestoreMethod:
        return RestoreMethod(kind="file", output_path=target.path)

    def restored_location(self, target: Target, stored_name: str) -> Target:
        return target

    def promote(self, staged: Target, final: Target, replaced_suffix: str) -> str | None:
        assert staged.path is not None and final.path is not None
        final.path.parent.mkdir(parents=True, exist_ok=True)
        aside = move_aside(final.path, replaced_suffix)
        for companion in self.companion_suffixes:
            # An old -wal/-shm/-journal left beside the restored file would be replayed into it.
            move_aside(final.path.with_name(final.path.name + companion), replaced_suffix)
        staged.path.rename(final.path)
        return str(aside) if aside else None
