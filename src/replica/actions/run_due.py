"""`replica run-due`: what the daemon decides, for cron users. Runs whatever is due according to the catalog and
returns; safe every minute, and when two calls overlap (the job lock and a second look after taking it)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from replica.actions.context import Context
from replica.actions.due import ScheduledWork, scheduled_work, work_for
from replica.actions.locking import process_alive
from replica.actions.scheduled import NOT_DUE, WorkOutcome, run_work
from replica.actions.watchdog import WatchEvent, watch_objectives
from replica.catalog.models import Run
from replica.catalog.records import utc_now


@dataclass
class RunDueReport:
    """Everything one `run-due` call did: runs found abandoned, work run, breaches opened or cleared."""

    abandoned: list[Run] = field(default_factory=list)
    outcomes: list[WorkOutcome] = field(default_factory=list)
    watch_events: list[WatchEvent] = field(default_factory=list)
    broken_jobs: dict[str, list[str]] = field(default_factory=dict)


def sweep_abandoned(context: Context) -> list[Run]:
    """Mark the `running` runs of this host whose process died as `abandoned` and return them."""
    return context.catalog.mark_abandoned(host=socket.gethostname(), is_alive=process_alive)


def run_due(context: Context) -> RunDueReport:
    """Sweep dead runs, run every due kind of work of every valid job (backup, then verify, then prune, one job
    after the other), then let the watchdog judge the objectives; return what happened.

    Raises KeyboardInterrupt when interrupted (the run in progress is recorded `interrupted`).
    """
    report = RunDueReport(broken_jobs=dict(context.configuration.broken_jobs))
    report.abandoned = sweep_abandoned(context)
    for work in scheduled_work(context, utc_now()):
        if work.next_run > utc_now():
            continue

        def still_due(work: ScheduledWork = work) -> bool:
            # Another run-due may have run it between our look and our lock: look again from the catalog.
            now = utc_now()
            return work_for(context, work.job, work.kind, work.schedule, now).next_run <= now

        outcome = run_work(context, work.job, work.kind, still_due=still_due)
        if outcome.outcome != NOT_DUE:
            report.outcomes.append(outcome)
    report.watch_events = watch_objectives(context)
    return report
