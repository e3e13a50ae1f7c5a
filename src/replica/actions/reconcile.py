"""Startup reconciliation: after a crash, make the catalog agree with the repositories again.

A process killed mid-run (kill -9, OOM, power cut; see `replica.failpoints`) leaves its run `running`; the sweep of
the daemon and of `run-due` marks it `abandoned`. It may also leave a repository and the catalog disagreeing:

- a backup killed after restic saved its snapshot, before the catalog recorded it: a snapshot tagged
  `replica-run=N` that the catalog does not know. It is **adopted as unusable** (`usable=False` with the reason),
  never forgotten here and never made a recovery point: the dump it holds may not have completed and its
  fingerprint may never have been taken, so nothing proves its content. Adopting needs only a read of the
  repository (`snapshots --no-lock`) and a catalog row, so it never contends with a backup running meanwhile for
  restic's lock, and it keeps the evidence until retention removes it (an unusable snapshot takes no keep slot and
  goes at the next prune of a destination that has a verified point). A forget at start-up would need restic's
  exclusive lock, and would destroy the one trace of what happened.
- a copy killed after `restic copy` saved it: the secondary holds a snapshot whose `original` names the primary's
  snapshot. It is **adopted as that snapshot's copy** (usable, unverified like every new copy) only when proven
  identical: its original is a usable snapshot the catalog recorded, and both have the same root tree id. restic
  names every blob and tree by the SHA-256 of its content and a tree names its entries' content, so equal root
  trees are equal files with equal bytes; `restic copy` saves the snapshot only after every blob it refers to is
  stored. Otherwise it is adopted as unusable, like an orphan backup.
- a prune killed after `restic forget --prune`: rows the catalog still lists as present. The run recorded the ids
  it was removing before restic started; those the repository no longer lists are marked pruned by that run.

A snapshot is an orphan when the catalog does not know its id, it carries `replica-job=JOB` and `replica-run=N`,
and no live run can still record it (run N is not `running`, and no `running` copy run of N targets that
destination). Each decision is a `reconcile` event in the verification log, naming the snapshot and the run.
Listing a repository costs ~0.5 s, so the sweep reconciles only the destinations its newly abandoned runs touched;
`replica reconcile [JOB]` compares every destination of the job(s) with the catalog.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from replica.actions.backup import write_sidecar
from replica.actions.context import Context
from replica.catalog.models import Run, Snapshot
from replica.catalog.reconciliation import Reconciliation
from replica.catalog.records import ABANDONED, RUNNING, utc_now
from replica.config.models import DestinationConfig, JobConfig
from replica.errors import ReplicaError
from replica.restic.messages import ResticSnapshot
from replica.restic.snapshots import list_snapshots

logger = logging.getLogger(__name__)

RUN_TAG_PREFIX = "replica-run="
JOB_TAG_PREFIX = "replica-job="
# Kinds of run whose crash can leave a repository and the catalog disagreeing.
RECONCILED_KINDS = ("backup", "copy", "prune")
# Clocks of the run's recording (the catalog's) and of restic's snapshot time (the same host) agree to well within.
RUN_TIME_SLACK = timedelta(minutes=5)
ADOPTED, UNUSABLE, PRUNED, FAILED, UNKNOWN_RUN = "adopted", "unusable", "pruned", "failed", "unknown-run"


@dataclass(frozen=True)
class Reconciled:
    """One thing reconciliation did (or could not do): the snapshot, the run it came from, the outcome."""

    job: str
    destination: str
    snapshot_id: str | None
    run_id: int | None
    outcome: str  # adopted | unusable | pruned | unknown-run | failed
    detail: str

    def describe(self) -> str:
        """Return one line for the operator."""
        what = f"snapshot {self.snapshot_id}" if self.snapshot_id else "destination"
        return f"reconcile '{self.job}' '{self.destination}': {what} {self.outcome}: {self.detail}"


def run_tag(snapshot: ResticSnapshot) -> int | None:
    """Return the run id a snapshot is tagged with (`replica-run=N`), or None."""
    for tag in snapshot.tags:
        if tag.startswith(RUN_TAG_PREFIX) and tag[len(RUN_TAG_PREFIX) :].isdigit():
            return int(tag[len(RUN_TAG_PREFIX) :])
    return None


def unknown_snapshots(listed: Iterable[ResticSnapshot], known_ids: Collection[str]) -> list[ResticSnapshot]:
    """Return the listed snapshots tagged with a replica run whose id (full, or the catalog's short form) the
    catalog does not know."""
    by_short = {known[:8]: known for known in known_ids}
    unknown = []
    for snapshot in listed:
        known = by_short.get(snapshot.id[:8])
        if run_tag(snapshot) is not None and not (known is not None and snapshot.id.startswith(known)):
            unknown.append(snapshot)
    return unknown


def made_by(run: Run, job: str, orphan: ResticSnapshot) -> bool:
    """Return True when `orphan` can be the snapshot of backup run `run` of `job`: its run id tag alone is no proof
    (another host's catalog sharing the repository, or a catalog restored from an older backup, reuses run ids), so
    the run must be a backup of this job, on the host that took the snapshot, and the snapshot's time must fall
    within the run (a copy keeps its original's host and time)."""
    if run.kind != "backup" or run.job != job or run.host != orphan.hostname:
        return False
    ended = run.finished_at or utc_now()
    return run.started_at - RUN_TIME_SLACK <= orphan.time <= ended + RUN_TIME_SLACK


def may_still_be_recorded(run: Run, live_runs: Iterable[Run], destination: str) -> bool:
    """Return True when a live run may still record a snapshot tagged with `run`: the run itself is running, or a
    running copy of it targets `destination` (a copy keeps its original's tags)."""
    if run.status == RUNNING:
        return True
    return any(
        live.kind == "copy" and live.parent_run_id == run.id and live.destination == destination for live in live_runs
    )


def proven_original(
    copy: ResticSnapshot, primary_rows: Sequence[Snapshot], primary_listed: Sequence[ResticSnapshot]
) -> Snapshot | None:
    """Return the recorded, usable primary snapshot `copy` is proven identical to (same root tree), or None."""
    if not copy.original or not copy.tree:
        return None
    original = next((listed for listed in primary_listed if listed.id == copy.original), None)
    if original is None or original.tree != copy.tree:
        return None
    return next(
        (
            row
            for row in primary_rows
            if row.usable and row.pruned_at is None and original.id.startswith(row.snapshot_id)
        ),
        None,
    )


def reconcile_abandoned(context: Context, runs: Sequence[Run]) -> list[Reconciled]:
    """Reconcile the destinations that these just-abandoned runs touched; return what was done. Never raises: a
    destination that cannot be listed is a `failed` reconcile event (`replica reconcile JOB` tries again)."""
    touched: dict[str, set[str]] = {}
    for run in runs:
        if run.kind in RECONCILED_KINDS and run.destination:
            touched.setdefault(run.job, set()).add(run.destination)
    results: list[Reconciled] = []
    for job_name, names in sorted(touched.items()):
        try:
            job, _ = context.job(job_name)
        except ReplicaError as error:  # the job's file is gone or broken: nothing to list
            logger.warning("cannot reconcile job '%s': %s", job_name, error)
            continue
        destinations = [destination for destination in job.destinations if destination.name in names]
        results += reconcile_destinations(context, job, destinations)
    return results


def reconcile_job(context: Context, job_name: str) -> list[Reconciled]:
    """Compare every destination of a job with the catalog and reconcile; return what was done.

    Raises ConfigError/UsageError for a job that is not configured or broken; never for a destination.
    """
    job, _ = context.job(job_name)
    return reconcile_destinations(context, job, list(job.destinations))


def reconcile_destinations(
    context: Context, job: JobConfig, destinations: Sequence[DestinationConfig]
) -> list[Reconciled]:
    """Reconcile each destination of `job`; one that fails does not stop the others. Returns what was done."""
    reconciler = _Reconciler(context, job)
    results: list[Reconciled] = []
    for destination in destinations:
        try:
            results += reconciler.destination(destination)
        except ReplicaError as error:
            detail = f"could not list the repository ({error}); run `replica reconcile {job.name}` later"
            context.catalog.reconciliation.record_failure(job.name, destination.name, None, detail)
            results.append(Reconciled(job.name, destination.name, None, None, FAILED, detail))
    for result in results:
        logger.warning("%s", result.describe())
    return results


class _Reconciler:
    """The reconciliation of one job: lists the primary at most once (for the proof of copies)."""

    def __init__(self, context: Context, job: JobConfig) -> None:
        self._context = context
        self._job = job
        self._records: Reconciliation = context.catalog.reconciliation
        self._primary_listed: list[ResticSnapshot] | None = None

    def _list(self, destination: DestinationConfig) -> list[ResticSnapshot]:
        self._context.probe(destination)  # a silent endpoint fails in seconds instead of hanging restic
        repository = self._context.repository(self._job, destination)
        return list_snapshots(self._context.restic, repository, tags=[f"{JOB_TAG_PREFIX}{self._job.name}"])

    def _primary(self) -> list[ResticSnapshot]:
        if self._primary_listed is None:
            self._primary_listed = self._list(self._job.primary)
        return self._primary_listed

    def destination(self, destination: DestinationConfig) -> list[Reconciled]:
        listed = self._list(destination)
        if destination.name == self._job.primary.name:
            self._primary_listed = listed
        rows = self._context.catalog.snapshots(self._job.name, destination.name, include_pruned=True)
        results = self._mark_pruned(destination, rows, listed)
        orphans = unknown_snapshots(listed, [row.snapshot_id for row in rows])
        if not orphans:
            return results
        runs = self._records.runs_by_id(sorted({run_tag(orphan) or 0 for orphan in orphans}))
        live = self._records.runs_of_job(self._job.name, [RUNNING], ["backup", "copy"])
        for orphan in orphans:
            run_id = run_tag(orphan) or 0
            run = runs.get(run_id)
            if run is None or not made_by(run, self._job.name, orphan):
                detail = (
                    f"tagged with run {run_id}, which this catalog does not know: left as it is"
                    if run is None
                    else f"tagged with run {run_id}, which is no backup of this job on {orphan.hostname} at "
                    f"{orphan.time.isoformat(timespec='seconds')} (another catalog's run?): left as it is"
                )
                self._records.record_failure(
                    self._job.name, destination.name, None, f"snapshot {orphan.short_id}: {detail}"
                )
                results.append(Reconciled(self._job.name, destination.name, orphan.short_id, None, UNKNOWN_RUN, detail))
            elif not may_still_be_recorded(run, live, destination.name):
                results.append(self._adopt(destination, orphan, run))
        return results

    def _adopt(self, destination: DestinationConfig, orphan: ResticSnapshot, run: Run) -> Reconciled:
        original = None
        if destination.name != self._job.primary.name and orphan.original:
            primary_rows = self._context.catalog.snapshots(self._job.name, self._job.primary.name)
            original = proven_original(orphan, primary_rows, self._primary())
        figures = {"tagged_run": run.id, "run_kind": run.kind, "run_status": run.status}
        if original is not None:
            # The copy's fingerprint is its original's (proven identical); the sidecar first, as a copy does.
            write_sidecar(
                self._context,
                self._job,
                destination,
                orphan.short_id,
                original.snapshot_id,
                original.taken_at,
                original.stored_name,
                original.fingerprint,
            )
            detail = f"copy of {original.snapshot_id} (same root tree), left unrecorded by run {run.id} ({run.status})"
            adopted = self._records.adopt_snapshot(
                job=self._job.name,
                destination=destination.name,
                snapshot_id=orphan.short_id,
                original_id=original.snapshot_id,
                backup_run_id=original.backup_run_id,
                taken_at=original.taken_at,
                stored_name=original.stored_name,
                fingerprint=original.fingerprint,
                usable=True,
                unusable_reason=None,
                outcome=ADOPTED,
                figures={**figures, "action": "adopt-copy", "usable": True, "original": original.snapshot_id},
                detail=detail,
                tagged_run_id=run.id,
            )
            outcome = ADOPTED
        else:
            what = "copy" if orphan.original else "snapshot"
            detail = (
                f"{what} left unrecorded by {run.kind} run {run.id} ({run.status}, phase '{run.phase}'): its data "
                "was never checked, never a recovery point"
            )
            adopted = self._records.adopt_snapshot(
                job=self._job.name,
                destination=destination.name,
                snapshot_id=orphan.short_id,
                original_id=(orphan.original or orphan.id)[:8],
                backup_run_id=run.id,
                taken_at=orphan.time,
                stored_name=orphan.paths[0] if orphan.paths else "",
                fingerprint={},
                usable=False,
                unusable_reason=detail,
                outcome=UNUSABLE,
                figures={**figures, "action": "adopt-unusable", "usable": False},
                detail=detail,
                tagged_run_id=run.id,
            )
            outcome = UNUSABLE
        if not adopted:
            detail = "recorded meanwhile by another process"
        return Reconciled(self._job.name, destination.name, orphan.short_id, run.id, outcome, detail)

    def _mark_pruned(
        self, destination: DestinationConfig, rows: Sequence[Snapshot], listed: Sequence[ResticSnapshot]
    ) -> list[Reconciled]:
        """Mark pruned the rows an abandoned prune of this destination was removing and that are gone."""
        prunes = [
            run
            for run in self._records.runs_of_job(self._job.name, [ABANDONED], ["prune"])
            if run.destination == destination.name and run.details.get("removed_ids")
        ]
        results = []
        for prune in prunes:
            removing = set(prune.details["removed_ids"])
            gone = [
                (row.id, row.snapshot_id)
                for row in rows
                if row.pruned_at is None
                and row.snapshot_id in removing
                and not any(snapshot.id.startswith(row.snapshot_id) for snapshot in listed)
            ]
            if not gone:
                continue
            detail = f"removed by prune run {prune.id} ({prune.status}) before it could record so"
            if not self._records.mark_pruned(self._job.name, destination.name, gone, prune.id, detail):
                continue  # marked meanwhile by another process
            results += [
                Reconciled(self._job.name, destination.name, snapshot_id, prune.id, PRUNED, detail)
                for _, snapshot_id in gone
            ]
        return results
