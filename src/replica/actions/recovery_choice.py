"""Which recovery point of each job a real recovery (`replica recover`) restores: the best available one.

Unlike a drill, which exercises one destination, a recovery takes whatever destination serves best: per job, the
newest *verified* recovery point at or before one common cut time, in any destination that answers now (a copy of
the same snapshot in several destinations: the one listed first in the job). Only when a job has no verified point
at or before the cut is a merely recorded one used, with a warning saying so.

The cut, unless given (`--at`: the moment before a bad change or an attack), is the newest of the jobs' newest
verified points, so that every job comes back with its newest verified point: the least data lost. Read literally,
"the newest moment at which every job has a verified point at or before it" has no end (any moment after each
job's first verification qualifies); the oldest of the newest points, the other candidate, fails outright whenever
the jobs were backed up at different times (always: they have their own schedules) and throws verified data away.
The spread between the stores' points is shown with the plan. A job without any verified point takes part with its
newest recorded one (and a warning).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from replica.actions.context import Context
from replica.actions.drill_points import ChosenPoint
from replica.actions.proving import ExpectedData
from replica.actions.recovery_points import VerifiedPoint, verified_points
from replica.catalog.models import Snapshot
from replica.config.drills import DrillPlanConfig
from replica.config.models import DestinationConfig, JobConfig, PolicyConfig
from replica.errors import NotFound, StorageError


@dataclass(frozen=True)
class RecoveryPointChoice:
    """A job's chosen point, with what its verification measured (None for an unverified point)."""

    point: ChosenPoint
    canary_at: datetime | None = None  # the restored canary's time: the real recovery point
    verified_at: datetime | None = None  # when the verification that proved it finished
    rto_seconds: float | None = None  # the restore time that verification measured


@dataclass(frozen=True)
class RecoveryChoice:
    """The cut time, how it was decided, every job's point in the plan's order, and warnings for people."""

    cut: datetime
    cut_given: bool
    points: list[RecoveryPointChoice]
    warnings: list[str]


@dataclass(frozen=True)
class _JobPoints:
    job: JobConfig
    policy: PolicyConfig
    verified: list[VerifiedPoint]  # on answering destinations, newest first
    usable: list[Snapshot]  # likewise, verified or not


def choose_recovery_points(context: Context, plan: DrillPlanConfig, at: datetime | None = None) -> RecoveryChoice:
    """Return each job's best available recovery point at or before `at` (default: the newest common verified
    moment, see the module's docstring), in the plan's restore order.

    Probes every destination of the plan's jobs once (read-only); one that does not answer is left out with a
    warning. Raises NotFound naming the job when a job has no usable point at or before the cut in any answering
    destination; ConfigError for a broken job.
    """
    warnings: list[str] = []
    answering: dict[tuple[str | None, str], bool] = {}
    candidates = []
    for name in plan.jobs:
        job, policy = context.job(name)
        reachable = {d.name for d in job.destinations if _answers(context, d, answering, job.name, warnings)}
        candidates.append(
            _JobPoints(
                job,
                policy,
                [p for p in verified_points(context.catalog, job.name) if p.snapshot.destination in reachable],
                [s for s in context.catalog.snapshots(job.name) if s.usable and s.destination in reachable],
            )
        )
    cut = at if at is not None else _default_cut(candidates)
    points = [_choose(context, job_points, cut, warnings) for job_points in candidates]
    return RecoveryChoice(cut, at is not None, points, warnings)


def _answers(
    context: Context,
    destination: DestinationConfig,
    answering: dict[tuple[str | None, str], bool],
    job: str,
    warnings: list[str],
) -> bool:
    """Return whether a destination's bucket answers (one probe per endpoint and bucket), warning when not."""
    key = (context.endpoint_url(destination), destination.bucket)
    if key not in answering:
        try:
            context.probe(destination)
            answering[key] = True
        except StorageError as error:
            answering[key] = False
            warnings.append(f"job '{job}': destination '{destination.name}' left out, it does not answer: {error}")
    return answering[key]


def _default_cut(candidates: Sequence[_JobPoints]) -> datetime:
    newest = []
    for job_points in candidates:
        if job_points.verified:
            newest.append(job_points.verified[0].snapshot.taken_at)
        elif job_points.usable:
            newest.append(job_points.usable[0].taken_at)
        else:
            raise NotFound(f"job '{job_points.job.name}' has no usable snapshot in any destination that answers")
    return max(newest)


def _destination_rank(job: JobConfig, snapshot: Snapshot) -> tuple[datetime, int]:
    """Return the sort key of a point: newer first, then the destination listed first in the job."""
    names = [d.name for d in job.destinations]
    return snapshot.taken_at, -names.index(snapshot.destination)


def _choose(context: Context, job_points: _JobPoints, cut: datetime, warnings: list[str]) -> RecoveryPointChoice:
    job = job_points.job
    verified = [p for p in job_points.verified if p.snapshot.taken_at <= cut]
    if verified:
        best = max(verified, key=lambda p: _destination_rank(job, p.snapshot))
        return RecoveryPointChoice(
            _chosen(context, job_points, best.snapshot, verified=True),
            canary_at=best.canary_at,
            verified_at=best.verify_run.finished_at,
            rto_seconds=best.rto_seconds,
        )
    usable = [s for s in job_points.usable if s.taken_at <= cut]
    if not usable:
        raise NotFound(
            f"job '{job.name}' has no usable snapshot taken at or before {cut.isoformat(timespec='seconds')} "
            "in any destination that answers"
        )
    snapshot = max(usable, key=lambda s: _destination_rank(job, s))
    warnings.append(
        f"job '{job.name}': no verified recovery point at or before the cut; using snapshot {snapshot.snapshot_id} "
        f"in '{snapshot.destination}' (taken {snapshot.taken_at.isoformat(timespec='seconds')}), which has not "
        "passed a test restore: the restore still checks it against its backup-time fingerprint"
    )
    return RecoveryPointChoice(_chosen(context, job_points, snapshot, verified=False))


def _chosen(context: Context, job_points: _JobPoints, snapshot: Snapshot, *, verified: bool) -> ChosenPoint:
    destination = context.destination(job_points.job, snapshot.destination)
    return ChosenPoint(
        job=job_points.job,
        policy=job_points.policy,
        destination=destination,
        repository=context.repository(job_points.job, destination),
        expected=ExpectedData.of_snapshot(snapshot),
        taken_at=snapshot.taken_at,
        verified=verified,
    )
