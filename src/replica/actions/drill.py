"""`replica drill PLAN`: restore every store of a service to one moment into throw-away targets, prove each one
usable, check the stores against each other, time it all against the objectives, write the exercise report.

The engine takes its recovery points from the caller (`ChosenPoint`s: from the catalog, or from a clean room that
reads a secondary destination with credentials given explicitly) and never looks points up itself.

A drill's run is recorded under the plan's name with kind `drill`: a plan is no job, and plan names are refused
when they equal a job's (replica.config.drills), so no job's status, RPO/RTO or schedule ever counts a drill run,
while the dead-run sweep and the daemon's shutdown, which look at every `running` run, cover it like any other.
The plan's name is also the lock the drill holds: one drill of a plan at a time; the jobs themselves are not held
(their backups go on during a long drill) and restic's shared lock keeps their prunes off the snapshots read.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replica.actions.context import Context
from replica.actions.drill_points import ChosenPoint
from replica.actions.locking import hold_job
from replica.actions.proving import restore_and_prove
from replica.actions.runs import RunRecorder, recorded_run
from replica.catalog.latest import DRILL_RESTORE_KIND
from replica.catalog.records import CheckOutcome, utc_now
from replica.config.drills import CrossStoreCheckConfig, DrillPlanConfig, StoreQueryConfig
from replica.errors import Interrupted, ReplicaError, UsageError, VerificationFailed, failure_state
from replica.policy.cross_store import CrossStoreResult, compare_values, extract_values
from replica.stores.base import Store, Target

if TYPE_CHECKING:
    from replica.actions.clean_room import CleanRoomCredentials

DRILL_KIND = "drill"


@dataclass
class StoreOutcome:
    """One store of the drill: the recovery point restored, its checks, its RTO against the job's objective."""

    job: str
    store: str
    destination: str
    snapshot_id: str
    taken_at: datetime
    verified: bool  # the point's newest verification had passed before the drill
    rto_objective_seconds: float
    checks: list[CheckOutcome] = field(default_factory=list)
    rto_seconds: float | None = None  # None unless restored and every critical check passed

    @property
    def passed(self) -> bool:
        """Return True when the restore and every critical check passed."""
        return bool(self.checks) and all(check.passed for check in self.checks if check.critical)


@dataclass
class DrillOutcome:
    """A drill: what was restored, every check, the timings against the objectives, and the report files."""

    plan: str
    run_id: int
    cut: datetime
    started_at: datetime
    rto_objective_seconds: float  # the service's (the plan's `rto`)
    stores: list[StoreOutcome] = field(default_factory=list)
    cross_checks: list[CrossStoreResult] = field(default_factory=list)
    # From the first restore until every store was restored and every check ran; None when a store failed.
    service_seconds: float | None = None
    report_paths: dict[str, Path] = field(default_factory=dict)  # markdown, html, json

    @property
    def failures(self) -> list[str]:
        """Return every failure found, one line each: failed critical checks, objectives missed."""
        found = [
            f"{store.job}: {check.name} failed: {check.detail}"
            for store in self.stores
            for check in store.checks
            if check.critical and not check.passed
        ]
        found += [
            f"{store.job}: RTO {store.rto_seconds:.1f}s exceeds the job's objective {store.rto_objective_seconds:.0f}s"
            for store in self.stores
            if store.rto_seconds is not None and store.rto_seconds > store.rto_objective_seconds
        ]
        found += [f"cross-store check '{c.name}': {c.detail}" for c in self.cross_checks if c.critical and not c.passed]
        if self.service_seconds is None:
            found.append("the service was not restored: a store failed")
        elif self.service_seconds > self.rto_objective_seconds:
            found.append(
                f"service restored in {self.service_seconds:.1f}s, over its objective {self.rto_objective_seconds:.0f}s"
            )
        return found

    @property
    def passed(self) -> bool:
        """Return True when nothing failed."""
        return not self.failures


