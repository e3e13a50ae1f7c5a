"""`replica prune`: apply a job's retention in each destination, never touching what the hard rules protect."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from replica.actions.context import Context
from replica.actions.notifications import notifying
from replica.actions.probing import ObjectLockBeside
from replica.actions.recovery_points import verified_points
from replica.actions.repository_locks import holding_repository, stale_lock_clearing
from replica.actions.runs import RunRecorder, recorded_run
from replica.actions.wal_retention import WalRetention, planned_wal_retention, remove_expired_wal
from replica.catalog.models import Snapshot
from replica.catalog.records import utc_now
from replica.config.models import DestinationConfig, JobConfig, PolicyConfig, is_physical
from replica.errors import FALLBACK_STATE, Interrupted, ReplicaError, failure_state
from replica.failpoints import failpoint
from replica.policy.retention import NOTHING_VERIFIED, RetentionCandidate, RetentionDecision, apply_retention
from replica.restic.prune import forget_and_prune
from replica.restic.snapshots import list_snapshots


@dataclass
class DestinationPrune:
    """Retention in one destination: the decision, and the run that carried it out (none for a dry run)."""

    destination: str
    decision: RetentionDecision
    run_id: int | None = None
    error: str | None = None
    # The error that failed the run, when one did (the CLI's exit code says what kind of failure it was).
    exception: ReplicaError | None = field(default=None, repr=False)
    # A physical job's WAL removed (in a dry run: to be removed) with the snapshots; None for other jobs.
    wal: WalRetention | None = None


@dataclass
class PruneOutcome:
    """Retention of a job in every destination it was applied to."""

    job: str
    dry_run: bool
    destinations: list[DestinationPrune] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """Return True when every destination's retention was carried out."""
        return all(destination.error is None for destination in self.destinations)

    def summary(self) -> str:
        """Return one line: removed and kept counts per destination, or the error."""
        return "; ".join(
            f"{d.destination}: "
            + (f"FAILED: {d.error}" if d.error else f"removed {len(d.decision.remove)}, kept {len(d.decision.keep)}")
            for d in self.destinations
        )


def decide_retention(context: Context, job: JobConfig, policy: PolicyConfig, destination: str) -> RetentionDecision:
    """Return the retention decision for one destination from the catalog (no restic call)."""
    rows = context.catalog.snapshots(job.name, destination)
    verified = {
        point.snapshot.snapshot_id
        for point in verified_points(context.catalog, job.name)
        if point.snapshot.destination == destination
    }
    decision = apply_retention(
        [RetentionCandidate(row.snapshot_id, row.taken_at) for row in rows if row.usable],
        policy.retention,
        verified_ids=verified,
        now=utc_now(),
        rpo=policy.rpo,
    )
    add_unusable(decision, [row for row in rows if not row.usable], any_verified=bool(verified))
    return decision


def add_unusable(decision: RetentionDecision, unusable: Sequence[Snapshot], *, any_verified: bool) -> None:
    """Add a destination's unusable snapshots to a retention decision, with their reasons.

    An unusable snapshot (adopted by reconciliation after a crash) is never a recovery point: it takes no keep slot
    and is removed as soon as the destination has a verified point. Before that, nothing at all is removed.
    """
    for row in unusable:
        candidate = RetentionCandidate(row.snapshot_id, row.taken_at)
        if any_verified:
            decision.remove.append(candidate)
            decision.reasons[row.snapshot_id] = [f"unusable, never a recovery point: {row.unusable_reason or '?'}"]
        else:
            decision.keep.append(candidate)
            decision.reasons[row.snapshot_id] = [NOTHING_VERIFIED]


@notifying
def run_prune(context: Context, job_name: str, *, dry_run: bool, destination_name: str | None = None) -> PruneOutcome:
    """Apply retention in every destination of a job (or the named one) and return what was kept and removed.

    A dry run decides and records nothing. Otherwise the job's lock is held, each destination's prune is a run of
    its own, and a destination that fails (unreachable, locked) does not stop the others: its error is in the
    outcome. The locks of the other jobs sharing one of its repositories are held too. Raises JobBusy when another
    run holds the job or one of those, ConfigError/UsageError for a bad job or destination.
    """
    job, policy = context.job(job_name)
    destinations = [context.destination(job, destination_name)] if destination_name else list(job.destinations)
    outcome = PruneOutcome(job.name, dry_run)
    if dry_run:
        for destination in destinations:
            decision = decide_retention(context, job, policy, destination.name)
            planned = DestinationPrune(destination.name, decision)
            if is_physical(job):
                kept = [snapshot.snapshot_id for snapshot in decision.keep]
                planned.wal = planned_wal_retention(context, job, destination, kept)
            outcome.destinations.append(planned)
        return outcome
    # Under the locks of every job sharing a repository with this one: a prune never overlaps their backups.
    with holding_repository(context, job, "prune"):
        for destination in destinations:
            outcome.destinations.append(_prune_destination(context, job, policy, destination))
    return outcome


