"""`replica backup JOB`: dump the store into the primary destination, then copy the snapshot to every other."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from replica.actions.context import Context, sidecar_key
from replica.actions.locking import holding_job
from replica.actions.notifications import notifying
from replica.actions.probing import ObjectLockBeside, probing_beside
from replica.actions.repository_locks import stale_lock_clearing
from replica.actions.runs import recorded_run
from replica.catalog.records import utc_now
from replica.config.models import DestinationConfig, JobConfig
from replica.errors import Cancelled, Interrupted, PartialSourceRead, ReplicaError, RepositoryLocked
from replica.execute import Cancellation
from replica.failpoints import failpoint
from replica.restic.backup import backup_stream, backup_tree
from replica.restic.command import Repository
from replica.restic.copy import copy_snapshot
from replica.restic.locks import clear_after_locked
from replica.restic.messages import BackupSummary
from replica.restic.snapshots import forget_snapshot
from replica.stores.base import Canary, Fingerprint, PreparedBackup

# A backup that restic refused for stale locks of this host runs once more after they are removed.
LOCKED_ATTEMPTS = 2


@dataclass(frozen=True)
class CopyOutcome:
    """One secondary destination: the copy's snapshot id, or the error that stopped it."""

    destination: str
    run_id: int
    snapshot_id: str | None
    error: str | None
    duration_seconds: float


@dataclass(frozen=True)
class BackupOutcome:
    """A backup run and its copies. `succeeded` only when every destination holds the snapshot."""

    job: str
    run_id: int
    snapshot_id: str
    taken_at: datetime
    bytes_processed: int
    bytes_added: int
    duration_seconds: float
    copies: list[CopyOutcome] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """Return True when every destination received the snapshot."""
        return all(copy.error is None for copy in self.copies)


@notifying
@holding_job("backup")
def run_backup(context: Context, job_name: str) -> BackupOutcome:
    """Back up a job to its primary destination and copy to the others; return what happened.

    A backup kept out by stale locks of this host only (an exclusive one left by a prune or check killed without
    SIGINT) removes them with plain `restic unlock` (logged, an `unlock` event) and takes the dump again, in the same
    run: restic refuses before it reads anything, and a dump cannot be replayed into a second restic.
    Raises (after recording the run as failed) StoreError when the source cannot be read or its dump failed,
    StorageError/ResticError when the primary destination cannot take the backup (RepositoryLocked naming the
    holder of a lock of another host or a live process), ConfigError for a broken job.
    """
    job, policy = context.job(job_name)
    store = context.store(job, policy)
    primary = job.primary
    repository = context.repository(job, primary)
    catalog = context.catalog
    with recorded_run(catalog, job.name, "backup", destination=primary.name, phase="probe") as run:
        tags = ["replica", f"replica-job={job.name}", f"replica-run={run.run_id}"]
        # The pool outlives the store's context: on a failure the context closes first (a MariaDB store then
        # releases its global read lock and wakes its fingerprint thread), and only then is the thread joined.
        with (
            concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool,
            probing_beside(context, primary, run, object_lock=True) as probe,
        ):
            run.phase("prepare")
            context.progress(f"backing up {store.describe()} to '{primary.name}'")
            canary = None
            # Each step that touches the source first looks whether the probe already failed: a destination
            # that cannot take the backup must not cost the store a canary, a read lock or a table scan.
            probe.cancellation.raise_if_cancelled("backup")
            if job.canary:
                # Written right before the dump: the newest canary a restore brings back is the real recovery point.
                run.phase("canary")
                canary = Canary(run.run_id, utc_now())
                store.write_canary(canary)
                run.details.update(canary_written_at=canary.written_at.isoformat())
            for attempt in range(1, LOCKED_ATTEMPTS + 1):
                taken_at = utc_now()
                probe.cancellation.raise_if_cancelled("backup")
                try:
                    with store.prepare_backup(context.settings.scratch_path, job.name) as prepared:
                        run.phase("backup")
                        failpoint("backup-before-upload")
                        summary, fingerprint = _back_up(context, prepared, repository, tags, pool, probe.cancellation)
                    break
                except RepositoryLocked as error:
                    if attempt == LOCKED_ATTEMPTS:
                        raise
                    # Raises, naming the holder, unless every lock is a stale one of this host (then removed).
                    run.phase("unlock")
                    clearing = stale_lock_clearing(context, job, primary, during="backup", run_id=run.run_id)
                    clear_after_locked(context.restic, repository, clearing, error)
            try:
                probe.settle()
            except BaseException:
                # The destination failed its probe although restic saved a snapshot: not a recovery point.
                _forget_quietly(context, repository, summary.snapshot_id)
                raise
            run.snapshot_id = summary.snapshot_id
        if canary is not None:
            fingerprint = {**fingerprint, "canary": canary.as_document()}
        run.phase("record")
        # The sidecar first: a snapshot only becomes a recovery point in the catalog once its fingerprint is
        # stored in both places, so a failed write leaves nothing half-recorded.
        write_sidecar(
            context,
            job,
            primary,
            summary.snapshot_id,
            summary.snapshot_id,
            taken_at,
            prepared.source.stored_name,
            fingerprint,
        )
        failpoint("backup-before-record")
        catalog.add_snapshot(
            job=job.name,
            destination=primary.name,
            snapshot_id=summary.snapshot_id,
            original_id=summary.snapshot_id,
            backup_run_id=run.run_id,
            taken_at=taken_at,
            bytes_processed=summary.total_bytes_processed,
            bytes_added=summary.data_added,
            stored_name=prepared.source.stored_name,
            fingerprint=fingerprint,
        )
        run.details.update(
            bytes_processed=summary.total_bytes_processed,
            bytes_added=summary.data_added,
            restic_seconds=summary.total_duration_seconds,
        )
        context.progress(
            f"snapshot {summary.snapshot_id} saved to '{primary.name}' "
            f"({summary.total_bytes_processed} bytes read, {summary.data_added} added)"
        )
    outcome = BackupOutcome(
        job=job.name,
        run_id=run.run_id,
        snapshot_id=summary.snapshot_id,
        taken_at=taken_at,
        bytes_processed=summary.total_bytes_processed,
        bytes_added=summary.data_added,
        duration_seconds=(utc_now() - taken_at).total_seconds(),
    )
    for destination in job.destinations[1:]:
        outcome.copies.append(
            _copy(
                context,
                job,
                destination,
                run.run_id,
                summary.snapshot_id,
                taken_at,
                prepared.source.stored_name,
                fingerprint,
            )
        )
    return outcome


