"""The contract every store kind implements: back up, restore into a target, fingerprint, check.

A store never calls restic: it says what restic should read (`BackupSource`) and how restored data reaches a
target (`RestoreMethod`); the actions layer joins the two through `execute`.
"""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from replica.catalog.records import CheckOutcome
from replica.config.models import VerificationConfig
from replica.errors import SourceUnreachable, StoreError, last_meaningful_line
from replica.execute import DEFAULT_STALL_SECONDS, Command, Completed

Fingerprint = dict[str, Any]


@dataclass(frozen=True)
class BackupSource:
    """What restic reads: the stdout of `producer` stored as the file `stored_name`, or the tree `directory`.

    A tree is backed up as "." from inside `directory`, so the snapshot's root is the directory's content and
    a restore lands directly in the target (restic 0.14 has no `snapshot:subfolder` restore).
    """

    stored_name: str
    producer: Command | None = None
    directory: Path | None = None
    exclude: tuple[str, ...] = ()

    @property
    def is_stream(self) -> bool:
        """Return True when restic reads the producer's output on stdin."""
        return self.producer is not None


# What the clients print when they could not reach their server at all (libpq and pg_dump, PyMySQL and
# mariadb-dump, redis-py and redis-cli): the store is unreachable, not broken. An authentication failure or a
# missing database means the server was reached.
UNREACHABLE = re.compile(
    r"connection refused|could not translate host name|name or service not known|"
    r"temporary failure in name resolution|no route to host|network is unreachable|timeout expired|"
    r"can't connect to|unknown (?:mysql |mariadb )?server host|could not connect to redis|timeout connecting|"
    r"failed: no such file or directory",
    re.I,
)


def source_error(message: str, cause: str = "") -> StoreError:
    """Return SourceUnreachable when `message` or the full text of its `cause` says the store's server could not be
    reached, else StoreError (with `message`)."""
    unreachable = UNREACHABLE.search(message) or UNREACHABLE.search(cause)
    return SourceUnreachable(message) if unreachable else StoreError(message)


def require_success(completed: Completed) -> None:
    """Raise StoreError unless the producer exited 0 in time (restic stores a short stream without complaint)."""
    if not completed.succeeded:
        reason = completed.stop_reason or f"exited {completed.exit_code}"
        raise StoreError(f"{completed.command.program} {reason}: {last_meaningful_line(completed.stderr_tail)}")


def first_column(rows: Iterable[Sequence[Any]]) -> set[str]:
    """Return the first column of `rows` as text (bytes decoded as UTF-8), NULLs left out: the values an `sql`
    query of a drill's cross-store check yields."""
    values = set()
    for row in rows:
        value = row[0] if row else None
        if value is not None:
            values.add(
                bytes(value).decode("utf-8", "replace")
                if isinstance(value, bytes | bytearray | memoryview)
                else str(value)
            )
    return values


@dataclass
class PreparedBackup:
    """A backup ready to run, holding whatever keeps the source consistent until the context closes.

    `fingerprint` computes the fingerprint of exactly the data restic reads (same transaction, same copy, or the
    same tree at the same time). It runs in a thread while restic runs.
    `verify_producer` raises StoreError when the producer's outcome means the stream is incomplete, whatever
    restic said.
    `complete_fingerprint` returns the fingerprint completed with what only the producer's end tells (a physical
    PostgreSQL backup's start and stop LSN, printed by pg_basebackup as it ends): it runs after `verify_producer`
    passed, with the fingerprint's result and the producer's outcome, and returns a new dict (the default: the
    fingerprint unchanged). Only stream sources have a producer to complete from.
    """

    source: BackupSource
    fingerprint: Callable[[], Fingerprint]
    verify_producer: Callable[[Completed], None] = field(default_factory=lambda: require_success)
    complete_fingerprint: Callable[[Fingerprint, Completed], Fingerprint] = field(
        default_factory=lambda: lambda fingerprint, completed: fingerprint
    )


@dataclass(frozen=True)
class Canary:
    """A marker replica writes into the store right before a dump: which run wrote it, and when (UTC)."""

    run_id: int
    written_at: datetime

    def as_document(self) -> dict[str, Any]:
        """Return the canary as JSON-ready data (for fingerprints and sidecars)."""
        return {"run_id": self.run_id, "written_at": self.written_at.isoformat()}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Canary:
        """Return the canary stored by `as_document`."""
        return cls(int(document["run_id"]), datetime.fromisoformat(str(document["written_at"])))


