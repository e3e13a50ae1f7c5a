"""A job's RPO and RTO over time, from its catalog rows: the series the job page charts and
`GET /api/jobs/{job}/history` returns. Pure functions: rows in, points out, no catalog access.

RTO: what each verification measured (the time to restore and check the recovery point), recorded in the verify
run's details as `rto_seconds`. RPO: at the end of every completed backup and verification, the age of the newest
recovery point a verification had proven by then; moments before the first passed verification have no verified
point and so no RPO (status calls such a job failing; the chart simply starts later).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from replica.catalog.models import Run, Snapshot
from replica.catalog.records import COMPLETED_STATUSES, SUCCEEDED

HISTORY_FORMAT = 1


@dataclass(frozen=True)
class HistoryPoint:
    """One measurement: when, how many seconds, and the run that gave it."""

    at: datetime
    seconds: float
    run_id: int
    kind: str
    destination: str | None
    passed: bool

    def document(self) -> dict[str, Any]:
        """Return the point as the API shows it."""
        return {
            "at": self.at.isoformat(),
            "seconds": round(self.seconds, 3),
            "run_id": self.run_id,
            "kind": self.kind,
            "destination": self.destination,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class JobHistory:
    """A job's measured RTO and RPO series, oldest first, with the objectives they are judged against."""

    job: str
    rto: list[HistoryPoint]
    rpo: list[HistoryPoint]
    rto_objective_seconds: float
    rpo_objective_seconds: float

    def document(self) -> dict[str, Any]:
        """Return the history as the API shows it."""
        return {
            "format": HISTORY_FORMAT,
            "job": self.job,
            "rto_objective_seconds": self.rto_objective_seconds,
            "rpo_objective_seconds": self.rpo_objective_seconds,
            "rto": [point.document() for point in self.rto],
            "rpo": [point.document() for point in self.rpo],
        }


def rto_history(verify_runs: Iterable[Run]) -> list[HistoryPoint]:
    """Return the RTO each finished verification measured, oldest first (runs that never got to measure one, such
    as a verification whose restore failed, have no point)."""
    points = []
    for run in verify_runs:
        measured = run.details.get("rto_seconds")
        if run.kind != "verify" or run.finished_at is None or not isinstance(measured, int | float):
            continue
        passed = run.status == SUCCEEDED
        points.append(HistoryPoint(run.finished_at, float(measured), run.id, run.kind, run.destination, passed))
    return sorted(points, key=lambda point: (point.at, point.run_id))


def rpo_history(runs: Iterable[Run], snapshots: Iterable[Snapshot]) -> list[HistoryPoint]:
    """Return, oldest first, the age of the newest verified recovery point at the end of each completed backup and
    verification. `snapshots` are the job's, pruned ones too (a pruned point counted until it was pruned).

    As status judges it: a point is verified while its latest verification passed, so a verification that fails
    on a snapshot withdraws it (its RPO falls back to an older verified point, or there is none). A point is
    `passed` when the run it was measured at succeeded.
    """
    known: dict[tuple[str | None, str | None], Snapshot] = {
        (snapshot.destination, snapshot.snapshot_id): snapshot for snapshot in snapshots
    }
    completed = sorted(
        (
            run
            for run in runs
            if run.kind in ("backup", "verify") and run.status in COMPLETED_STATUSES and run.finished_at is not None
        ),
        key=lambda run: (run.finished_at, run.id),
    )
    points = []
    # The verified snapshots at this moment, with the recovery point each proved.
    verified: dict[tuple[str | None, str | None], tuple[Snapshot, datetime]] = {}
    for run in completed:
        moment = run.finished_at
        assert moment is not None  # filtered above; mypy cannot see through the generator
        key = (run.destination, run.snapshot_id)
        snapshot = known.get(key)
        if run.kind == "verify" and snapshot is not None:
            if run.status == SUCCEEDED:
                verified[key] = (snapshot, _recovery_point(run, snapshot))
            else:
                verified.pop(key, None)
        standing = [point for held, point in verified.values() if held.pruned_at is None or held.pruned_at > moment]
        if not standing:
            continue
        age = (moment - max(standing)).total_seconds()
        points.append(HistoryPoint(moment, age, run.id, run.kind, run.destination, run.status == SUCCEEDED))
    return points


def _recovery_point(run: Run, snapshot: Snapshot) -> datetime:
    """Return the recovery point a passed verification proved: its canary's time when it found one (the data as
    the store held it), else when its snapshot was taken."""
    canary = run.details.get("canary_at")
    return datetime.fromisoformat(canary) if isinstance(canary, str) else snapshot.taken_at


def job_history(
    job: str,
    runs: Sequence[Run],
    snapshots: Sequence[Snapshot],
    *,
    rto_objective_seconds: float,
    rpo_objective_seconds: float,
) -> JobHistory:
    """Return a job's RTO and RPO series from its backup and verify runs and its snapshots."""
    return JobHistory(
        job=job,
        rto=rto_history(run for run in runs if run.kind == "verify"),
        rpo=rpo_history(runs, snapshots),
        rto_objective_seconds=rto_objective_seconds,
        rpo_objective_seconds=rpo_objective_seconds,
    )
