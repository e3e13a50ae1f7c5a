"""Handlers of the scheduling commands: `schedule`, `run-due` and `daemon`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from replica.cli.exit_codes import FAILED as EXIT_FAILED
from replica.cli.exit_codes import OK, USAGE
from replica.cli.render import table

if TYPE_CHECKING:
    from replica.actions.context import Context


def schedule(context: Context, arguments: argparse.Namespace) -> int:
    """List every job's next run of each kind of work (from the catalog and the job's timetable)."""
    from replica.actions.due import scheduled_work  # imported by the commands that schedule (with run_due: ~50 ms)
    from replica.catalog.records import utc_now

    now = utc_now()
    documents: list[dict[str, Any]] = [
        {
            "job": work.job,
            "kind": work.kind,
            "schedule": work.schedule.text,
            "jitter_seconds": work.schedule.jitter.total_seconds() if work.schedule.jitter else None,
            "last_started": work.last_started.isoformat() if work.last_started else None,
            "next_run": work.next_run.isoformat(),
            "due": work.next_run <= now,
        }
        for work in scheduled_work(context, now)
    ]
    broken = {name: problems for name, problems in sorted(context.configuration.broken_jobs.items())}
    if arguments.json:
        print(json.dumps({"generated_at": now.isoformat(), "work": documents, "broken_jobs": broken}, indent=2))
        return OK
    rows = [
        [
            d["job"],
            d["kind"],
            d["schedule"],
            (d["last_started"] or "never")[:19],
            "due now" if d["due"] else d["next_run"][:19],
        ]
        for d in documents
    ]
    print(table(["JOB", "KIND", "SCHEDULE", "LAST STARTED (UTC)", "NEXT RUN (UTC)"], rows))
    for name, problems in broken.items():
        print(f"job '{name}' disabled: {'; '.join(problems)}")
    return OK


def run_due_command(context: Context, arguments: argparse.Namespace) -> int:
    """Run whatever is due and exit: 0 when all of it succeeded, 1 when any failed, 2 for broken job files."""
    from replica.actions.run_due import run_due
    from replica.actions.scheduled import FAILED

    _log_to_stderr()
    report = run_due(context)
    for run in report.abandoned:
        print(f"run {run.id} ({run.kind} of '{run.job}') was left running by a dead process: marked abandoned")
    for reconciled in report.reconciled:
        print(reconciled.describe())
    for outcome in report.outcomes:
        print(f"{outcome.kind} of '{outcome.job}': {outcome.outcome}: {outcome.detail}")
    for event in report.watch_events:
        print(f"{event.objective.upper()} of '{event.job}' {event.kind}: {event.detail}")
    for name, problems in sorted(report.broken_jobs.items()):
        print(f"job '{name}' disabled: {'; '.join(problems)}", file=sys.stderr)
    if any(outcome.outcome == FAILED for outcome in report.outcomes):
        return EXIT_FAILED
    return USAGE if report.broken_jobs else OK


def reconcile(context: Context, arguments: argparse.Namespace) -> int:
    """Stop the scratch servers of dead processes, sweep dead runs, then compare every destination of the job (or
    of every valid job) with the catalog and reconcile what a crash left behind; exit 1 when a destination could
    not be reconciled."""
    import socket

    from replica.actions.reconcile import FAILED, reconcile_job
    from replica.actions.run_due import stop_abandoned_scratch_servers
    from replica.processes import process_alive

    _log_to_stderr()
    for data_dir in stop_abandoned_scratch_servers():
        print(f"a scratch PostgreSQL server left by a dead process was stopped and {data_dir} removed")
    for run in context.catalog.mark_abandoned(host=socket.gethostname(), is_alive=process_alive):
        print(f"run {run.id} ({run.kind} of '{run.job}') was left running by a dead process: marked abandoned")
    names = [arguments.job] if arguments.job else sorted(context.configuration.jobs)
    results = [result for name in names for result in reconcile_job(context, name)]
    for result in results:
        print(result.describe())
    print(f"reconciled {len(names)} job(s): {len(results)} change(s)")
    return EXIT_FAILED if any(result.outcome == FAILED for result in results) else OK


def daemon(context: Context, arguments: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM, or (with --reload) tell the running daemon to re-read its files."""
    from replica.daemon.files import signal_reload
    from replica.daemon.scheduler import CELERY_EXECUTOR, Daemon, DaemonOptions

    if arguments.reload:
        pid = signal_reload(context.settings.state_dir)
        print(f"asked the daemon (pid {pid}) to re-read jobs and policies")
        return OK
    _log_to_stderr()
    options = DaemonOptions(
        workers=arguments.workers,
        grace_seconds=arguments.grace,
        watchdog_interval_seconds=arguments.watchdog_interval,
        reload_check_seconds=arguments.reload_check,
        metrics_host=arguments.metrics_host,
        metrics_port=arguments.metrics_port,
        executor=arguments.executor,
    )
    if options.executor == CELERY_EXECUTOR:
        from replica.distributed.app import broker_url

        broker_url(context.settings)  # no broker configured: a one-line error now, not at the first fire
    return Daemon(context, options).run()


def _log_to_stderr() -> None:
    # Long-running and cron use: what replica does is logged (journald and cron mail keep it). INFO for replica's
    # own loggers only; botocore's debug lines would carry request signatures.
    logger = logging.getLogger("replica")
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