CANARY_NAME = "_replica_canary"


@dataclass(frozen=True)
class Target:
    """Where restored data goes: a path (directory or file) or a database name on the store's server."""

    description: str
    path: Path | None = None
    database: str | None = None


@dataclass(frozen=True)
class RestoreMethod:
    """How restored data reaches a target.

    `tree`: `restic restore` into `unpack_directory`, the data then sits at `unpack_directory/<stored path>`;
    `file`: `restic dump` written to `output_path`; `command`: `restic dump` piped into `consumer`.
    """

    kind: Literal["tree", "file", "command"]
    unpack_directory: Path | None = None
    output_path: Path | None = None
    consumer: Command | None = None


class Store(ABC):
    """One protected data store. Subclasses exist per kind and are listed in `STORE_KINDS`.

    `stall_seconds` is the stall limit every dump and restore process of the store gets (None: only deadlines).
    """

    kind: ClassVar[str]
    stall_seconds: float | None = DEFAULT_STALL_SECONDS

    @abstractmethod
    def describe(self) -> str:
        """Return a short human description, e.g. `postgresql database 'billing' on 127.0.0.1:5432`."""

    @abstractmethod
    def prepare_backup(self, scratch: Path, job_name: str) -> contextlib.AbstractContextManager[PreparedBackup]:
        """Return a context yielding a PreparedBackup. Raises StoreError when the source cannot be read."""

    @abstractmethod
    def scratch_target(self, scratch: Path, label: str) -> contextlib.AbstractContextManager[Target]:
        """Return a context yielding a fresh, empty target that is removed on exit whatever happens."""

    @abstractmethod
    def named_target(self, to: str) -> Target:
        """Return the target an engineer named with `restore --to`. Raises UsageError when it is not valid."""

    @abstractmethod
    def target_has_data(self, target: Target) -> bool:
        """Return True when the target exists and holds data (a restore must not overwrite it without --force)."""

    @abstractmethod
    def staging_target(self, final: Target, label: str) -> contextlib.AbstractContextManager[Target]:
        """Return a context yielding an empty target beside `final`, removed on exit unless promoted."""

    @abstractmethod
    def restore_method(self, target: Target, stored_name: str) -> RestoreMethod:
        """Return how restored data reaches `target`."""

    @abstractmethod
    def restored_location(self, target: Target, stored_name: str) -> Target:
        """Return where the data sits after the restore method ran (e.g. the subtree of an unpacked directory)."""

    @abstractmethod
    def check_restored(
        self, target: Target, expected: Fingerprint, verification: VerificationConfig
    ) -> list[CheckOutcome]:
        """Return the `integrity` and `fingerprint` checks of restored data (criticality decided by the caller)."""

    @abstractmethod
    def write_canary(self, canary: Canary) -> None:
        """Write `canary` into the live store (replacing or adding to earlier ones), durably, before the dump.

        Named `_replica_canary` in every kind: a table (run_id, written_at) in databases, a key in Redis, a file
        in a directory. Raises StoreError when the store cannot be written.
        """

    @abstractmethod
    def read_canary(self, location: Target) -> Canary | None:
        """Return the newest canary present in restored data, or None when there is none."""

    @abstractmethod
    def promote(self, staged: Target, final: Target, replaced_suffix: str) -> str | None:
        """Move verified data from `staged` to `final`; an existing final is renamed with the suffix, never
        deleted. Returns a description of where the replaced data went, or None."""

    def restoring_from(self, destination: str, *, only: bool = False) -> None:
        """Be told which destination the next restore reads (before `scratch_target`): a store whose restore reads
        more than the snapshot (the WAL of a physical PostgreSQL backup) reads that destination's copy too, and with
        `only` that copy alone (no fallback on the others). The default ignores it."""
        return None

    def restored_values(self, location: Target, kind: str, query: str) -> set[str]:
        """Return the values a drill's cross-store check reads from restored data at `location`: for `sql` the
        first column of every row as text (NULLs left out), for `keys` the names of the keys matching a pattern,
        for `files` the paths (relative, `/`-separated) of the files matching a glob.

        Raises StoreError when the data cannot be read or the query fails, and for a kind this store cannot answer
        (plans are checked against store kinds when they are loaded: reaching this is a bug or a changed job).
        """
        raise StoreError(f"a {self.kind} store cannot answer '{kind}' queries")
