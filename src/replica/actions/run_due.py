"""`replica run-due`: what the daemon decides, for cron users. Runs whatever is due according to the catalog and
returns; safe every minute, and when two calls overlap (the job lock and a second look after taking it)."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path

from replica.actions.context import Context
from replica.actions.due import ScheduledWork, scheduled_work, work_for
from replica.actions.reconcile import Reconciled, reconcile_abandoned
from replica.actions.scheduled import NOT_DUE, WorkOutcome, run_work
from replica.actions.wal_lag import record_wal_lags
from replica.actions.watchdog import WatchEvent, watch_objectives
from replica.catalog.models import Run
from replica.catalog.records import utc_now
from replica.processes import process_alive
from replica.stores.scratch_servers import stop_abandoned_servers

logger = logging.getLogger(__name__)


@dataclass
class RunDueReport:
    """Everything one `run-due` call did: runs found abandoned (and what reconciling them did), work run,
    breaches opened or cleared."""

    abandoned: list[Run] = field(default_factory=list)
    reconciled: list[Reconciled] = field(default_factory=list)
    outcomes: list[WorkOutcome] = field(default_factory=list)
    watch_events: list[WatchEvent] = field(default_factory=list)
    broken_jobs: dict[str, list[str]] = field(default_factory=dict)


def sweep(context: Context) -> tuple[list[Run], list[Reconciled]]:
    """Mark the `running` runs of this host whose process died as `abandoned`, then reconcile the destinations
    they touched (snapshots the crash left unrecorded; see replica.actions.reconcile); return both. Never raises
    for a destination that cannot be reconciled (that is a `failed` reconcile event). Scratch PostgreSQL servers
    left running by a dead replica process are stopped first and their data directories removed."""
    stop_abandoned_scratch_servers()
    abandoned = context.catalog.mark_abandoned(host=socket.gethostname(), is_alive=process_alive)
    if not abandoned:
        return abandoned, []
    try:
        return abandoned, reconcile_abandoned(context, abandoned)
    except Exception:  # a bug in this housekeeping must never stop the backups due after it: logged, not raised
        logger.exception("reconciling after the abandoned runs %s failed", [run.id for run in abandoned])
        return abandoned, []


def stop_abandoned_scratch_servers() -> list[Path]:
    """Stop the scratch PostgreSQL servers whose replica process died; return their removed data directories.
    Never raises."""
    try:
        return stop_abandoned_servers(process_alive)
    except Exception:  # housekeeping must never stop the backups due after it: logged, not raised
        logger.exception("stopping abandoned scratch PostgreSQL servers failed")
        return []


def sweep_abandoned(context: Context) -> list[Run]:
    """Sweep (see `sweep`) and return the runs found abandoned; what reconciliation did is logged."""
    return sweep(context)[0]


def run_due(context: Context) -> RunDueReport:
    """Sweep dead runs, run every due kind of work of every valid job (backup, then verify, then prune, one job
    after the other), then let the watchdog judge the objectives; return what happened.

    Raises KeyboardInterrupt when interrupted (the run in progress is recorded `interrupted`).
    """
    report = RunDueReport(broken_jobs=dict(context.configuration.broken_jobs))
    report.abandoned, report.reconciled = sweep(context)
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
    # As the daemon's tick does: the watchdog judges the replication lag measured now.
    record_wal_lags(context)
    report.watch_events = watch_objectives(context)
    return report
