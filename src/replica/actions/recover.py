"""`replica recover PLAN --to ENVIRONMENT`: activate the backup environment. Every job of a drill plan is restored
for real, in the plan's order, from its best available recovery point (`replica.actions.recovery_choice`) into the
target the environment file names, under the rules of `replica restore`: a target holding data is refused without
--force (and then its data is kept aside), each store is verified before it is put in place. Every target is
planned before anything is restored, so a refused target stops the whole recovery with nothing half done.

The recovery is recorded: each store's restore as a `restore` run (by `run_restore`), the whole as a `recover`
event in the verification log; a draft notice per client is written (`replica.actions.recovery_notices`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from replica.actions.context import Context
from replica.actions.recovery_choice import RecoveryChoice, RecoveryPointChoice, choose_recovery_points
from replica.actions.recovery_points import expected_recovery_seconds, measured_rtos
from replica.actions.restore import RestoreOutcome, RestorePlan, run_restore
from replica.catalog.actor import current_actor
from replica.catalog.events import EventDraft
from replica.catalog.records import utc_now
from replica.config.drills import DrillPlanConfig
from replica.config.durations import format_duration
from replica.config.environments import EnvironmentFile, load_environment
from replica.config.models import JobConfig
from replica.errors import ConfigError, ReplicaError, TargetNotEmpty, UsageError
from replica.stores.base import Target
from replica.urls import redact_text

RECOVER_EVENT_KIND = "recover"


@dataclass(frozen=True)
class RecoveryStep:
    """One job of the recovery: its chosen point, the restore planned for it and its forecast restore time."""

    choice: RecoveryPointChoice
    restore: RestorePlan
    forecast_seconds: float | None  # worst of the job's last five measured restore times (None: never measured)


@dataclass(frozen=True)
class RecoveryPlan:
    """What a recovery will do (all a dry run does is compute this)."""

    plan: DrillPlanConfig
    environment: EnvironmentFile
    choice: RecoveryChoice
    steps: list[RecoveryStep]
    incident_at: datetime
    force: bool

    @property
    def refused(self) -> list[RestorePlan]:
        """Return the restores refused because their target holds data and --force was not given."""
        return [step.restore for step in self.steps if step.restore.refused]

    @property
    def forecast_seconds(self) -> float | None:
        """Return the expected time of the whole recovery (stores one after another), None if one is unknown."""
        forecasts = [step.forecast_seconds for step in self.steps]
        return None if any(value is None for value in forecasts) else sum(v for v in forecasts if v is not None)

    def describe(self) -> list[str]:
        """Return the plan as lines for people."""
        how = "given with --at" if self.choice.cut_given else "every job's newest verified point"
        moments = [step.choice.point.taken_at for step in self.steps]
        lines = [
            f"recovery of plan '{self.plan.name}' into environment '{self.environment.config.name}'",
            f"cut:         {self.choice.cut.isoformat(timespec='seconds')} ({how})",
            f"incident at: {self.incident_at.isoformat(timespec='seconds')}",
            f"spread:      {format_duration(max(moments) - min(moments))} between the oldest and newest point",
        ]
        for number, step in enumerate(self.steps, start=1):
            point = step.choice.point
            described = step.restore.describe()
            taken = f"taken_at:    {point.taken_at.isoformat(timespec='seconds')}"
            verified = f"verified:    {'yes' if point.verified else 'NO (never passed a test restore)'}"
            lines.append(f"{number}. {described[0]}")
            lines += [f"   {line}" for line in [*described[1:3], taken, verified, *described[3:]]]
        forecast = self.forecast_seconds
        lines.append(
            f"expected recovery time: {format_duration(forecast) if forecast is not None else 'unknown'} "
            f"(from measured restore times); objective {format_duration(self.plan.rto.total_seconds())}"
        )
        lines += [f"warning: {warning}" for warning in self.choice.warnings]
        return lines

    def document(self) -> dict[str, Any]:
        """Return the plan as a JSON-ready document."""
        return {
            "plan": self.plan.name,
            "environment": self.environment.config.name,
            "cut": self.choice.cut.isoformat(),
            "cut_given": self.choice.cut_given,
            "incident_at": self.incident_at.isoformat(),
            "forecast_seconds": self.forecast_seconds,
            "rto_objective_seconds": self.plan.rto.total_seconds(),
            "refused": [restore.target.description for restore in self.refused],
            "warnings": self.choice.warnings,
            "steps": [_step_document(number, step) for number, step in enumerate(self.steps, start=1)],
        }


@dataclass
class RecoveryOutcome:
    """A finished recovery: every store's restore, the total time, the event and the notices written."""

    plan: RecoveryPlan
    restores: list[RestoreOutcome]
    total_seconds: float
    event_seq: int
    notices: list[Path] = field(default_factory=list)