def _prune_destination(
    context: Context, job: JobConfig, policy: PolicyConfig, destination: DestinationConfig
) -> DestinationPrune:
    with recorded_run(context.catalog, job.name, "prune", destination=destination.name, phase="decide") as run:
        result = _prune_snapshots(context, job, policy, destination, run)
        if result.error is None and is_physical(job):
            _prune_wal(context, job, destination, run, result)
        return result


def _prune_wal(
    context: Context, job: JobConfig, destination: DestinationConfig, run: RunRecorder, result: DestinationPrune
) -> None:
    """Remove the WAL no base backup retained in the destination needs any more, after its snapshots were marked
    pruned (a failure leaves the WAL for the next prune: keeping too much loses nothing)."""
    run.phase("wal")
    try:
        result.wal = remove_expired_wal(context, job, destination)
    except Interrupted:
        raise
    except ReplicaError as error:
        run.fail(f"WAL retention: {error}", failure_state(error))
        result.error, result.exception = f"WAL retention: {error}", error
        return
    run.details.update(wal_removed=len(result.wal.expired), wal_kept_from=result.wal.keep_from)


def _prune_snapshots(
    context: Context, job: JobConfig, policy: PolicyConfig, destination: DestinationConfig, run: RunRecorder
) -> DestinationPrune:
    """Forget and prune the snapshots retention removes from one destination, within the destination's run."""
    # Decided under the lock, after the run is recorded: no backup or verify of this job can change the
    # facts between the decision and the forget.
    decision = decide_retention(context, job, policy, destination.name)
    result = DestinationPrune(destination.name, decision, run.run_id)
    removed_ids = [snapshot.snapshot_id for snapshot in decision.remove]
    run.details.update(kept=len(decision.keep), removed=len(removed_ids), removed_ids=removed_ids)
    if not removed_ids:
        return result
    try:
        run.phase("probe")
        context.probe(destination)
        # The ids go to the catalog before restic removes anything: a crash after the forget leaves an abandoned
        # run that says which rows reconciliation may mark pruned (replica.actions.reconcile).
        run.phase("forget", removed_ids=removed_ids)
        context.progress(f"removing {len(removed_ids)} snapshot(s) from '{destination.name}'")
        # On an Object Lock bucket the deletes only add delete markers; status shows which destinations are.
        object_lock = ObjectLockBeside(context, destination)
        still_listed = forget_and_prune(
            context.restic,
            context.repository(job, destination),
            removed_ids,
            stale_lock_clearing(context, job, destination, during="prune", run_id=run.run_id),
        )
        failpoint("prune-after-forget")
        object_lock.record(run)
    except Interrupted:
        raise  # stopped on purpose: the remaining destinations must not start
    except ReplicaError as error:
        run.fail(str(error), failure_state(error))
        result.error, result.exception = str(error), error
        # forget may have removed some before failing (in prune, or halfway): mark what is really gone, so
        # that no later restore or verify picks a snapshot that no longer exists.
        _mark_gone(context, job, destination, removed_ids, run.run_id)
        return result
    # Only what restic really removed is marked: a snapshot still listed stays a candidate for the next prune.
    _mark_pruned(context, job, destination, set(removed_ids) - set(still_listed), run.run_id)
    if still_listed:
        result.error = f"restic did not remove {', '.join(still_listed)} (still listed after forget)"
        run.fail(result.error, FALLBACK_STATE)
    return result


def _mark_pruned(context: Context, job: JobConfig, destination: DestinationConfig, gone: set[str], run_id: int) -> None:
    rows: list[Snapshot] = [
        row for row in context.catalog.snapshots(job.name, destination.name) if row.snapshot_id in gone
    ]
    context.catalog.mark_pruned([row.id for row in rows], run_id)


def _mark_gone(
    context: Context, job: JobConfig, destination: DestinationConfig, removed_ids: list[str], run_id: int
) -> None:
    """After a failed forget, mark the snapshots the repository no longer lists; if it cannot be listed either,
    mark nothing (the next prune forgets them again: restic skips ids already gone)."""
    try:
        listed = list_snapshots(context.restic, context.repository(job, destination))
    except ReplicaError:
        return
    _mark_pruned(
        context, job, destination, {i for i in removed_ids if not any(s.id.startswith(i) for s in listed)}, run_id
    )
