"""Which snapshots are verified recovery points, and what restores have measured, read from the catalog."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from replica.catalog.latest import DRILL_RESTORE_KIND
from replica.catalog.models import Run, Snapshot
from replica.catalog.records import FAILED, SUCCEEDED, Catalog

RUN_HISTORY_LIMIT = 10_000


@dataclass(frozen=True)
class VerifiedPoint:
    """A snapshot whose most recent verification passed, with the RTO that verification measured."""

    snapshot: Snapshot
    verify_run: Run

    @property
    def rto_seconds(self) -> float | None:
        """Return the measured RTO of the verification, if any."""
        value = self.verify_run.details.get("rto_seconds")
        return float(value) if value is not None else None

    @property
    def canary_at(self) -> datetime | None:
        """Return the time of the canary this verification restored (the real recovery point), if any."""
        value = self.verify_run.details.get("canary_at")
        return datetime.fromisoformat(value) if value else None


def latest_verifications(runs: Sequence[Run]) -> dict[tuple[str, str], Run]:
    """Return, per (destination, snapshot id), the newest finished verify run."""
    latest: dict[tuple[str, str], Run] = {}
    for run in runs:
        if run.kind != "verify" or run.status not in (SUCCEEDED, FAILED) or not run.snapshot_id:
            continue
        key = (run.destination or "", run.snapshot_id)
        if key not in latest or run.id > latest[key].id:
            latest[key] = run
    return latest


def verified_points(catalog: Catalog, job: str) -> list[VerifiedPoint]:
    """Return every usable snapshot of a job whose latest verification passed, newest recovery point first."""
    verifications = latest_verifications(catalog.runs(job=job, kind="verify", limit=RUN_HISTORY_LIMIT))
    points = []
    for snapshot in catalog.snapshots(job):
        run = verifications.get((snapshot.destination, snapshot.snapshot_id))
        if snapshot.usable and run is not None and run.status == SUCCEEDED:
            points.append(VerifiedPoint(snapshot, run))
    return points


def newest_point_per_destination(points: Sequence[VerifiedPoint]) -> dict[str, VerifiedPoint]:
    """Return the newest verified point of each destination (points must be sorted newest first)."""
    newest: dict[str, VerifiedPoint] = {}
    for point in points:
        newest.setdefault(point.snapshot.destination, point)
    return newest


def measured_rtos(catalog: Catalog, job: str) -> list[float]:
    """Return the RTOs measured by successful verifications, restores and drills' restores of a job, newest
    first."""
    values = []
    measuring = ("verify", "restore", DRILL_RESTORE_KIND)
    for run in catalog.runs(job=job, limit=RUN_HISTORY_LIMIT):
        if run.kind in measuring and run.status == SUCCEEDED and run.details.get("rto_seconds") is not None:
            values.append(float(run.details["rto_seconds"]))
    return values


def expected_recovery_seconds(rtos: Sequence[float]) -> float | None:
    """Return the expected recovery time from measured RTOs (newest first): the worst of the last five, or None."""
    return max(rtos[:5]) if rtos else None