def run_drill(
    context: Context, plan: DrillPlanConfig, points: list[ChosenPoint], cut: datetime, *, shared_lock: bool = True
) -> DrillOutcome:
    """Drill `plan` from `points` (one per job, in the plan's order, all taken at or before `cut`): restore each
    into a scratch target, run its checks, then the plan's cross-store checks with every target still up; remove
    every target; record the run and its `drill` event; write the exercise report. Return the outcome (a failed
    drill is an outcome, not an exception).

    `shared_lock` takes restic's shared lock while reading (False for read-only credentials). Raises UsageError
    when the points do not match the plan, JobBusy when a drill of the plan runs already, Interrupted when stopped;
    OSError when the report cannot be written (the run is then recorded failed).
    """
    from replica.actions.drill_report import write_exercise_report  # deferred: Jinja2 only once a drill ran

    if [point.job.name for point in points] != plan.jobs:
        raise UsageError(
            f"drill plan '{plan.name}': points for {[p.job.name for p in points]} do not match its jobs {plan.jobs}"
        )
    with (
        hold_job(context, plan.name, DRILL_KIND),
        recorded_run(
            context.catalog, plan.name, DRILL_KIND, phase="restore", details={"cut": cut.isoformat(), "jobs": plan.jobs}
        ) as run,
    ):
        outcome = DrillOutcome(plan.name, run.run_id, cut, utc_now(), plan.rto.total_seconds())
        started = time.monotonic()
        with contextlib.ExitStack() as targets:  # every target stays up for the cross-store checks
            locations: dict[str, tuple[Store, Target]] = {}
            for point in points:
                store_outcome, restored = _restore_point(
                    context, targets, point, run, plan.name, shared_lock=shared_lock
                )
                outcome.stores.append(store_outcome)
                if restored is not None:
                    locations[point.job.name] = restored
            run.phase("cross-store")
            outcome.cross_checks = [_cross_check(context, check, locations) for check in plan.checks]
            if all(store.passed for store in outcome.stores):
                outcome.service_seconds = time.monotonic() - started
            run.phase("clean-up")
        run.details.update(_figures(outcome))
        outcome.report_paths = write_exercise_report(context, plan, outcome)
        run.details.update(report=str(outcome.report_paths["json"]))
        if not outcome.passed:
            run.fail(f"{len(outcome.failures)} failure(s): {outcome.failures[0]}", VerificationFailed.state)
    return outcome


def _restore_point(
    context: Context,
    targets: contextlib.ExitStack,
    point: ChosenPoint,
    run: RunRecorder,
    plan_name: str,
    *,
    shared_lock: bool,
) -> tuple[StoreOutcome, tuple[Store, Target] | None]:
    """Restore one point into a scratch target that `targets` removes; return its outcome and, when the data
    passed its checks, the store and where the data sits. A fault of this store (unreachable, refused, no space)
    is a failed `restore` check: the drill goes on to find what else fails."""
    job = point.job
    store = context.store(job, point.policy)
    outcome = StoreOutcome(
        job.name,
        store.describe(),
        point.destination.name,
        point.expected.snapshot_id,
        point.taken_at,
        point.verified,
        point.policy.rto.total_seconds(),
    )
    run.phase(f"restore {job.name}")
    context.progress(f"restoring '{job.name}' snapshot {point.expected.snapshot_id} from '{point.destination.name}'")
    # A run of the job's own (kind `drill_restore`, child of the drill's): the job's history shows the restore, and
    # its measured RTO feeds the job's RTO forecast beside its verifications'.
    with recorded_run(
        context.catalog,
        job.name,
        DRILL_RESTORE_KIND,
        destination=point.destination.name,
        snapshot_id=point.expected.snapshot_id,
        parent_run_id=run.run_id,
        phase="restore",
        details={"plan": plan_name},
    ) as store_run:
        started = time.monotonic()
        try:
            label = f"{job.name}-{run.run_id}"
            target = targets.enter_context(store.scratch_target(context.settings.scratch_path, label))
            proven = restore_and_prove(
                context,
                store,
                point.policy,
                point.repository,
                point.expected,
                target,
                shared_lock=shared_lock,
                phase=lambda name: run.phase(f"{name} {job.name}"),
            )
        except Interrupted:
            raise
        except ReplicaError as error:
            detail = f"'{job.name}' could not be restored: {error}"
            outcome.checks = [CheckOutcome("restore", False, True, detail, time.monotonic() - started)]
            context.catalog.add_checks(store_run.run_id, outcome.checks)
            store_run.fail(detail, failure_state(error))
            return outcome, None
        outcome.checks = proven.checks
        context.catalog.add_checks(store_run.run_id, proven.checks)
        if not proven.passed or proven.location is None:
            failed = ", ".join(check.name for check in proven.checks if check.critical and not check.passed)
            store_run.fail(f"critical checks failed: {failed}", VerificationFailed.state)
            return outcome, None
        outcome.rto_seconds = time.monotonic() - started
        store_run.details.update(rto_seconds=outcome.rto_seconds)
    return outcome, (store, proven.location)