def plan_recovery(
    context: Context,
    plan_name: str,
    environment_path: Path,
    *,
    at: datetime | None = None,
    incident_at: datetime | None = None,
    force: bool = False,
) -> RecoveryPlan:
    """Return the plan of a recovery: the points chosen and every job's restore planned; nothing is changed.

    Raises ConfigError for a broken plan or environment file (every problem, with file and line, including
    targets a store refuses such as the live database), NotFound when a job has no usable point at the cut.
    """
    plan = context.drill_plans.plan(plan_name)
    environment = load_environment(environment_path, plan)
    choice = choose_recovery_points(context, plan, at)
    steps, problems = [], []
    for chosen in choice.points:
        job, policy = chosen.point.job, chosen.point.policy
        store = context.store(job, policy)
        try:
            target = store.named_target(environment.config.targets[job.name].to)
        except UsageError as error:
            problems.append(environment.problem(job.name, str(error)))
            continue
        point = chosen.point
        restore = RestorePlan(
            job.name, point.destination.name, point.expected.snapshot_id, target, store.target_has_data(target), force
        )
        forecast = expected_recovery_seconds(measured_rtos(context.catalog, job.name))
        steps.append(RecoveryStep(chosen, restore, forecast))
    # Without --force a target holding live data is refused anyway (it holds data); with it, every job's live data
    # is looked at, not only the plan's (reading every job file costs seconds on thousands of jobs: only then).
    watched = list(context.configuration.jobs) if force else plan.jobs
    problems += _overlapping_targets(context, watched, environment, steps)
    if problems:
        raise ConfigError(problems)
    return RecoveryPlan(plan, environment, choice, steps, incident_at or utc_now(), force)


def _server_database(job: JobConfig, database: str) -> tuple[str, ...]:
    """Return what names a database on a job's server: its kind, port and name (MariaDB's folded to lower case, as
    it stores them). The host is left out on purpose: `db1`, `10.0.0.5` and `localhost` may be one server, and
    refusing two targets that only might be one database is the safe mistake."""
    store = job.store
    name = database.lower() if store.kind == "mariadb" else database
    return (store.kind, str(getattr(store, "port", "")), name)


def _place(job: JobConfig, target: Target) -> tuple[str, ...] | Path:
    """Return where a target's data lives: its resolved path, or its database (see `_server_database`)."""
    if target.path is not None:
        return target.path.resolve()
    return _server_database(job, str(target.database))


def _live_place(job: JobConfig) -> tuple[str, ...] | Path | None:
    """Return where a job's live data lives, when it is a path or a database on a server (else None)."""
    store = job.store
    path = getattr(store, "path", None)
    if isinstance(path, Path):
        return path.resolve()
    database = getattr(store, "database", None)
    if isinstance(database, str):
        return _server_database(job, database)
    return None


def _overlap(one: tuple[str, ...] | Path, other: tuple[str, ...] | Path) -> bool:
    if isinstance(one, Path) and isinstance(other, Path):
        return one == other or one.is_relative_to(other) or other.is_relative_to(one)
    return one == other


def _overlapping_targets(
    context: Context, jobs: list[str], environment: EnvironmentFile, steps: list[RecoveryStep]
) -> list[str]:
    """Return a problem for every target that is, holds or lies inside another job's target, or the live data of
    one of `jobs`: restoring one would move the other's data aside (a directory promoted over a folder holding a
    file just restored into it), or replace live data under another job's name."""
    problems = []
    places = {step.restore.job: _place(context.job(step.restore.job)[0], step.restore.target) for step in steps}
    live = {name: _live_place(context.job(name)[0]) for name in jobs}
    for job, place in places.items():
        for other, other_place in places.items():
            if other != job and _overlap(place, other_place):
                problems.append(environment.problem(job, f"overlaps the target of job '{other}'"))
                break
        for other, live_place in live.items():
            if live_place is not None and _overlap(place, live_place):
                problems.append(environment.problem(job, f"overlaps the live data of job '{other}'"))
                break
    return problems


