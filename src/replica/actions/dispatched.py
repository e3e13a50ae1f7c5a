"""What a distributed worker does with one task: run one scheduled slot of one job's kind of work, once.

The task names the job, the kind and the slot (the fire time it was sent for). Tasks are acknowledged late, so a
task may arrive twice: after its worker died mid-run (the broker hands it to another worker), or when a standby
daemon that took the lead sends again work the old leader had sent. Whatever arrives, the slot runs once:

- the job's lock is taken first (a live run of the same slot, or of another kind, holds it: try again later);
- holding it, the worker claims the slot in the catalog (replica.catalog.work_slots): a slot already settled is a
  duplicate; one claimed by a claimant that died is run again, once, its dead run marked `abandoned`;
- a slot that a run started after its time already covers is not run again (backlogs coalesce, as in the daemon).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from replica.actions.context import Context
from replica.actions.locking import hold_job
from replica.actions.reconcile import reconcile_abandoned
from replica.actions.scheduled import INTERRUPTED, WorkOutcome, run_work
from replica.catalog.actor import acting_as, for_slot
from replica.catalog.records import utc_now
from replica.catalog.work_slots import ALREADY_COVERED, DUPLICATE, GIVE_UP, RUN, Claim
from replica.catalog.work_slots import RUNNING as RUNNING_CLAIM
from replica.errors import FALLBACK_STATE, ConfigError, JobBusy
from replica.schedule.plan import job_schedules
from replica.schedule.specs import jitter_offset

logger = logging.getLogger(__name__)

# What became of a task.
RAN, BUSY, SUPERSEDED, NOT_CONFIGURED = "ran", "busy", "superseded", "not configured"


@dataclass(frozen=True)
class DispatchedOutcome:
    """What one delivery of a task came to: `verdict` is RAN (with the work's `outcome`), BUSY (the job is held:
    deliver again later), SUPERSEDED (held until the next slot of the same work fell due: that slot covers it),
    NOT_CONFIGURED (the job's file is gone or broken), or a claim's verdict (duplicate, covered, give-up)."""

    verdict: str
    detail: str
    outcome: WorkOutcome | None = None


def run_dispatched(context: Context, job: str, kind: str, slot: datetime, *, worker: str) -> DispatchedOutcome:
    """Run `slot` of `job`'s `kind` unless another delivery ran or settles it; return what this delivery did.

    `worker` names this worker (`worker:NAME` is the actor of its runs). Never raises for the work's failures (they
    are recorded runs); raises KeyboardInterrupt when the process is interrupted.
    """
    if job not in context.configuration.jobs:
        reason = f"job '{job}' is not configured on worker {worker} (its file is missing or broken here)"
        logger.error("%s of '%s' (slot %s) not run: %s", kind, job, slot.isoformat(), reason)
        with acting_as(f"worker:{worker}"), for_slot(slot):
            context.catalog.record_skipped(job, kind, reason)  # seen in `runs` and `status`, not only in this log
        return DispatchedOutcome(NOT_CONFIGURED, reason)
    claims: list[Claim] = []

    def claim() -> bool:
        covered_since = context.catalog.last_completed_by_work(job).get((job, kind))
        slots = context.catalog.work_slots
        found = slots.claim(job, kind, slot, worker=f"worker:{worker}", covered_since=covered_since)
        claims.append(found)
        if found.verdict in (RUN, GIVE_UP) and found.previous is not None:
            # The earlier claimant died holding the slot (this process now holds the job's lock it had).
            _abandon(context, job, slot, f"the worker running it died ({found.previous})")
        if found.verdict == RUN:
            # Older slots of the same work still claimed: their claimants died too (the lock was free), on another
            # host maybe, whose runs no sweep of this host ends. This slot covers them.
            for stale in slots.stale_claims(job, kind, before=slot):
                reason = f"its claimant {stale.worker} on {stale.host} died; slot {slot.isoformat()} covers it"
                slots.supersede_claim(job, kind, stale.slot, reason)
                _abandon(context, job, stale.slot, f"the worker running it died ({stale.worker} on {stale.host})")
        return found.verdict == RUN

    with acting_as(f"worker:{worker}"), for_slot(slot):
        try:
            # The lock is held from before the claim until the slot is settled: a claim found `running` by whoever
            # holds the lock next was left by a claimant that died.
            with hold_job(context, job, kind):
                try:
                    outcome = run_work(context, job, kind, still_due=claim, busy_raises=True)
                except JobBusy:
                    if claims and claims[-1].verdict == RUN:
                        # The work found a lock it needs held (a prune also holds every job sharing one of its
                        # repositories): the claim is undone, under the lock, and the slot is tried again later.
                        context.catalog.work_slots.release(job, kind, slot, claims[-1].attempt)
                    raise
                return _settle(context, job, kind, slot, claims[-1] if claims else None, outcome)
        except JobBusy as busy:
            claimed = context.catalog.work_slots.get(job, kind, slot)
            if claimed is not None and claimed.state != RUNNING_CLAIM:
                return DispatchedOutcome(DUPLICATE, f"{claimed.state} by {claimed.worker}")
            if not _superseded(context, job, kind, slot):
                # Held by another kind of work, or by this very slot's claimant (alive: it settles the slot; dead on
                # another host: its lock goes stale, and the claim is taken over by a later delivery).
                return DispatchedOutcome(BUSY, str(busy))
            if claimed is None:
                reason = f"{busy}; the next {kind} is due, which covers this one"
                context.catalog.work_slots.supersede(job, kind, slot, worker=f"worker:{worker}", detail=reason)
                context.catalog.record_skipped(job, kind, reason)
            return DispatchedOutcome(SUPERSEDED, str(busy))


def _settle(
    context: Context, job: str, kind: str, slot: datetime, found: Claim | None, outcome: WorkOutcome
) -> DispatchedOutcome:
    """Record what became of a slot once its work returned (the caller holds the job's lock); return it."""
    if found is None:  # failed before the claim (a broken job file): recorded by run_work as a failed run
        return DispatchedOutcome(RAN, outcome.detail, outcome)
    if found.verdict == RUN and outcome.outcome == INTERRUPTED:
        # Stopped on purpose (its processes were signalled): not done, the slot is claimed again by a later delivery.
        context.catalog.work_slots.release(job, kind, slot, found.attempt)
        return DispatchedOutcome(BUSY, f"interrupted: {outcome.detail}")
    if found.verdict == RUN:
        context.catalog.work_slots.finish(job, kind, slot, found.attempt, f"{outcome.outcome}: {outcome.detail}")
        return DispatchedOutcome(RAN, outcome.detail, outcome)
    if found.verdict == GIVE_UP:
        detail = f"{kind} of '{job}' for slot {slot.isoformat()} given up: {found.previous}"
        _record_given_up(context, job, kind, slot, detail)
        return DispatchedOutcome(GIVE_UP, detail)
    if found.verdict == ALREADY_COVERED:
        return DispatchedOutcome(ALREADY_COVERED, "a run that started after the slot's time covers it")
    return DispatchedOutcome(DUPLICATE, found.previous or "already settled")


def _abandon(context: Context, job: str, slot: datetime, reason: str) -> None:
    """End the runs of `slot` a dead worker left `running` as `abandoned`, and record what they left in the
    repositories (a snapshot the catalog was never told of)."""
    abandoned = context.catalog.abandon_slot_runs(job, slot, reason)
    for run in abandoned:
        logger.warning("run %s (%s of '%s') abandoned: %s", run.id, run.kind, job, reason)
    for reconciled in reconcile_abandoned(context, abandoned):
        logger.warning("%s", reconciled.describe())


def _superseded(context: Context, job: str, kind: str, slot: datetime) -> bool:
    """Return True when a later slot of the same work has fallen due since `slot` (its task covers this one)."""
    try:
        schedule = job_schedules(*context.job(job)).get(kind)
    except ConfigError:
        return True  # the job's file broke since: nothing left to run it with
    if schedule is None:
        return True  # the kind is no longer scheduled
    latest = schedule.latest_fire(utc_now(), jitter_offset(schedule, f"{job}:{kind}"))
    return latest is not None and latest > slot


def _record_given_up(context: Context, job: str, kind: str, slot: datetime, detail: str) -> None:
    """Record a failed run for a slot not tried again: `status`, the alerts and the watchdog see the work failed.

    It starts at the slot's time: a run starting later would count as the work done since, and cover the next slot.
    """
    logger.error("%s", detail)
    run_id = context.catalog.start_run(job, kind, phase="start", started_at=slot)
    context.catalog.finish_run(run_id, succeeded=False, error=detail, failure=FALLBACK_STATE)
