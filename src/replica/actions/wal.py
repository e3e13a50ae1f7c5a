"""`replica wal-push` and `replica wal-fetch`: PostgreSQL's archive_command and restore_command.

Both run as the database server's user, once per WAL file: they read the job's configuration and passwords, talk
to S3 and never open the catalog (the server's user need not reach it, and one row per segment would swamp it).
A push returns only once the file is durable on every destination, primary first: PostgreSQL keeps the file and
calls again until the command succeeds, so a destination that is down delays archiving and loses nothing. A
repeated push of the same file is a success; another file under an archived name is refused loudly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from replica.actions.context import Context
from replica.config.models import DestinationConfig, JobConfig, PostgresqlStoreConfig
from replica.errors import ReplicaError, StorageError, UsageError
from replica.files import write_atomically
from replica.wal.archive import WalArchive
from replica.wal.keys import CACHE_FOLDER
from replica.wal.segments import is_archivable_name


class WalNotArchived(ReplicaError):
    """No destination holds the WAL file asked for, and every destination answered (the end of the archive)."""


@dataclass(frozen=True)
class PushOutcome:
    """One destination's answer to a push: "stored", "present" (the same content was there), or the error."""

    destination: str
    result: str | None
    error: str | None = None


def physical_job(context: Context, job_name: str) -> JobConfig:
    """Return a job whose store is PostgreSQL in physical mode. Raises UsageError for any other, ConfigError."""
    job, _ = context.job(job_name)
    if not isinstance(job.store, PostgresqlStoreConfig) or job.store.mode != "physical":
        raise UsageError(f"job '{job.name}' does not archive WAL: its store is not PostgreSQL in mode 'physical'")
    return job


def wal_archive(context: Context, job: JobConfig, destination: DestinationConfig) -> WalArchive:
    """Return the WAL archive of a job at one destination. Raises ConfigError when it has no password."""
    password = context.repository(job, destination).password
    # One cache folder per operating-system user: the server's user (wal-push, once per segment) must not find a
    # folder root made first and closed to it, which would cost every push a key derivation (0.5 s, 128 MiB).
    key_cache = context.settings.state_dir / f"{CACHE_FOLDER}-{os.geteuid()}"
    return WalArchive(context.storage(destination), destination, job.name, password, key_cache)


def wal_archives(context: Context, job: JobConfig) -> list[WalArchive]:
    """Return the job's WAL archives, one per destination in the job's order (the first is the primary)."""
    return [wal_archive(context, job, destination) for destination in job.destinations]


def push_wal_file(context: Context, job_name: str, path: Path) -> list[PushOutcome]:
    """Archive one WAL file on every destination of a physical job; return each destination's outcome.

    Raises UsageError for a file that is not a WAL file, StorageError (after trying every destination) when any
    destination does not hold it afterwards: WalConflict when one holds other content under its name.
    """
    job = physical_job(context, job_name)
    name = path.name
    if not is_archivable_name(name):
        raise UsageError(f"{path}: not a WAL segment, timeline history or backup history file name")
    try:
        content = path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read WAL file {path}: {error.strerror}") from None
    outcomes: list[PushOutcome] = []
    failures: list[tuple[str, StorageError]] = []
    for destination in job.destinations:
        try:
            result = wal_archive(context, job, destination).push(name, content)
        except StorageError as error:
            failures.append((destination.name, error))
            outcomes.append(PushOutcome(destination.name, None, str(error)))
            continue
        outcomes.append(PushOutcome(destination.name, result))
    if failures:
        # The first failure's class decides the exit code (a conflict is not a connectivity problem).
        # The destination is named: the server's log shows only this line, and an endpoint alone may not say which.
        failed, first = failures[0]
        others = f" (and {len(failures) - 1} more destination(s) failed)" if len(failures) > 1 else ""
        raise type(first)(f"{name} not archived on destination '{failed}': {first}{others}")
    return outcomes


def fetch_wal_file(
    context: Context, job_name: str, name: str, path: Path, destination_name: str | None, *, only: bool = False
) -> str:
    """Write an archived WAL file to `path`; return the name of the destination it came from.

    By default the named destination (default the primary) is asked first, then the others in the job's order: a
    file missing or damaged on one is taken from another. Raises WalNotArchived when every destination answered that
    it has no such file, and the first StorageError (WalDamaged, StorageUnreachable...) when none could deliver it
    and at least one failed: recovery must then stop rather than end early at a point the archive does go past.

    With `only`, the named destination alone is asked and its answer is final (a restore from, or a verification
    of, that copy: it must not need, nor silently use, another destination): WalNotArchived when it has no such
    file, its StorageError when it cannot deliver it.
    """
    job = physical_job(context, job_name)
    if not is_archivable_name(name):
        raise UsageError(f"'{name}' is not a WAL segment, timeline history or backup history file name")
    first = context.destination(job, destination_name)
    others = [] if only else [destination for destination in job.destinations if destination.name != first.name]
    failures: list[StorageError] = []
    for destination in [first, *others]:
        try:
            content = wal_archive(context, job, destination).fetch(name)
        except StorageError as error:
            failures.append(error)
            continue
        if content is not None:
            if failures:
                context.progress(f"{name} taken from '{destination.name}': {failures[0]}")
            write_atomically(path, content)  # the server never sees half a segment
            return destination.name
    if failures:
        raise failures[0]
    where = f"destination '{first.name}'" if only else "any destination"
    raise WalNotArchived(f"{name} is not archived on {where} of job '{job.name}'")
