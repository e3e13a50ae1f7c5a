"""The `directory` store: restic reads the tree; fingerprint = file count, total bytes and a sampled digest.

The walk is one streaming pass: it holds the open directories of the current path and a sample of at most
`sample_count` paths, never a list of the tree's files, so a tree of millions of files costs what a tree of
hundreds does in memory. The sample is the `sample_count` files whose relative paths have the smallest BLAKE2b
hash (a bottom-k sketch): deterministic, independent of the order the file system lists entries in, and spread
over the whole tree. Fingerprints say how their sample was chosen (`sampling`); those without the key were
written before it existed (the files spread evenly over the sorted list). Verification needs no more than the
stored {path: digest} map, so fingerprints of every sampling method verify alike.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import heapq
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from replica.catalog.records import CheckOutcome
from replica.config.models import DirectoryStoreConfig, VerificationConfig
from replica.errors import SourceUnreachable, StoreError, UsageError
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
from replica.stores.paths import directory_has_data, move_aside, named_path, temporary_directory

HASH_CHUNK_BYTES = 1 << 20
ABANDON_CHECK_FILES = 1024  # how often a walk looks whether its backup still wants it
CANARY_FILE = f"{CANARY_NAME}.json"
# How the fingerprint's sample was chosen; a fingerprint without `sampling` spread its sample evenly over the
# sorted list of files (the method before this one).
SAMPLING = "smallest-path-hash"
PATH_HASH_BYTES = 8


@dataclass(frozen=True)
class ExcludeRules:
    """restic's `--exclude` patterns, compiled for a walk that meets every entry once, parents first.

    As restic 0.14 matches them (checked against real backups in the tests): a pattern without a leading '/' matches
    at any depth, one component (`*.tmp`, `.cache`) or several in a row (`build/*.o` leaves out `build/a.o` and
    `x/build/b.o`); a pattern with a leading '/' is an absolute path (`/srv/uploads/tmp`), not one below the tree.
    Because the walk never enters an excluded directory, an entry only needs matching where it is the last
    component: by its own name, by its last components for each pattern's length, by its absolute path.
    """

    component: re.Pattern[str] | None
    trailing: dict[int, re.Pattern[str]]
    absolute: dict[int, re.Pattern[str]]
    root_depth: int
    root_prefix: str

    @classmethod
    def compile(cls, patterns: Sequence[str], root: Path) -> ExcludeRules:
        """Return the rules of `patterns` (fnmatch syntax, case-sensitive) for a walk of `root`."""
        component: list[str] = []
        trailing: dict[int, list[str]] = {}
        absolute: dict[int, list[str]] = {}
        for pattern in patterns:
            stripped = pattern.strip("/")
            if not stripped:
                continue
            depth = stripped.count("/") + 1
            if pattern.startswith("/"):
                absolute.setdefault(depth, []).append(fnmatch.translate(stripped))
            elif depth > 1:
                trailing.setdefault(depth, []).append(fnmatch.translate(stripped))
            else:
                component.append(fnmatch.translate(stripped))
        root_parts = [part for part in str(root.absolute()).split("/") if part]
        return cls(
            component=_any_of(component),
            trailing={depth: rule for depth, translated in trailing.items() if (rule := _any_of(translated))},
            absolute={depth: rule for depth, translated in absolute.items() if (rule := _any_of(translated))},
            root_depth=len(root_parts),
            root_prefix="/".join(root_parts) + "/" if root_parts else "",
        )

    def __bool__(self) -> bool:
        return self.component is not None or bool(self.trailing) or bool(self.absolute)

    def excludes(self, name: str, relative: str, depth: int) -> bool:
        """Return True when the entry `relative` (its last component `name`, `depth` components deep) is left out."""
        if self.component is not None and self.component.match(name):
            return True
        for length, rule in self.trailing.items():
            if length <= depth and rule.match("/".join(relative.rsplit("/", length)[-length:])):
                return True
        absolute = self.absolute.get(self.root_depth + depth)
        return absolute is not None and absolute.match(self.root_prefix + relative) is not None


def _any_of(translated: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{expression})" for expression in translated)) if translated else None


def walk_files(root: Path, exclude: Sequence[str] = ()) -> Iterator[tuple[str, int]]:
    """Yield (relative path, size) of every regular file below `root` that `exclude` keeps, without following
    links, depth first in the order the file system lists entries. Holds one open directory per level, nothing
    per file. A file that vanishes during the walk is skipped; an unreadable directory is a StoreError.
    """
    rules = ExcludeRules.compile(exclude, root)
    # (open listing, relative path of its directory with a trailing '/', depth of its entries)
    levels: list[tuple[Iterator[os.DirEntry[str]], str, int]] = []
    try:
        try:
            levels.append((os.scandir(root), "", 1))
        except OSError as error:
            raise _unreadable(error) from None
        while levels:
            listing, prefix, depth = levels[-1]
            try:
                entry = next(listing, None)
            except OSError as error:  # a directory failing while it is read (I/O error, a file system gone)
                raise _unreadable(error) from None
            if entry is None:
                levels.pop()
                _close(listing)
                continue
            relative = prefix + entry.name
            if rules and rules.excludes(entry.name, relative, depth):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    levels.append((os.scandir(entry.path), relative + "/", depth + 1))
                elif entry.is_file(follow_symlinks=False):
                    yield relative, entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue  # removed since its directory was listed: a live tree
            except OSError as error:
                raise _unreadable(error) from None
    finally:
        for listing, _, _ in levels:
            _close(listing)


def _unreadable(error: OSError) -> StoreError:
    return StoreError(f"cannot read {error.filename}: {error.strerror}")


def _close(listing: Iterator[os.DirEntry[str]]) -> None:
    close = getattr(listing, "close", None)
    if close is not None:
        close()


def path_hash(relative: str) -> int:
    """Return the sampling key of a relative path: its BLAKE2b hash as an integer (same on every machine)."""
    digest = hashlib.blake2b(os.fsencode(relative), digest_size=PATH_HASH_BYTES).digest()
    return int.from_bytes(digest, "big")


class PathSample:
    """The `count` offered paths with the smallest path hash, kept in a heap of at most `count` entries."""

    def __init__(self, count: int) -> None:
        self.count = count
        # (-hash, relative, size): the root is the kept path with the largest hash, the first to be replaced.
        self._heap: list[tuple[int, str, int]] = []

    def offer(self, relative: str, size: int) -> None:
        """Consider one file for the sample."""
        if self.count <= 0:
            return
        key = -path_hash(relative)
        if len(self._heap) < self.count:
            heapq.heappush(self._heap, (key, relative, size))
        elif key > self._heap[0][0]:
            heapq.heapreplace(self._heap, (key, relative, size))

    def chosen(self) -> list[tuple[str, int]]:
        """Return the sampled (relative path, size) pairs, sorted by path."""
        return sorted((relative, size) for _, relative, size in self._heap)


def file_digest(path: Path) -> str:
    """Return the SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint_tree(
    root: Path, sample_count: int, exclude: Sequence[str] = (), abandon: threading.Event | None = None
) -> Fingerprint:
    """Return {files, bytes, sampling, sample: {relative path: sha256}} of the tree at `root`.

    One pass over the tree, then the sampled files are read. A sampled file deleted in between leaves the sample
    and the counts (the fingerprint then describes the tree as it is after the walk). Raises StoreError when the
    tree or a sampled file cannot be read, or when `abandon` is set before the walk is over.
    """
    files = total_bytes = 0
    sample = PathSample(sample_count)
    for relative, size in walk_files(root, exclude):
        files += 1
        total_bytes += size
        sample.offer(relative, size)
        if abandon is not None and files % ABANDON_CHECK_FILES == 0 and abandon.is_set():
            raise StoreError(f"walk of {root} abandoned after {files} files: the backup ended without it")
    digests: dict[str, str] = {}
    for relative, size in sample.chosen():
        if abandon is not None and abandon.is_set():
            raise StoreError(f"walk of {root} abandoned while reading its sample: the backup ended without it")
        try:
            digests[relative] = file_digest(root / relative)
        except FileNotFoundError:
            files -= 1
            total_bytes -= size
        except OSError as error:
            raise StoreError(f"cannot read {root / relative}: {error.strerror}") from None
    return {"files": files, "bytes": total_bytes, "sampling": SAMPLING, "sample": digests}


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
            raise SourceUnreachable(f"{self.describe()}: does not exist or is not a directory")
        if not os.access(root, os.R_OK | os.X_OK):
            raise StoreError(f"{self.describe()}: not readable by this user")
        abandon = threading.Event()
        try:
            yield PreparedBackup(
                source=BackupSource(stored_name=str(root), directory=root, exclude=self.config.exclude),
                # Walked while restic walks it: a tree that changes during the backup differs from the snapshot
                # whichever reads it first, and then fails verification loudly.
                fingerprint=lambda: fingerprint_tree(root, self.sample_files, self.config.exclude, abandon=abandon),
            )
        finally:
            # A backup that ended without its fingerprint (restic failed) does not wait for the rest of the walk.
            abandon.set()

    def scratch_target(self, scratch: Path, label: str) -> contextlib.AbstractContextManager[Target]:
        return _directory_target(scratch, f"verify-{label}")

    def named_target(self, to: str) -> Target:
        path = named_path(to)
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
        unreadable = UnreadableFiles(target.path)
        fingerprint = compare_tree(target.path, unreadable.watch(walk_files(target.path)), expected)
        integrity = CheckOutcome(
            "integrity",
            not unreadable.count,
            True,
            f"{unreadable.seen} files restored and readable"
            if not unreadable.count
            else f"{unreadable.count} restored files unreadable, e.g. {unreadable.first}",
        )
        return [integrity, fingerprint]

    def restored_values(self, location: Target, kind: str, query: str) -> set[str]:
        if kind != "files":
            return super().restored_values(location, kind, query)
        assert location.path is not None
        try:
            # Path.match-style globs against the relative path; the canary is replica's, not the service's.
            return {
                path.relative_to(location.path).as_posix()
                for path in location.path.glob(query)
                if path.is_file() and path.name != CANARY_FILE
            }
        except (OSError, ValueError, NotImplementedError) as error:  # absolute or unusable patterns
            raise StoreError(f"{location.description}: cannot list files matching '{query}': {error}") from None

    def write_canary(self, canary: Canary) -> None:
        if not self.config.path.is_dir():
            raise SourceUnreachable(f"{self.describe()}: does not exist or is not a directory")
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