def _cross_check(
    context: Context, check: CrossStoreCheckConfig, locations: dict[str, tuple[Store, Target]]
) -> CrossStoreResult:
    """Run one cross-store check on the restored targets; a store that was not restored, or a query that fails,
    fails the check with the reason."""
    values_job, exist_in_job = check.values.job, check.exist_in.job
    context.progress(f"cross-store check '{check.name}'")
    started = time.monotonic()
    try:
        values = _read(check.values, locations)
        exist_in = _read(check.exist_in, locations)
    except ReplicaError as error:
        return CrossStoreResult(check.name, check.critical, values_job, exist_in_job, error=str(error))
    return compare_values(
        check.name,
        check.critical,
        values_job,
        values,
        exist_in_job,
        exist_in,
        duration_seconds=time.monotonic() - started,
    )


def _read(query: StoreQueryConfig, locations: dict[str, tuple[Store, Target]]) -> set[str]:
    if query.job not in locations:
        raise UsageError(f"'{query.job}' was not restored (see its checks)")
    store, location = locations[query.job]
    return extract_values(store.restored_values(location, query.kind, query.text), query.extract)


def _figures(outcome: DrillOutcome) -> dict[str, Any]:
    """Return the run's figures, which its `drill` event in the verification log carries."""
    return {
        "cut": outcome.cut.isoformat(),
        "service_seconds": round(outcome.service_seconds, 3) if outcome.service_seconds is not None else None,
        "service_rto_objective_seconds": outcome.rto_objective_seconds,
        "stores": [
            {
                "job": store.job,
                "destination": store.destination,
                "snapshot": store.snapshot_id,
                "taken_at": store.taken_at.isoformat(),
                "verified_before": store.verified,
                "rto_seconds": round(store.rto_seconds, 3) if store.rto_seconds is not None else None,
                "rto_objective_seconds": store.rto_objective_seconds,
                "checks": [{"name": c.name, "passed": c.passed, "critical": c.critical} for c in store.checks],
            }
            for store in outcome.stores
        ],
        "cross_store_checks": [
            {"name": c.name, "passed": c.passed, "missing_count": c.missing_count} for c in outcome.cross_checks
        ],
        "checks_total": sum(len(store.checks) for store in outcome.stores) + len(outcome.cross_checks),
        "checks_failed": sum(not c.passed for store in outcome.stores for c in store.checks)
        + sum(not c.passed for c in outcome.cross_checks),
        "failures": len(outcome.failures),
    }


def drill_plan(
    context: Context, name: str, *, at: datetime | None = None, destination: str | None = None
) -> DrillOutcome:
    """Drill plan `name` from the catalog's recovery points at or before `at` (default: now) in `destination`
    (default: the plan's, else each job's primary); return the outcome.

    Raises ConfigError/NotFound for a broken or unknown plan, NotFound when a job has no point at or before the
    cut, and what `run_drill` raises.
    """
    from replica.actions.drill_points import catalog_points

    plan = context.drill_plans.plan(name)
    cut = at or utc_now()
    return run_drill(context, plan, catalog_points(context, plan, cut, destination_name=destination), cut)


def clean_room_drill(
    context: Context,
    name: str,
    credentials: CleanRoomCredentials,
    *,
    destination: str,
    at: datetime | None = None,
) -> DrillOutcome:
    """Drill plan `name` from secondary `destination` alone, with the given credentials and no catalog lookup for
    points or repositories (the clean room); return the outcome. The drill's own run and report are recorded as any
    drill's. Raises as `clean_room_points` and `run_drill`.
    """
    from replica.actions.clean_room import clean_room_context, clean_room_points

    plan = context.drill_plans.plan(name)
    cut = at or utc_now()
    clean = clean_room_context(context, credentials)
    with tempfile.TemporaryDirectory(prefix="replica-clean-room-cache-") as cache:
        points = clean_room_points(clean, plan, cut, destination, credentials, Path(cache))
        return run_drill(clean, plan, points, cut)
