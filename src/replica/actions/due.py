"""What is due: every valid job's scheduled kinds of work against the catalog's record of when each last ran."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from replica.actions.context import Context
from replica.errors import ConfigError
from replica.schedule.plan import job_schedules
from replica.schedule.specs import Schedule, next_run, parse_schedule

logger = logging.getLogger(__name__)

DRILL = "drill"  # the kind of work (and of run) of a scheduled drill


@dataclass(frozen=True)
class ScheduledWork:
    """One kind of work of one job: its schedule, when it last started and when it runs next."""

    job: str
    kind: str
    schedule: Schedule
    last_started: datetime | None
    next_run: datetime

    @property
    def key(self) -> str:
        """Return `job:kind`, the work's identity in the scheduler and in jitter."""
        return work_key(self.job, self.kind)


def work_key(job: str, kind: str) -> str:
    """Return the identity of a job's kind of work (`job:kind`)."""
    return f"{job}:{kind}"


def scheduled_work(context: Context, now: datetime, jobs: list[str] | None = None) -> list[ScheduledWork]:
    """Return the scheduled work of every valid job (or of `jobs`), in job order then backup, verify, prune; then,
    unless `jobs` is given, the drills of the plans that have a schedule.

    A kind counts from the start of its last run that reached an outcome (succeeded or failed): work whose later
    run was interrupted or abandoned (a backup also when one of its copies was) is due again at once, and a
    skipped run changes nothing. A job whose file turned broken since the folder was read is left out (logged);
    one named in `jobs` raises ConfigError.
    """
    configuration = context.configuration
    names = sorted(configuration.jobs) if jobs is None else jobs
    last_started = context.catalog.last_completed_by_work()
    work = []
    for name in names:
        try:
            job, policy = context.job(name)
        except ConfigError as error:
            if jobs is not None:
                raise
            # Found valid when the folder was read, broken when its model was read (edited in between): the
            # broken file disables its own job only, as it would have at load time.
            logger.error("job '%s' disabled, its file is broken: %s", name, "; ".join(error.problems))
            continue
        work += [
            _placed(name, kind, schedule, last_started, now) for kind, schedule in job_schedules(job, policy).items()
        ]
    if jobs is None:
        work += _drill_work(context, now, last_started)
    return work


def _drill_work(
    context: Context, now: datetime, last_started: dict[tuple[str, str], datetime | None]
) -> list[ScheduledWork]:
    """Return the scheduled drills: every valid plan with a schedule, as work `drill` of the plan's name (its runs
    are recorded under that name; see replica.actions.drill)."""
    work = []
    for name, plan in sorted(context.drill_plans.plans.items()):
        schedule = parse_schedule(plan.schedule, None) if plan.schedule else None
        if schedule is not None:
            work.append(_placed(name, DRILL, schedule, last_started, now))
    return work


def _placed(
    name: str, kind: str, schedule: Schedule, last_started: dict[tuple[str, str], datetime | None], now: datetime
) -> ScheduledWork:
    last = last_started.get((name, kind))
    return ScheduledWork(name, kind, schedule, last, next_run(schedule, last, now, work_key(name, kind)))


def work_for(context: Context, job: str, kind: str, schedule: Schedule, now: datetime) -> ScheduledWork:
    """Return one job's kind of work with its next run decided from the catalog."""
    return _placed(job, kind, schedule, context.catalog.last_completed_by_work(job), now)