def _back_up(
    context: Context,
    prepared: PreparedBackup,
    repository: Repository,
    tags: list[str],
    pool: concurrent.futures.ThreadPoolExecutor,
    cancellation: Cancellation,
) -> tuple[BackupSummary, Fingerprint]:
    cancellation.raise_if_cancelled("backup")
    # The fingerprint reads the same data as restic (the producer's transaction, or the tree as restic walks it)
    # in a thread while restic stores it: its cost hides behind restic's instead of adding to it. A fingerprint
    # that fails stops restic: the snapshot could never become a recovery point.
    fingerprint_future = pool.submit(prepared.fingerprint)
    # Only while this attempt runs: once it ended (restic refused a stale lock, say), the store abandons the walk or
    # cancels the scan, and that failure must not stop the next attempt, which shares the probe's cancellation.
    attempt_running = threading.Event()
    attempt_running.set()
    fingerprint_future.add_done_callback(lambda done: _cancel_on_failure(done, cancellation, attempt_running))
    try:
        with _fingerprint_error_first(fingerprint_future):
            return _store(context, prepared, repository, tags, fingerprint_future, cancellation)
    finally:
        attempt_running.clear()


def _cancel_on_failure(
    done: concurrent.futures.Future[Fingerprint], cancellation: Cancellation, attempt_running: threading.Event
) -> None:
    if attempt_running.is_set() and not done.cancelled() and done.exception() is not None:
        cancellation.cancel("the fingerprint of the source failed")


@contextlib.contextmanager
def _fingerprint_error_first(fingerprint_future: concurrent.futures.Future[Fingerprint]) -> Iterator[None]:
    """Raise the fingerprint's error instead of the Cancelled it caused."""
    try:
        yield
    except Cancelled:
        failed = fingerprint_future.done() and not fingerprint_future.cancelled()
        error = fingerprint_future.exception() if failed else None
        if error is not None:
            raise error from None
        raise