class UnreadableFiles:
    """Counts the files of a walk that this user cannot read, as they pass (the first one named)."""

    def __init__(self, root: Path) -> None:
        self.root = os.fspath(root)
        self.seen = 0
        self.count = 0
        self.first: str | None = None

    def watch(self, files: Iterable[tuple[str, int]]) -> Iterator[tuple[str, int]]:
        """Yield `files` unchanged, noting each one that cannot be read."""
        for relative, size in files:
            self.seen += 1
            if not os.access(os.path.join(self.root, relative), os.R_OK):
                self.count += 1
                self.first = self.first or relative
            yield relative, size


def compare_tree(root: Path, found_files: Iterable[tuple[str, int]], expected: Fingerprint) -> CheckOutcome:
    """Return the `fingerprint` check: file count, total bytes and every sampled digest must match.

    `found_files` is consumed once, as it comes (a walk of the restored tree). The sample is checked path by
    path whatever its `sampling` method, so fingerprints written before sampling was versioned verify too.
    """
    found_count = found_bytes = 0
    for _, size in found_files:
        found_count += 1
        found_bytes += size
    problems = []
    if found_count != expected.get("files"):
        problems.append(f"file count: expected {expected.get('files')}, restored {found_count}")
    if found_bytes != expected.get("bytes"):
        problems.append(f"total bytes: expected {expected.get('bytes')}, restored {found_bytes}")
    sample: dict[str, str] = expected.get("sample", {})
    mismatched = []
    for relative, digest in sample.items():
        path = root / relative
        try:
            if not path.is_file() or file_digest(path) != digest:
                mismatched.append(relative)
        except OSError:
            mismatched.append(relative)  # unreadable: the integrity check names it
    if mismatched:
        problems.append(f"sampled content: {len(mismatched)} of {len(sample)} files differ, e.g. {mismatched[0]}")
    if problems:
        return CheckOutcome("fingerprint", False, True, "; ".join(problems))
    return CheckOutcome(
        "fingerprint",
        True,
        True,
        f"{found_count} files, {found_bytes} bytes and {len(sample)} sampled digests match the backup",
    )


@contextlib.contextmanager
def _directory_target(parent: Path, name: str) -> Iterator[Target]:
    with temporary_directory(parent, name) as directory:
        yield Target(description=f"directory {directory}", path=directory)
