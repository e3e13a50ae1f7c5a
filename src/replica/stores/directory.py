"""The `directory` store: restic reads the tree; fingerprint = file count, total bytes and a sampled digest."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from replica.catalog.records import CheckOutcome
from replica.config.models import DirectoryStoreConfig, VerificationConfig
from replica.errors import StoreError, UsageError
from replica.stores.base import (
    CANARY_NAME,
    BackupSource,
    Canary,
    Fingerprint,
    PreparedBackup,
    RestoreMethod,
    Store,
    Target,
)
from replica.stores.paths import directory_has_data, move_aside, temporary_directory

HASH_CHUNK_BYTES = 1 << 20
CANARY_FILE = f"{CANARY_NAME}.json"


def is_excluded(relative: str, patterns: Sequence[str]) -> bool:
    """Return True when restic's `--exclude PATTERN` would leave `relative` out of a backup of "." .

    A pattern without '/' matches any path component (`*.tmp`, `.cache`); one with a '/' is anchored at the tree's
    root. Prefer the first kind: restic matches anchored patterns against the absolute path it reads.
    """
    parts = relative.split("/")
    for pattern in patterns:
        if pattern.startswith("/") or "/" in pattern.strip("/"):
            anchored = pattern.strip("/")
            depth = anchored.count("/") + 1
            if fnmatch.fnmatchcase("/".join(parts[:depth]), anchored):
                return True
        elif any(fnmatch.fnmatchcase(part, pattern.strip("/")) for part in parts):
            return True
    return False


def walk_files(root: Path, exclude: Sequence[str] = ()) -> Iterator[tuple[str, os.stat_result]]:
    """Yield (relative path, stat) of every regular file below `root` that `exclude` keeps, in sorted order,
    without following links. A file that vanishes during the walk is skipped; an unreadable tree is a StoreError.
    """

    def refuse(error: OSError) -> None:
        raise StoreError(f"cannot read {error.filename}: {error.strerror}")

    for directory, subdirectories, files in os.walk(root, onerror=refuse):
        base = Path(directory)
        subdirectories[:] = sorted(
            name for name in subdirectories if not is_excluded(str((base / name).relative_to(root)), exclude)
        )
        for name in sorted(files):
            path = base / name
            relative = str(path.relative_to(root))
            if is_excluded(relative, exclude):
                continue
            try:
                status = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISREG(status.st_mode):
                yield relative, status


def file_digest(path: Path) -> str:
    """Return the SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def sample_paths(relative_paths: list[str], count: int) -> list[str]:
    """Return up to `count` paths spread evenly over the sorted list (deterministic, so reruns compare)."""
    if count <= 0 or not relative_paths:
        return []
    if len(relative_paths) <= count:
        return list(relative_paths)
    step = len(relative_paths) / count
    return [relative_paths[int(index * step)] for index in range(count)]


def fingerprint_tree(root: Path, sample_count: int, exclude: Sequence[str] = ()) -> Fingerprint:
    """Return {files, bytes, sample: {relative path: sha256}} of the tree at `root`."""
    entries = list(walk_files(root, exclude))
    chosen = sample_paths([relative for relative, _ in entries], sample_count)
    return {
        "files": len(entries),
        "bytes": sum(status.st_size for _, status in entries),
        "sample": {relative: file_digest(root / relative) for relative in chosen},
    }


