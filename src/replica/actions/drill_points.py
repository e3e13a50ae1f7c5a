"""Which recovery point of each job of a drill plan a drill or a recovery restores: one common cut time, so that
the stores of a service come back as they were at one moment.

`ChosenPoint` carries everything a restore needs (the repository with its password, what the snapshot should
restore to), so that a source other than the catalog (the clean-room drill, which reads only a secondary
destination with credentials given explicitly) can hand points to the same restore code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from replica.actions.context import Context
from replica.actions.proving import ExpectedData
from replica.actions.recovery_points import RUN_HISTORY_LIMIT, latest_verifications
from replica.catalog.records import SUCCEEDED
from replica.config.drills import DrillPlanConfig
from replica.config.models import DestinationConfig, JobConfig, PolicyConfig
from replica.errors import NotFound

if TYPE_CHECKING:
    from replica.restic.command import Repository


@dataclass(frozen=True)
class ChosenPoint:
    """The recovery point of one job to restore: from which destination and repository, what it restores to."""

    job: JobConfig
    policy: PolicyConfig
    destination: DestinationConfig
    repository: Repository
    expected: ExpectedData
    taken_at: datetime
    verified: bool  # its newest verification passed (False: never verified, or the newest failed)


def catalog_points(
    context: Context, plan: DrillPlanConfig, cut: datetime, *, destination_name: str | None = None
) -> list[ChosenPoint]:
    """Return, in the plan's restore order, each job's newest usable snapshot taken at or before `cut` in
    `destination_name` (else the plan's destination, else each job's primary), as the catalog records it.

    Raises NotFound naming the job and destination when a job has no snapshot at or before `cut` there;
    ConfigError/NotFound for a broken job or unknown destination.
    """
    points = []
    for name in plan.jobs:
        job, policy = context.job(name)
        destination = context.destination(job, destination_name or plan.destination)
        rows = [
            row for row in context.catalog.snapshots(job.name, destination.name) if row.usable and row.taken_at <= cut
        ]
        if not rows:
            raise NotFound(
                f"job '{job.name}' has no usable snapshot taken at or before {cut.isoformat(timespec='seconds')} "
                f"in destination '{destination.name}'"
            )
        newest = max(rows, key=lambda row: row.taken_at)
        verifications = latest_verifications(context.catalog.runs(job=job.name, kind="verify", limit=RUN_HISTORY_LIMIT))
        verification = verifications.get((destination.name, newest.snapshot_id))
        points.append(
            ChosenPoint(
                job=job,
                policy=policy,
                destination=destination,
                repository=context.repository(job, destination),
                expected=ExpectedData.of_snapshot(newest),
                taken_at=newest.taken_at,
                verified=verification is not None and verification.status == SUCCEEDED,
            )
        )
    return points