def run_recovery(context: Context, recovery: RecoveryPlan) -> RecoveryOutcome:
    """Carry out a plan: restore every job in the plan's order, record the `recover` event, write the notices.

    Raises TargetNotEmpty naming every refused target before anything is restored. A restore that fails stops
    the recovery: the stores restored before it stay in place (their replaced data kept aside), a failed `recover`
    event names them, and the error is raised (VerificationFailed, ResticError, StorageError...).
    """
    from replica.actions.recovery_notices import notice_folder, write_notices

    if recovery.refused:
        targets = "; ".join(restore.target.description for restore in recovery.refused)
        raise TargetNotEmpty(
            f"refusing the whole recovery: {len(recovery.refused)} target(s) already hold data: {targets}; "
            "nothing was restored (use --force to replace them; their data is kept aside)"
        )
    started = time.monotonic()
    restores: list[RestoreOutcome] = []
    for number, step in enumerate(recovery.steps, start=1):
        context.progress(f"== {number}/{len(recovery.steps)}: job '{step.restore.job}'")
        try:
            restores.append(run_restore(context, step.restore, step.choice.point.expected))
        except (ReplicaError, KeyboardInterrupt) as error:
            failure = "interrupted" if isinstance(error, KeyboardInterrupt) else str(error).splitlines()[0]
            _record(context, recovery, restores, time.monotonic() - started, failed=(step.restore.job, failure))
            raise
    total = time.monotonic() - started
    created_at = utc_now()
    folder = notice_folder(context, recovery.plan.name, created_at)
    seq = _record(context, recovery, restores, total, notices=folder)
    paths = write_notices(context, recovery, folder, created_at, restores, total)
    return RecoveryOutcome(recovery, restores, total, seq, paths)


def _record(
    context: Context,
    recovery: RecoveryPlan,
    restores: list[RestoreOutcome],
    total_seconds: float,
    *,
    failed: tuple[str, str] | None = None,
    notices: Path | None = None,
) -> int:
    """Append the `recover` event (succeeded, or failed at a job with its reason); return its sequence number."""
    figures: dict[str, Any] = {
        "plan": recovery.plan.name,
        "environment": recovery.environment.config.name,
        "cut": recovery.choice.cut.isoformat(),
        "incident_at": recovery.incident_at.isoformat(),
        "force": recovery.force,
        "total_seconds": round(total_seconds, 3),
        "jobs": [
            {
                "job": outcome.plan.job,
                "destination": outcome.plan.destination,
                "snapshot": outcome.plan.snapshot_id,
                "run_id": outcome.run_id,
                "seconds": round(outcome.duration_seconds, 3),
                "replaced": outcome.replaced,
            }
            for outcome in restores
        ],
    }
    if notices is not None:
        figures["notices"] = str(notices)
    if failed is not None:
        figures["failed_job"] = failed[0]
        detail = f"recovery of plan '{recovery.plan.name}' stopped at job '{failed[0]}': {redact_text(failed[1])}"
    else:
        detail = (
            f"recovered plan '{recovery.plan.name}' into environment '{recovery.environment.config.name}': "
            f"{len(restores)} stores in {format_duration(total_seconds)}"
        )
    event = context.catalog.events.append(
        EventDraft(
            kind=RECOVER_EVENT_KIND,
            outcome="failed" if failed else "succeeded",
            actor=current_actor(),
            figures=figures,
            detail=detail,
        )
    )
    return event.seq


def _step_document(number: int, step: RecoveryStep) -> dict[str, Any]:
    point, restore = step.choice.point, step.restore
    return {
        "order": number,
        "job": restore.job,
        "destination": restore.destination,
        "snapshot_id": restore.snapshot_id,
        "taken_at": point.taken_at.isoformat(),
        "verified": point.verified,
        "canary_at": step.choice.canary_at.isoformat() if step.choice.canary_at else None,
        "target": restore.target.description,
        "target_has_data": restore.target_has_data,
        "outcome": "refused" if restore.refused else "replace" if restore.target_has_data else "create",
        "forecast_seconds": step.forecast_seconds,
    }
