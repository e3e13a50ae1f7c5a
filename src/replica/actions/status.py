"""`replica status`: one row per job, from the catalog only (no restic call, so it is instant and safe)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any

from replica.actions.context import Context
from replica.actions.locking import process_alive
from replica.actions.recovery_points import (
    latest_verifications,
    newest_point_per_destination,
    verified_points,
)
from replica.catalog.models import Run
from replica.catalog.records import FAILED, RUNNING, SUCCEEDED, utc_now
from replica.policy.objectives import JobFacts, Objectives, evaluate

STATUS_FORMAT = 1


def is_abandoned(run: Run) -> bool:
    """Return True for a run still marked `running` whose process on this host is gone."""
    return run.status == RUNNING and run.host == socket.gethostname() and not process_alive(run.pid)


def run_state(run: Run) -> str:
    """Return a run's status as shown to people: `abandoned` for a dead `running` run."""
    return "abandoned" if is_abandoned(run) else run.status


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_status(context: Context, job_name: str, now: datetime) -> dict[str, Any]:
    """Return the status document of one valid job (see README, "replica status --json")."""
    job, policy = context.job(job_name)
    catalog = context.catalog
    runs = catalog.runs(job=job.name, limit=10_000)
    finished = [r for r in runs if r.status in (SUCCEEDED, FAILED)]
    last_backup = next((r for r in finished if r.kind == "backup"), None)
    copies_of_last = [r for r in runs if r.kind == "copy" and last_backup and r.parent_run_id == last_backup.id]
    verifications = latest_verifications([r for r in finished if r.kind == "verify"])
    latest_verify_per_destination: dict[str, Run] = {}
    for run in sorted(verifications.values(), key=lambda r: r.id, reverse=True):
        latest_verify_per_destination.setdefault(run.destination or "", run)
    points = verified_points(catalog, job.name)
    newest = newest_point_per_destination(points)
    last_rto_run = next(
        (
            r
            for r in finished
            if r.kind == "verify" and r.status == SUCCEEDED and r.details.get("rto_seconds") is not None
        ),
        None,
    )
    facts = JobFacts(
        newest_verified_at=points[0].snapshot.taken_at if points else None,
        last_rto_seconds=float(last_rto_run.details["rto_seconds"]) if last_rto_run else None,
        last_backup_failed=bool(last_backup and last_backup.status == FAILED),
        last_copy_failed=any(r.status == FAILED for r in copies_of_last),
        last_verify_failed=any(r.status == FAILED for r in latest_verify_per_destination.values()),
        abandoned_runs=sum(1 for r in runs if is_abandoned(r)),
    )
    verdict = evaluate(facts, Objectives(policy.rpo, policy.rto, policy.at_risk_fraction), now)
    destinations = []
    windows: list[float | None] = []
    for destination in job.destinations:
        point = newest.get(destination.name)
        last_verify = latest_verify_per_destination.get(destination.name)
        canary_at = point.canary_at if point else None
        windows.append((now - canary_at).total_seconds() if canary_at else None)
        destinations.append(
            {
                "name": destination.name,
                "primary": destination.name == job.primary.name,
                "newest_verified_snapshot": point.snapshot.snapshot_id if point else None,
                "newest_verified_at": _iso(point.snapshot.taken_at) if point else None,
                "rpo_seconds": (now - point.snapshot.taken_at).total_seconds() if point else None,
                "canary_recovery_point": canary_at.isoformat() if canary_at else None,
                "data_loss_window_seconds": (now - canary_at).total_seconds() if canary_at else None,
                "last_verify": {
                    "run_id": last_verify.id,
                    "status": last_verify.status,
                    "finished_at": _iso(last_verify.finished_at),
                }
                if last_verify
                else None,
            }
        )
    return {
        "job": job.name,
        "store": job.store.kind,
        "policy": policy.name,
        "state": verdict.state,
        "reasons": verdict.reasons,
        "rpo_seconds": verdict.rpo_seconds,
        "rpo_objective_seconds": policy.rpo.total_seconds(),
        "rto_seconds": verdict.rto_seconds,
        "rto_objective_seconds": policy.rto.total_seconds(),
        "last_backup": {
            "run_id": last_backup.id,
            "status": last_backup.status,
            "snapshot_id": last_backup.snapshot_id,
            "finished_at": _iso(last_backup.finished_at),
            "error": last_backup.error,
        }
        if last_backup
        else None,
        "destinations": destinations,
        "abandoned_runs": facts.abandoned_runs,
        "data_loss_window_seconds": min((w for w in windows if w is not None), default=None),
    }


def collect_status(context: Context, between_jobs: Callable[[], None] | None = None) -> dict[str, Any]:
    """Return the status document of every job; broken job files are listed with their problems.

    `between_jobs` is called after each job (the daemon yields there, so that its scheduler is not starved while
    thousands of jobs are read).
    """
    now = utc_now()
    configuration = context.configuration
    jobs = []
    for name in sorted(configuration.jobs):
        jobs.append(job_status(context, name, now))
        if between_jobs is not None:
            between_jobs()
    return {
        "format": STATUS_FORMAT,
        "generated_at": now.isoformat(),
        "jobs": jobs,
        "broken_jobs": [
            {"job": name, "problems": problems} for name, problems in sorted(configuration.broken_jobs.items())
        ],
    }