class DirectoryStore(Store):
    """A directory tree protected file by file."""

    kind = "directory"

    def __init__(self, config: DirectoryStoreConfig, sample_files: int = 32) -> None:
        self.config = config
        self.sample_files = sample_files

    def describe(self) -> str:
        return f"directory {self.config.path}"

    @contextlib.contextmanager
    def prepare_backup(self, scratch: Path, job_name: str) -> Iterator[PreparedBackup]:
        root = self.config.path
        if not root.is_dir():
            raise StoreError(f"{self.describe()}: does not exist or is not a directory")
        if not os.access(root, os.R_OK | os.X_OK):
            raise StoreError(f"{self.describe()}: not readable by this user")
        yield PreparedBackup(
            source=BackupSource(stored_name=str(root), directory=root, exclude=self.config.exclude),
            fingerprint=lambda: fingerprint_tree(root, self.sample_files, self.config.exclude),
            # A live tree keeps changing while restic reads it; the walk is taken first so that the fingerprint
            # describes the state the snapshot starts from. A tree changed meanwhile fails verification loudly.
            fingerprint_first=True,
        )

    def scratch_target(self, scratch: Path, label: str) -> contextlib.AbstractContextManager[Target]:
        return _directory_target(scratch, f"verify-{label}")

    def named_target(self, to: str) -> Target:
        path = Path(to).expanduser().resolve()
        live = self.config.path.resolve()
        if path == live or live in path.parents or path in live.parents:
            raise UsageError(f"restore target {path} is the live directory, inside it or above it; choose another path")
        if path.exists() and not path.is_dir():
            raise UsageError(f"restore target {path} exists and is not a directory")
        return Target(description=f"directory {path}", path=path)

    def target_has_data(self, target: Target) -> bool:
        assert target.path is not None
        return directory_has_data(target.path)

    def staging_target(self, final: Target, label: str) -> contextlib.AbstractContextManager[Target]:
        assert final.path is not None
        return _directory_target(final.path.parent, f".{final.path.name}.replica-restore-{label}")

    def restore_method(self, target: Target, stored_name: str) -> RestoreMethod:
        return RestoreMethod(kind="tree", unpack_directory=target.path)

    def restored_location(self, target: Target, stored_name: str) -> Target:
        return target

    def check_restored(
        self, target: Target, expected: Fingerprint, verification: VerificationConfig
    ) -> list[CheckOutcome]:
        assert target.path is not None
        if not target.path.is_dir():
            return [
                CheckOutcome("integrity", False, True, f"restored tree {target.path} is missing"),
                CheckOutcome("fingerprint", False, True, "nothing restored to compare"),
            ]
        found_files = list(walk_files(target.path))
        unreadable = [relative for relative, _ in found_files if not os.access(target.path / relative, os.R_OK)]
        integrity = CheckOutcome(
            "integrity",
            not unreadable,
            True,
            f"{len(found_files)} files restored and readable"
            if not unreadable
            else f"{len(unreadable)} restored files unreadable, e.g. {unreadable[0]}",
        )
        return [integrity, compare_tree(target.path, found_files, expected)]

    def write_canary(self, canary: Canary) -> None:
        path = self.config.path / CANARY_FILE
        temporary = path.with_name(path.name + ".tmp")
        try:
            with temporary.open("w", encoding="utf-8") as file:
                json.dump(canary.as_document(), file)
                file.flush()
                os.fsync(file.fileno())
            temporary.replace(path)
        except OSError as error:
            raise StoreError(f"{self.describe()}: cannot write canary {path}: {error.strerror}") from None

    def read_canary(self, location: Target) -> Canary | None:
        assert location.path is not None
        try:
            return Canary.from_document(json.loads((location.path / CANARY_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError):
            return None

    def promote(self, staged: Target, final: Target, replaced_suffix: str) -> str | None:
        assert staged.path is not None and final.path is not None
        aside = None
        if final.path.exists() and directory_has_data(final.path):
            aside = move_aside(final.path, replaced_suffix)
        elif final.path.exists():
            final.path.rmdir()
        final.path.parent.mkdir(parents=True, exist_ok=True)
        staged.path.rename(final.path)
        return str(aside) if aside else None


def compare_tree(root: Path, found_files: list[tuple[str, os.stat_result]], expected: Fingerprint) -> CheckOutcome:
    """Return the `fingerprint` check: file count, total bytes and every sampled digest must match."""
    found_bytes = sum(status.st_size for _, status in found_files)
    problems = []
    if len(found_files) != expected.get("files"):
        problems.append(f"file count: expected {expected.get('files')}, restored {len(found_files)}")
    if found_bytes != expected.get("bytes"):
        problems.append(f"total bytes: expected {expected.get('bytes')}, restored {found_bytes}")
    sample: dict[str, str] = expected.get("sample", {})
    mismatched = []
    for relative, digest in sample.items():
        path = root / relative
        if not path.is_file() or file_digest(path) != digest:
            mismatched.append(relative)
    if mismatched:
        problems.append(f"sampled content: {len(mismatched)} of {len(sample)} files differ, e.g. {mismatched[0]}")
    if problems:
        return CheckOutcome("fingerprint", False, True, "; ".join(problems))
    return CheckOutcome(
        "fingerprint",
        True,
        True,
        f"{len(found_files)} files, {found_bytes} bytes and {len(sample)} sampled digests match the backup",
    )


@contextlib.contextmanager
def _directory_target(parent: Path, name: str) -> Iterator[Target]:
    with temporary_directory(parent, name) as directory:
        yield Target(description=f"directory {directory}", path=directory)
