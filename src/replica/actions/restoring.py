"""Getting a snapshot's data into a target, shared by `verify` (scratch target) and `restore` (named target)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from replica.actions.context import Context
from replica.catalog.records import CheckOutcome
from replica.errors import (
    Interrupted,
    ProcessFailed,
    ReplicaError,
    RepositoryCorrupt,
    ResticTimeout,
    StorageError,
    TargetFull,
    WrongPassword,
)
from replica.execute import Completed, run_pipeline
from replica.restic.command import Repository, classify_failure
from replica.restic.restore import dump_command, dump_to_file, restore_tree
from replica.stores.base import Store, Target

NO_SPACE = re.compile(r"no space left on device", re.I)


@dataclass(frozen=True)
class Restored:
    """The `restore` check, and the damage restic reported when that is why it failed (to confirm at rest)."""

    check: CheckOutcome
    damage: RepositoryCorrupt | None = None


@dataclass(frozen=True)
class SnapshotRef:
    """The snapshot to restore: its id in the destination and the name it stores its data under."""

    snapshot_id: str
    stored_name: str


def restore_snapshot(
    context: Context,
    store: Store,
    repository: Repository,
    snapshot: SnapshotRef,
    target: Target,
    *,
    shared_lock: bool,
) -> Restored:
    """Bring a snapshot's data into `target` and return the `restore` check (never raises for restore failures),
    with restic's damage report when it failed on damaged data.

    `shared_lock` takes restic's shared lock so that a prune cannot remove what is being read: a restore by hand
    needs it; a verification holds the job's lock, which already keeps the job's prune out, and saves the cost.

    A failed restore leaves the target to be discarded: restic 0.14 can leave full-size files of wrong content.
    Raises only for failures that say nothing about the data (wrong password, unreachable storage, a full target,
    a process stopped at its deadline or stall).
    """
    method = store.restore_method(target, snapshot.stored_name)
    started = time.monotonic()
    try:
        if method.kind == "tree":
            assert method.unpack_directory is not None
            restore_tree(
                context.restic, repository, snapshot.snapshot_id, method.unpack_directory, shared_lock=shared_lock
            )
        elif method.kind == "file":
            assert method.output_path is not None
            dump_to_file(
                context.restic,
                repository,
                snapshot.snapshot_id,
                snapshot.stored_name,
                method.output_path,
                shared_lock=shared_lock,
            )
        else:
            assert method.consumer is not None
            producer = dump_command(
                context.restic, repository, snapshot.snapshot_id, snapshot.stored_name, shared_lock=shared_lock
            )
            outcome = run_pipeline(producer, method.consumer, timeout_seconds=producer.timeout_seconds)
            if not outcome.producer.succeeded:
                raise classify_failure(outcome.producer, repository.name)
            if not outcome.consumer.succeeded and NO_SPACE.search(outcome.consumer.stderr_tail):
                # The restore tool's server ran out of disk ("could not extend file ...: No space left on device").
                raise TargetFull(f"{target.description} ran out of space: {_no_space_line(outcome.consumer)}")
            outcome.consumer.raise_for_failure()
    except (ProcessFailed, ReplicaError) as error:
        if _says_nothing_about_data(error):
            raise
        failed = CheckOutcome(
            "restore",
            False,
            True,
            f"restore of snapshot {snapshot.snapshot_id} failed: {error}",
            time.monotonic() - started,
        )
        return Restored(failed, error if isinstance(error, RepositoryCorrupt) else None)
    duration = time.monotonic() - started
    detail = f"snapshot {snapshot.snapshot_id} restored in {duration:.1f}s"
    return Restored(CheckOutcome("restore", True, True, detail, duration))


def _says_nothing_about_data(error: Exception) -> bool:
    # An interrupted restore was stopped by us (daemon shutdown), a full target or a stalled process are faults of
    # this side: none proves anything about the data either.
    if isinstance(error, ProcessFailed) and error.timed_out:
        return True
    return isinstance(error, (WrongPassword, StorageError, Interrupted, TargetFull, ResticTimeout))


def _no_space_line(completed: Completed) -> str:
    lines = [line for line in completed.stderr_tail.splitlines() if NO_SPACE.search(line)]
    return lines[-1].strip()
