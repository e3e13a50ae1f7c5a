"""`replica restore JOB --to TARGET`: for engineers under pressure. Never overwrites data without --force, and
even then the replaced data is renamed aside, not deleted; the restore is verified before it is put in place."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from replica.actions.context import Context
from replica.actions.proving import ExpectedData
from replica.actions.restoring import SnapshotRef, restore_snapshot
from replica.actions.runs import recorded_run
from replica.actions.verify import resolve_expected
from replica.catalog.records import CheckOutcome, utc_now
from replica.config.models import DestinationConfig, JobConfig
from replica.errors import NotFound, TargetFull, TargetNotEmpty, UsageError, VerificationFailed
from replica.stores.base import Target


@dataclass
class RestorePlan:
    """What a restore will do (all a dry run does is compute this)."""

    job: str
    destination: str
    snapshot_id: str
    target: Target
    target_has_data: bool
    force: bool

    @property
    def refused(self) -> bool:
        """Return True when the target holds data and --force was not given."""
        return self.target_has_data and not self.force

    def describe(self) -> list[str]:
        """Return the plan as lines for people."""
        lines = [
            f"job:         {self.job}",
            f"destination: {self.destination}",
            f"snapshot:    {self.snapshot_id}",
            f"target:      {self.target.description}",
        ]
        return [*lines, outcome_line(refused=self.refused, has_data=self.target_has_data)]


def outcome_line(*, refused: bool, has_data: bool, created: str = "the target will be created") -> str:
    """Return the `outcome:` line of a restore plan: refused, replacing (the current data kept aside) or creating."""
    if refused:
        return "outcome:     REFUSED: the target holds data (use --force to replace it; it is kept aside)"
    if has_data:
        return "outcome:     the target's current data will be renamed aside, then replaced"
    return f"outcome:     {created}"


@dataclass
class RestoreOutcome:
    """A finished restore: where the data went, what was moved aside, checks and duration."""

    plan: RestorePlan
    run_id: int
    duration_seconds: float
    replaced: str | None
    checks: list[CheckOutcome] = field(default_factory=list)


def _snapshot_at(context: Context, job: JobConfig, destination: DestinationConfig, at: datetime) -> str:
    for row in context.catalog.snapshots(job.name, destination.name):
        if row.usable and row.taken_at <= at:
            return row.snapshot_id
    raise NotFound(f"job '{job.name}' has no snapshot taken at or before {at.isoformat()} in '{destination.name}'")


def plan_restore(
    context: Context,
    job_name: str,
    to: str,
    *,
    snapshot_id: str | None = None,
    at: datetime | None = None,
    destination_name: str | None = None,
    force: bool = False,
) -> tuple[RestorePlan, ExpectedData]:
    """Return the plan of a restore and the snapshot's expected data. Raises UsageError/ConfigError."""
    job, policy = context.job(job_name)
    if snapshot_id and at:
        raise UsageError("give --snapshot or --at, not both")
    destination = context.destination(job, destination_name)
    if at is not None:
        snapshot_id = _snapshot_at(context, job, destination, at)
    expected = resolve_expected(context, job, destination, snapshot_id)
    store = context.store(job, policy)
    target = store.named_target(to)
    plan = RestorePlan(job.name, destination.name, expected.snapshot_id, target, store.target_has_data(target), force)
    return plan, expected


def run_restore(context: Context, plan: RestorePlan, expected: ExpectedData) -> RestoreOutcome:
    """Carry out a plan: restore into a staging target beside the final one, verify, then put it in place.

    Raises TargetNotEmpty when the plan is refused, VerificationFailed when the restored data fails a critical
    check (the final target is then untouched), ResticError/StorageError when the destination cannot be read.
    """
    if plan.refused:
        raise TargetNotEmpty(f"{plan.target.description} already holds data; refusing to overwrite it without --force")
    job, policy = context.job(plan.job)
    destination = context.destination(job, plan.destination)
    store = context.store(job, policy)
    repository = context.repository(job, destination)
    with recorded_run(
        context.catalog,
        job.name,
        "restore",
        destination=destination.name,
        snapshot_id=plan.snapshot_id,
        phase="probe",
        details={"target": plan.target.description, "force": plan.force},
    ) as run:
        context.probe(destination)
        started = time.monotonic()
        label = utc_now().strftime("%Y%m%dT%H%M%S")
        context.progress(f"[1/3] restoring snapshot {plan.snapshot_id} from '{destination.name}'")
        run.phase("restore")
        with store.staging_target(plan.target, label) as staged:
            try:
                restored = restore_snapshot(
                    context,
                    store,
                    repository,
                    SnapshotRef(plan.snapshot_id, expected.stored_name),
                    staged,
                    shared_lock=True,  # not under the job's lock: restic's shared lock keeps a prune out
                ).check
            except TargetFull as error:
                # The staging copy is removed on the way out: nothing half-restored is left looking like a restore.
                raise TargetFull(
                    f"restore into {plan.target.description} failed: {error}; nothing was put in place"
                ) from None
            checks = [restored]
            context.progress(f"      {restored.detail}")
            if restored.passed:
                run.phase("check")
                context.progress("[2/3] checking the restored data against the backup's fingerprint")
                location = store.restored_location(staged, expected.stored_name)
                checks += store.check_restored(location, expected.fingerprint, policy.verification)
                for check in checks[1:]:
                    context.progress(f"      {check.name}: {'ok' if check.passed else 'FAILED'}: {check.detail}")
            context.catalog.add_checks(run.run_id, checks)
            failed = [c for c in checks if not c.passed]
            if failed:
                raise VerificationFailed(
                    f"restored data failed {failed[0].name}: {failed[0].detail}; "
                    f"{plan.target.description} was not touched"
                )
            run.phase("promote")
            if not plan.force and store.target_has_data(plan.target):
                # Someone put data there while we restored: the plan's "empty" no longer holds.
                raise TargetNotEmpty(
                    f"{plan.target.description} received data during the restore; refusing to overwrite it "
                    "without --force"
                )
            context.progress(f"[3/3] putting the data in place at {plan.target.description}")
            replaced = store.promote(location, plan.target, f".replaced-{label}")
        duration = time.monotonic() - started
        run.details.update(rto_seconds=duration, replaced=replaced)
    return RestoreOutcome(plan, run.run_id, duration, replaced, checks)
