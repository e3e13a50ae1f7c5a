"""`replica verify JOB`: check the repository, restore into a scratch target, prove the data usable, measure RTO."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from replica.actions.context import Context, sidecar_key
from replica.actions.locking import holding_job
from replica.actions.notifications import notifying
from replica.actions.probing import probing_beside
from replica.actions.report import write_data_loss_report
from replica.actions.restoring import SnapshotRef, restore_snapshot
from replica.actions.runs import RunRecorder, recorded_run
from replica.catalog.models import Snapshot
from replica.catalog.records import CheckOutcome, utc_now
from replica.config.models import CHECK_NAMES, DestinationConfig, JobConfig, PolicyConfig
from replica.errors import Interrupted, ReplicaError, UsageError
from replica.policy.canary import evaluate_canary
from replica.restic.check import check_repository
from replica.stores.base import Canary, Fingerprint, Store, Target


@dataclass
class VerifyOutcome:
    """A verification: its checks, whether every critical one passed, the measured RTO and any report."""

    job: str
    destination: str
    snapshot_id: str
    run_id: int
    checks: list[CheckOutcome] = field(default_factory=list)
    rto_seconds: float | None = None
    report_id: int | None = None
    report_path: Path | None = None

    @property
    def passed(self) -> bool:
        """Return True when every critical check passed (and at least one ran)."""
        return bool(self.checks) and all(check.passed for check in self.checks if check.critical)


@dataclass(frozen=True)
class ExpectedData:
    """What a snapshot should restore to: where it stores its data and the fingerprint taken at backup time."""

    snapshot_id: str
    stored_name: str
    fingerprint: Fingerprint


def resolve_expected(
    context: Context, job: JobConfig, destination: DestinationConfig, snapshot_id: str | None
) -> ExpectedData:
    """Return the snapshot to verify (newest recorded when None) and its backup-time fingerprint.

    A snapshot unknown to this catalog is looked up in the fingerprint sidecar beside the repository.
    Raises UsageError when there is nothing to verify.
    """
    snapshots = [s for s in context.catalog.snapshots(job.name, destination.name) if s.usable]
    if snapshot_id is None:
        if not snapshots:
            raise UsageError(
                f"job '{job.name}' has no recorded snapshot in destination '{destination.name}'; "
                f"run 'replica backup {job.name}' first"
            )
        return _expected_from_row(snapshots[0])
    matches = [s for s in snapshots if s.snapshot_id.startswith(snapshot_id) or s.original_id.startswith(snapshot_id)]
    if len({s.snapshot_id for s in matches}) > 1:
        raise UsageError(f"snapshot id '{snapshot_id}' is ambiguous in destination '{destination.name}'")
    if matches:
        return _expected_from_row(matches[0])
    elsewhere = sorted(
        {s.destination for s in context.catalog.snapshots(job.name) if s.snapshot_id.startswith(snapshot_id)}
    )
    if elsewhere:
        raise UsageError(
            f"snapshot '{snapshot_id}' is in destination {', '.join(elsewhere)}, not '{destination.name}'; "
            f"add --destination {elsewhere[0]}"
        )
    pruned = next(
        (
            (s.prune_run_id, s.pruned_at)
            for s in context.catalog.snapshots(job.name, destination.name, include_pruned=True)
            if s.pruned_at is not None and s.snapshot_id.startswith(snapshot_id)
        ),
        None,
    )
    if pruned is not None:
        # Its sidecar may outlive it; verifying a snapshot retention removed would report a false data loss.
        raise UsageError(
            f"snapshot '{snapshot_id}' was removed from '{destination.name}' by retention "
            f"(prune run {pruned[0]}, {pruned[1].isoformat(timespec='seconds')})"
        )
    sidecar = context.storage(destination).get_json(destination.bucket, sidecar_key(destination, snapshot_id))
    if sidecar is None or sidecar.get("job") != job.name:
        raise UsageError(
            f"snapshot '{snapshot_id}' of job '{job.name}' is unknown in destination '{destination.name}' "
            "(not in the catalog, no fingerprint sidecar)"
        )
    return ExpectedData(snapshot_id, str(sidecar["stored_name"]), dict(sidecar["fingerprint"]))


def _expected_from_row(row: Snapshot) -> ExpectedData:
    return ExpectedData(row.snapshot_id, row.stored_name, row.fingerprint)


@notifying
@holding_job("verify")
def run_verify(
    context: Context, job_name: str, destination_name: str | None = None, snapshot_id: str | None = None
) -> VerifyOutcome:
    """Verify one snapshot of a job in one destination and return the outcome; writes a report on failure.

    Raises (after recording the run as failed and writing a report) StorageError or WrongPassword when the
    destination cannot be read at all; UsageError/ConfigError for bad arguments before any run starts.
    """
    job, policy = context.job(job_name)
    destination = context.destination(job, destination_name)
    store = context.store(job, policy)
    repository = context.repository(job, destination)
    expected = resolve_expected(context, job, destination, snapshot_id)
    outcome: VerifyOutcome | None = None
    try:
        with recorded_run(
            context.catalog,
            job.name,
            "verify",
            destination=destination.name,
            snapshot_id=expected.snapshot_id,
            phase="probe",
        ) as run:
            outcome = VerifyOutcome(job.name, destination.name, expected.snapshot_id, run.run_id)
            with probing_beside(context, destination, run) as probe:
                run.phase("check")
                context.progress(
                    f"checking repository '{destination.name}' (reading {policy.verification.read_data_subset} of data)"
                )
                started = time.monotonic()
                report = check_repository(
                    context.restic,
                    repository,
                    read_data_subset=policy.verification.read_data_subset,
                    cancellation=probe.cancellation,
                )
            outcome.checks.append(
                _critical(
                    policy,
                    CheckOutcome("repository", report.passed, True, report.detail, time.monotonic() - started),
                )
            )
            run.phase("restore")
            context.progress(f"restoring snapshot {expected.snapshot_id} into a scratch target")
            rto_started = time.monotonic()
            label = f"{job.name}-{run.run_id}"
            with store.scratch_target(context.settings.scratch_path, label) as target:
                restored = restore_snapshot(
                    context,
                    store,
                    repository,
                    SnapshotRef(expected.snapshot_id, expected.stored_name),
                    target,
                    shared_lock=False,  # the job's lock keeps its prune out
                )
                outcome.checks.append(_critical(policy, restored))
                if restored.passed:
                    run.phase("check-data")
                    context.progress("checking the restored data")
                    location = store.restored_location(target, expected.stored_name)
                    checks_started = time.monotonic()
                    for check in store.check_restored(location, expected.fingerprint, policy.verification):
                        outcome.checks.append(_critical(policy, check))
                    # What the RTO spends on proving the data usable, beside what the restore itself took.
                    run.details.update(data_checks_seconds=round(time.monotonic() - checks_started, 3))
                    if "canary" in expected.fingerprint:
                        outcome.checks.append(_critical(policy, _check_canary(store, location, expected, run)))
                restore_and_checks_passed = all(c.passed for c in outcome.checks[1:] if c.critical)
                if restored.passed and restore_and_checks_passed:
                    outcome.rto_seconds = time.monotonic() - rto_started
            run.details.update(
                rto_seconds=outcome.rto_seconds,
                checks_total=len(outcome.checks),
                checks_failed=sum(not c.passed for c in outcome.checks),
            )
            context.catalog.add_checks(run.run_id, outcome.checks)
            if not outcome.passed:
                failed = [c.name for c in outcome.checks if c.critical and not c.passed]
                run.fail(f"critical checks failed: {', '.join(failed)}")
    except ReplicaError as error:
        # A verification we stopped ourselves (daemon shutdown) says nothing about the data: no report.
        if outcome is not None and not isinstance(error, Interrupted):
            outcome.checks.append(CheckOutcome("verification", False, True, f"verification could not run: {error}"))
            context.catalog.add_checks(outcome.run_id, outcome.checks)
            _report(context, job, policy, outcome)
            context.progress(f"data-loss report written: {outcome.report_path}")
        raise
    if not outcome.passed:
        _report(context, job, policy, outcome)
    return outcome


def _check_canary(store: Store, location: Target, expected: ExpectedData, run: RunRecorder) -> CheckOutcome:
    """Read the newest canary from the restored data, record the real recovery point, return the check."""
    written = Canary.from_document(expected.fingerprint["canary"])
    found = store.read_canary(location)
    check = evaluate_canary(written, found, utc_now())
    if found is not None:
        run.details.update(canary_at=found.written_at.isoformat(), canary_run_id=found.run_id)
    return check


def _critical(policy: PolicyConfig, check: CheckOutcome) -> CheckOutcome:
    """Return the check with its criticality decided by the policy.

    A failed restore is always critical (no data came back, and the data checks did not even run), as are checks
    the policy cannot name.
    """
    critical = (
        check.name == "restore" or check.name not in CHECK_NAMES or check.name in policy.verification.critical_checks
    )
    return CheckOutcome(check.name, check.passed, critical, check.detail, check.duration_seconds)


def _report(context: Context, job: JobConfig, policy: PolicyConfig, outcome: VerifyOutcome) -> None:
    report_id, path = write_data_loss_report(
        context, job, policy, outcome.destination, outcome.snapshot_id, outcome.run_id, outcome.checks
    )
    outcome.report_id, outcome.report_path = report_id, path
