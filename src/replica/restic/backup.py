"""`restic backup`: argv for a stream (`--stdin`) or a tree, and the summary parsed from `--json`."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from replica.errors import PartialSourceRead, ResticError
from replica.execute import Cancellation, Command, Completed, run, run_pipeline
from replica.restic.command import EXIT_PARTIAL_READ, Repository, Restic, raise_for_restic
from replica.restic.messages import BackupSummary, UnexpectedOutput, parse_backup_summary


@dataclass(frozen=True)
class StreamBackupOutcome:
    """A stream backup: what the producer did, and the summary restic printed (it exits 0 even on a bad stream)."""

    producer: Completed
    summary: BackupSummary


def backup_arguments(
    *, tags: Sequence[str], host: str, stdin_filename: str | None = None, exclude: Sequence[str] = ()
) -> list[str]:
    """Return restic's arguments for a backup of stdin (named `stdin_filename`) or of the current directory."""
    arguments = ["backup", "--host", host]
    for tag in tags:
        arguments += ["--tag", tag]
    if stdin_filename is not None:
        return [*arguments, "--stdin", "--stdin-filename", stdin_filename.lstrip("/")]
    for pattern in exclude:
        arguments += ["--exclude", pattern]
    return [*arguments, "."]


def _summary(completed: Completed, destination: str) -> BackupSummary:
    try:
        return parse_backup_summary(completed.stdout)
    except UnexpectedOutput as error:
        raise ResticError(destination, str(error)) from None


def backup_stream(
    restic: Restic,
    repository: Repository,
    producer: Command,
    *,
    stored_name: str,
    tags: Sequence[str],
    host: str,
    cancellation: Cancellation | None = None,
) -> StreamBackupOutcome:
    """Stream `producer`'s stdout into `restic backup --stdin` and return both outcomes.

    Raises a classified ResticError when restic itself failed (then no snapshot was saved), Cancelled when
    `cancellation` stopped both. A failed producer is NOT raised here: restic 0.14 still saved a snapshot, which
    the caller must forget.
    """
    consumer = restic.command(
        repository, backup_arguments(tags=tags, host=host, stdin_filename=stored_name), long_running=True
    )
    outcome = run_pipeline(
        producer,
        consumer,
        timeout_seconds=min(producer.timeout_seconds, consumer.timeout_seconds),
        cancellation=cancellation,
    )
    raise_for_restic(outcome.consumer, repository.name)
    return StreamBackupOutcome(producer=outcome.producer, summary=_summary(outcome.consumer, repository.name))


def backup_tree(
    restic: Restic,
    repository: Repository,
    directory: Path,
    *,
    tags: Sequence[str],
    host: str,
    exclude: Sequence[str],
    cancellation: Cancellation | None = None,
) -> BackupSummary:
    """Back up the tree below `directory` (as ".", so it restores straight into a target) and return the summary.

    Exit code 3 (some files unreadable, snapshot saved) is a failure here: a partial tree is not a recovery point.
    Raises a classified ResticError, Cancelled when `cancellation` stopped restic.
    """
    command = restic.command(
        repository, backup_arguments(tags=tags, host=host, exclude=exclude), long_running=True, cwd=directory
    )
    completed = run(command, cancellation=cancellation)
    if completed.exit_code == EXIT_PARTIAL_READ and not completed.timed_out:
        unreadable = [line for line in completed.stderr_tail.splitlines() if line.strip()]
        snapshot_id = None
        with contextlib.suppress(ResticError):
            snapshot_id = _summary(completed, repository.name).snapshot_id
        raise PartialSourceRead(repository.name, unreadable[0] if unreadable else "exit code 3", snapshot_id)
    raise_for_restic(completed, repository.name)
    return _summary(completed, repository.name)
