"""Running one kind of scheduled work of one job, as the daemon and `run-due` do: under the job's lock, with
dead-man pings, and with an outcome for every case (ran, failed, skipped, interrupted, not due any more)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from replica.actions.backup import run_backup
from replica.actions.context import Context
from replica.actions.due import DRILL
from replica.actions.equivalence import run_verify_all
from replica.actions.locking import hold_job
from replica.actions.prune import run_prune
from replica.catalog.records import STARTED_STATUSES, utc_now
from replica.errors import Interrupted, JobBusy, ReplicaError, failure_state
from replica.notify.ping import send_ping

logger = logging.getLogger(__name__)

SUCCEEDED, FAILED, SKIPPED, INTERRUPTED, NOT_DUE = "succeeded", "failed", "skipped", "interrupted", "not due"


@dataclass(frozen=True)
class WorkOutcome:
    """What one scheduled run came to, with the figures the daemon's metrics need."""

    job: str
    kind: str
    outcome: str  # succeeded | failed | skipped | interrupted | not due
    detail: str
    duration_seconds: float
    bytes_added: int | None = None


def _backup(context: Context, job: str) -> tuple[bool, str, int | None]:
    outcome = run_backup(context, job)
    failed_copies = [copy.destination for copy in outcome.copies if copy.error is not None]
    detail = f"snapshot {outcome.snapshot_id}" + (
        f"; copies failed: {', '.join(failed_copies)}" if failed_copies else ""
    )
    return outcome.succeeded, detail, outcome.bytes_added


def _verify(context: Context, job: str) -> tuple[bool, str, int | None]:
    # Scheduled verification covers every destination: a copy nobody restores is a copy nobody can trust.
    outcome = run_verify_all(context, job)
    failed = sorted({*outcome.failures, *(o.destination for o in outcome.verified if not o.passed)})
    detail = f"recovery point {outcome.original_id}" + (f"; failed in {', '.join(failed)}" if failed else "")
    return outcome.passed, detail, None


def _prune(context: Context, job: str) -> tuple[bool, str, int | None]:
    outcome = run_prune(context, job, dry_run=False)
    return outcome.succeeded, outcome.summary(), None


def _drill(context: Context, plan: str) -> tuple[bool, str, int | None]:
    from replica.actions.drill import drill_plan  # deferred: most runs never drill

    outcome = drill_plan(context, plan)
    failures = outcome.failures
    detail = f"run {outcome.run_id}, report {outcome.report_paths['markdown']}" + (
        f"; {len(failures)} failure(s): {failures[0]}" if failures else ""
    )
    return outcome.passed, detail, None


WORK: dict[str, Callable[[Context, str], tuple[bool, str, int | None]]] = {
    "backup": _backup,
    "verify": _verify,
    "prune": _prune,
    DRILL: _drill,  # `job` is then the plan's name
}


def run_work(
    context: Context,
    job: str,
    kind: str,
    *,
    still_due: Callable[[], bool] | None = None,
    busy_raises: bool = False,
) -> WorkOutcome:
    """Run `kind` for `job` holding the job's lock and return the outcome; never raises for the work's failures.

    A job held by another run gives `skipped` (recorded in the catalog with the holder named), or with
    `busy_raises` raises JobBusy and records nothing (a distributed worker tries the work again later). `still_due`
    is asked again once the lock is held, so that two schedulers racing for the same due work run it once.
    Raises KeyboardInterrupt when this process itself is interrupted.
    """
    started = time.monotonic()
    started_at = utc_now()
    ping_url: str | None = None
    try:
        # A plan has no dead-man ping of its own; its drill's outcome is in the log and the exercise report.
        ping_url = context.job(job)[0].ping_url if kind != DRILL else None
        with hold_job(context, job, kind):
            if still_due is not None and not still_due():
                return WorkOutcome(job, kind, NOT_DUE, "already run by another process", time.monotonic() - started)
            _ping(ping_url, "start", f"{kind} of {job} started")
            passed, detail, bytes_added = WORK[kind](context, job)
    except JobBusy as busy:
        if busy_raises:
            raise
        context.catalog.record_skipped(job, kind, str(busy))
        logger.info("%s of '%s' skipped: %s", kind, job, busy)
        return WorkOutcome(job, kind, SKIPPED, str(busy), time.monotonic() - started)
    except Interrupted as error:
        logger.warning("%s of '%s' interrupted: %s", kind, job, error)
        return WorkOutcome(job, kind, INTERRUPTED, str(error), time.monotonic() - started)
    except Exception as error:
        # Any failure, expected or not, is this work's alone: the next job and the watchdog still run.
        if isinstance(error, ReplicaError):
            logger.error("%s of '%s' failed: %s", kind, job, error)
        else:
            logger.exception("%s of '%s' failed unexpectedly", kind, job)
        _record_if_unrecorded(context, job, kind, started_at, error)
        _ping(ping_url, "failure", f"{kind} of {job} failed: {error}")
        return WorkOutcome(job, kind, FAILED, str(error), time.monotonic() - started)
    outcome = SUCCEEDED if passed else FAILED
    log = logger.info if passed else logger.error
    log("%s of '%s' %s: %s", kind, job, outcome, detail)
    _ping(ping_url, "success" if passed else "failure", f"{kind} of {job} {outcome}: {detail}")
    return WorkOutcome(job, kind, outcome, detail, time.monotonic() - started, bytes_added)


def _record_if_unrecorded(context: Context, job: str, kind: str, started_at: datetime, error: Exception) -> None:
    """Record a failed run when the work failed before its action recorded one (no snapshot to verify, no
    repository password): the failure is then visible in `runs` and `status`, the watchdog sees the job was
    attempted, and the work is not due again until its next fire time instead of at every call."""
    try:
        last = context.catalog.last_started(job, kind, STARTED_STATUSES)
        if last is not None and last >= started_at:
            return  # the action recorded its run, and its failure with it
        message = str(error) if isinstance(error, ReplicaError) else f"{type(error).__name__}: {error}"
        run_id = context.catalog.start_run(job, kind, phase="start")
        context.catalog.finish_run(run_id, succeeded=False, error=message, failure=failure_state(error))
    except Exception:  # the catalog itself may be the problem; the failure is logged already
        logger.exception("could not record the failed %s of '%s'", kind, job)


def _ping(url: str | None, event: str, message: str) -> None:
    if url:
        send_ping(url, event, message=message)