def _store(
    context: Context,
    prepared: PreparedBackup,
    repository: Repository,
    tags: list[str],
    fingerprint_future: concurrent.futures.Future[Fingerprint],
    cancellation: Cancellation,
) -> tuple[BackupSummary, Fingerprint]:
    """Run restic on the prepared source; return its summary and the fingerprint once both are done."""
    source = prepared.source
    if source.producer is None:
        assert source.directory is not None
        try:
            summary = backup_tree(
                context.restic,
                repository,
                source.directory,
                tags=tags,
                host=context.host,
                exclude=source.exclude,
                cancellation=cancellation,
            )
            failpoint("backup-after-snapshot")
        except PartialSourceRead as error:
            # restic saved a snapshot of part of the tree: it must never become a recovery point.
            if error.snapshot_id:
                _forget_quietly(context, repository, error.snapshot_id)
            raise PartialSourceRead(
                error.destination, f"{error.detail}; the partial snapshot was discarded", None
            ) from None
        try:
            return summary, fingerprint_future.result()
        except BaseException:
            _forget_quietly(context, repository, summary.snapshot_id)
            raise
    outcome = backup_stream(
        context.restic,
        repository,
        source.producer,
        stored_name=source.stored_name,
        tags=tags,
        host=context.host,
        cancellation=cancellation,
    )
    failpoint("backup-after-snapshot")
    try:
        prepared.verify_producer(outcome.producer)
        fingerprint = prepared.complete_fingerprint(fingerprint_future.result(), outcome.producer)
    except BaseException:
        # restic 0.14 saved a snapshot of a failed or truncated dump, or one whose fingerprint could not be taken:
        # it must never become a recovery point, nor linger in the repository.
        _forget_quietly(context, repository, outcome.summary.snapshot_id)
        raise
    return outcome.summary, fingerprint


def _forget_quietly(context: Context, repository: Repository, snapshot_id: str) -> None:
    try:
        forget_snapshot(context.restic, repository, snapshot_id)
    except ReplicaError as error:
        context.progress(f"warning: could not forget unusable snapshot {snapshot_id}: {error}")


def write_sidecar(
    context: Context,
    job: JobConfig,
    destination: DestinationConfig,
    snapshot_id: str,
    original_id: str,
    taken_at: datetime,
    stored_name: str,
    fingerprint: Fingerprint,
) -> None:
    """Store the fingerprint beside the repository so a verifier without this catalog can compare."""
    context.storage(destination).put_json(
        destination.bucket,
        sidecar_key(destination, snapshot_id),
        {
            "format": 1,
            "job": job.name,
            "snapshot_id": snapshot_id,
            "original_id": original_id,
            "taken_at": taken_at.isoformat(),
            "stored_name": stored_name,
            "fingerprint": fingerprint,
        },
    )


def _copy(
    context: Context,
    job: JobConfig,
    destination: DestinationConfig,
    backup_run_id: int,
    snapshot_id: str,
    taken_at: datetime,
    stored_name: str,
    fingerprint: Fingerprint,
) -> CopyOutcome:
    """Copy one snapshot to one secondary destination as its own recorded run; never raises for its failure."""
    started = utc_now()
    source = context.repository(job, job.primary)
    run_id = -1
    try:
        with recorded_run(
            context.catalog,
            job.name,
            "copy",
            destination=destination.name,
            phase="probe",
            parent_run_id=backup_run_id,
        ) as run:
            run_id = run.run_id
            context.probe(destination)
            run.phase("copy")
            context.progress(f"copying snapshot {snapshot_id} to '{destination.name}'")
            object_lock = ObjectLockBeside(context, destination)
            clearing = stale_lock_clearing(context, job, destination, during="copy", run_id=run_id)
            copied = copy_snapshot(context.restic, source, context.repository(job, destination), snapshot_id, clearing)
            failpoint("copy-after-restic")
            object_lock.record(run)
            run.snapshot_id = copied.short_id
            run.phase("record")
            write_sidecar(context, job, destination, copied.short_id, snapshot_id, taken_at, stored_name, fingerprint)
            context.catalog.add_snapshot(
                job=job.name,
                destination=destination.name,
                snapshot_id=copied.short_id,
                original_id=snapshot_id,
                backup_run_id=backup_run_id,
                taken_at=taken_at,
                bytes_processed=0,
                bytes_added=0,
                stored_name=stored_name,
                fingerprint=fingerprint,
            )
            run.details.update(original_snapshot_id=snapshot_id)
    except Interrupted:
        raise  # stopped on purpose: the remaining destinations must not start
    except ReplicaError as error:
        context.progress(f"copy to '{destination.name}' failed: {error}")
        return CopyOutcome(destination.name, run_id, None, str(error), (utc_now() - started).total_seconds())
    context.progress(f"snapshot {snapshot_id} copied to '{destination.name}' as {copied.short_id}")
    return CopyOutcome(destination.name, run_id, copied.short_id, None, (utc_now() - started).total_seconds())
