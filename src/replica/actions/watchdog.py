"""The RPO/RTO watchdog: judge every valid job's objectives from the catalog (never from the last run's exit code),
open each breach once with an alert and a data-loss risk report, and record when it clears.

Called every minute by the daemon and at the end of every `run-due`. It reads the catalog only: no restic, no S3.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from replica.actions.context import Context
from replica.actions.notifications import WATCHDOG_KINDS, notifying_about
from replica.actions.recovery_points import (
    expected_recovery_seconds,
    measured_rtos,
    newest_point_per_destination,
    verified_points,
)
from replica.actions.report import save_report
from replica.actions.runs import recorded_run
from replica.actions.status import job_status
from replica.catalog.breaches import WATCHDOG_KIND
from replica.catalog.models import Breach
from replica.catalog.records import ABANDONED, FAILED, INTERRUPTED, utc_now
from replica.config.models import JobConfig, PolicyConfig
from replica.errors import ReplicaError
from replica.policy.objectives import Objectives
from replica.policy.watchdog import BreachOpening, WatchFacts, iso_utc, judge_objectives
from replica.report.dataloss import RecoveryPoint
from replica.report.risk import FailedRun, RiskFacts, build_risk_report

# One logger for alerts, so that operators can route them (journald, a log shipper) apart from the rest.
logger = logging.getLogger("replica.watchdog")

OPENED, CLEARED = "opened", "cleared"
RECENT_RUNS = 200  # the newest runs searched for recent failures
RECENT_FAILURES = 5
FAILED_STATUSES = (FAILED, ABANDONED, INTERRUPTED)
PROTECTING_KINDS = ("backup", "copy", "verify")


@dataclass(frozen=True)
class WatchEvent:
    """A breach opened or cleared by this call of the watchdog."""

    job: str
    objective: str  # rpo | rto
    kind: str  # opened | cleared
    breach_id: int
    report_id: int | None  # the risk report written when the breach opened
    detail: str


def watch_objectives(
    context: Context, now: datetime | None = None, statuses: Mapping[str, dict[str, Any]] | None = None
) -> list[WatchEvent]:
    """Judge the objectives of every valid job (broken job files are skipped) and return the breaches opened and
    cleared now; an open breach stays quiet until it clears.

    `statuses` are the jobs' `status` documents (by job name) when the caller computed them at `now` already (the
    daemon does, for its metrics): reading the catalog once per job and tick instead of twice.

    A job whose report cannot be written still gets its alert; a job that cannot be judged (its store cannot be
    described) is logged and skipped. Raises CatalogError or SQLAlchemyError when the catalog cannot be used.
    """
    now = now or utc_now()
    # One query for the open breaches of every job: the daemon judges thousands of jobs every minute.
    open_breaches: dict[str, list[Breach]] = {}
    for breach in context.catalog.breaches.open_breaches():
        open_breaches.setdefault(breach.job, []).append(breach)
    events: list[WatchEvent] = []
    for name in sorted(context.configuration.jobs):
        try:
            status = statuses.get(name) if statuses is not None else None
            events += watch_job(context, name, now, open_breaches.get(name, []), status)
        except ReplicaError as error:
            logger.error("watchdog: cannot judge the objectives of job '%s': %s", name, error)
    return events


def watch_job(
    context: Context,
    name: str,
    now: datetime,
    open_breaches: list[Breach] | None = None,
    status: dict[str, Any] | None = None,
) -> list[WatchEvent]:
    """Judge one valid job's objectives at `now`, write the breaches it opens and clears, and return them.

    `open_breaches` are the job's open breaches when the caller read them already. Raises ConfigError or
    UsageError for a job that is not valid.
    """
    job, policy = context.job(name)
    with notifying_about(context, name, WATCHDOG_KINDS):
        return _judge_job(context, job, policy, now, open_breaches, status)


def _judge_job(
    context: Context,
    job: JobConfig,
    policy: PolicyConfig,
    now: datetime,
    open_breaches: list[Breach] | None,
    status: dict[str, Any] | None,
) -> list[WatchEvent]:
    name = job.name
    breaches = context.catalog.breaches
    if open_breaches is None:
        open_breaches = breaches.open_breaches(name)
    open_by_objective = {breach.objective: breach for breach in open_breaches}
    decision = judge_objectives(
        _watch_facts(context, name, now, open_by_objective, status),
        Objectives(policy.rpo, policy.rto, policy.at_risk_fraction),
        now,
    )
    events: list[WatchEvent] = []
    for clearing in decision.cleared:
        breach = open_by_objective[clearing.objective]
        if not breaches.clear(breach.id, clearing.detail, cleared_at=now):
            continue  # another process cleared it and said so
        logger.warning("RESOLVED: %s (breach %d, open since %s)", clearing.detail, breach.id, iso_utc(breach.opened_at))
        events.append(WatchEvent(name, clearing.objective, CLEARED, breach.id, breach.report_id, clearing.detail))
    for opening in decision.opened:
        events += _open_breach(context, job, policy, opening, now)
    return events


def _watch_facts(
    context: Context, name: str, now: datetime, open_breaches: dict[str, Breach], status: dict[str, Any] | None
) -> WatchFacts:
    # The same facts `replica status` shows, so that the watchdog and status (and the metrics) never disagree.
    if status is None:
        status = job_status(context, name, now)
    verified = [
        datetime.fromisoformat(destination["newest_verified_at"])
        for destination in status["destinations"]
        if destination["newest_verified_at"]
    ]
    newest_verified_at = max(verified, default=None)
    return WatchFacts(
        job=name,
        newest_verified_at=newest_verified_at,
        # Needed only while nothing is verified; one query less per job and tick otherwise.
        first_run_at=context.catalog.breaches.first_run_started(name) if newest_verified_at is None else None,
        last_rto_seconds=status["rto_seconds"],
        open_objectives=frozenset(open_breaches),
        # Recorded by each measurement (the daemon's tick, `wal-status`) and aged by status to `now`.
        wal_lags={d["name"]: d["wal_lag"]["lag_seconds"] for d in status["destinations"] if d.get("wal_lag")},
        wal_lag_lower_bounds=frozenset(
            d["name"] for d in status["destinations"] if d.get("wal_lag") and d["wal_lag"].get("lag_is_lower_bound")
        ),
    )


def _open_breach(
    context: Context, job: JobConfig, policy: PolicyConfig, opening: BreachOpening, now: datetime
) -> list[WatchEvent]:
    breaches = context.catalog.breaches
    breach_id = breaches.open_breach(
        job=job.name,
        objective=opening.objective,
        measured_seconds=opening.measured_seconds,
        objective_seconds=opening.objective_seconds,
        detail=opening.detail,
        opened_at=now,
    )
    if breach_id is None:
        return []  # another process opened it first and raises the alert
    report_id: int | None = None
    where = "no risk report written"
    try:
        report_id, path = write_risk_report(context, job, policy, breach_id, opening, now)
        breaches.attach_report(breach_id, report_id)
        where = f"data-loss risk report {report_id}: {path}"
    except (ReplicaError, OSError) as error:
        # The breach is open and will not open again: the alert must go out even without its report.
        logger.error("watchdog: the risk report of breach %d of job '%s' failed: %s", breach_id, job.name, error)
    logger.error("ALERT: %s (breach %d, %s)", opening.detail, breach_id, where)
    return [WatchEvent(job.name, opening.objective, OPENED, breach_id, report_id, opening.detail)]


def write_risk_report(
    context: Context, job: JobConfig, policy: PolicyConfig, breach_id: int, opening: BreachOpening, now: datetime
) -> tuple[int, Path]:
    """Write the data-loss risk report of a breach just opened, under a `watchdog` run of the job; return the
    report id and the Markdown path. Raises OSError when a file cannot be written."""
    catalog = context.catalog
    start = {"breach_id": breach_id, "objective": opening.objective}
    with recorded_run(catalog, job.name, WATCHDOG_KIND, phase="risk report", details=start) as run:
        newest = {
            name: RecoveryPoint(name, p.snapshot.snapshot_id, p.snapshot.taken_at, True, p.rto_seconds, p.canary_at)
            for name, p in newest_point_per_destination(verified_points(catalog, job.name)).items()
        }
        failures = [
            FailedRun(r.id, r.kind, r.destination, r.status, r.started_at, r.error)
            for r in catalog.runs(job=job.name, limit=RECENT_RUNS)
            if r.kind in PROTECTING_KINDS and r.status in FAILED_STATUSES
        ]
        facts = RiskFacts(
            job=job.name,
            store=context.store(job, policy).describe(),
            policy=policy.name,
            objective=opening.objective,
            breach_id=breach_id,
            breach_detail=opening.detail,
            measured_seconds=opening.measured_seconds,
            objective_seconds=opening.objective_seconds,
            watchdog_run_id=run.run_id,
            destinations=[destination.name for destination in job.destinations],
            newest_verified=newest,
            recent_failures=failures[:RECENT_FAILURES],
            owners=list(job.owners),
            clients=list(job.clients),
            expected_recovery_seconds=expected_recovery_seconds(measured_rtos(catalog, job.name)),
            rto_objective_seconds=policy.rto.total_seconds(),
            created_at=now,
        )
        report_id, markdown_path = save_report(context, job.name, run.run_id, build_risk_report(facts), now)
        run.details["report_id"] = report_id
    return report_id, markdown_path
