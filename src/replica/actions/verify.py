"""`replica verify JOB`: check the repository, restore into a scratch target, prove the data usable, measure RTO."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from replica.actions.context import Context
from replica.actions.locking import holding_job
from replica.actions.notifications import notifying
from replica.actions.probing import probing_beside
from replica.actions.proving import ExpectedData, critical_by_policy, read_sidecar, restore_and_prove
from replica.actions.report import write_data_loss_report
from replica.actions.runs import RunRecorder, recorded_run
from replica.catalog.records import CheckOutcome
from replica.config.models import DestinationConfig, JobConfig, PolicyConfig, is_physical
from replica.errors import (
    DATA_LOSS_STATES,
    NotFound,
    ReplicaError,
    RepositoryCorrupt,
    StorageError,
    UsageError,
    VerificationFailed,
    failure_state,
)
from replica.restic.check import check_repository
from replica.restic.command import Repository
from replica.stores.base import Store

# A restic check or restore that fails on damaged data is confirmed at rest; when the stored files are intact (a
# fault in transit, an interrupted read), the verification runs once more before it is called inconclusive.
VERIFY_ATTEMPTS = 2
INCONCLUSIVE = "inconclusive"  # the failure state (errors.FAILURE_STATES) of damage that is not at rest
AT_REST_CHECK = "at-rest"


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
    # Why it failed (errors.FAILURE_STATES): `corrupt` (damage confirmed at rest), `inconclusive` (restic saw damage
    # the stored files do not have: no data-loss report), `verification_failed`; None when it passed.
    failure: str | None = None
    # Repository files confirmed damaged or missing at rest (`key`, `state`, `expected_sha256`, `found_sha256`).
    damaged_objects: list[dict[str, str | None]] = field(default_factory=list)
    # Attempts whose damage report the stored files contradicted (see VERIFY_ATTEMPTS).
    inconclusive_attempts: int = 0

    @property
    def passed(self) -> bool:
        """Return True when every critical check passed (and at least one ran)."""
        return bool(self.checks) and all(check.passed for check in self.checks if check.critical)


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
        return ExpectedData.of_snapshot(snapshots[0])
    matches = [s for s in snapshots if s.snapshot_id.startswith(snapshot_id) or s.original_id.startswith(snapshot_id)]
    if len({s.snapshot_id for s in matches}) > 1:
        raise UsageError(f"snapshot id '{snapshot_id}' is ambiguous in destination '{destination.name}'")
    if matches:
        return ExpectedData.of_snapshot(matches[0])
    unusable = next(
        (
            s
            for s in context.catalog.snapshots(job.name, destination.name)
            if not s.usable and s.snapshot_id.startswith(snapshot_id)
        ),
        None,
    )
    if unusable is not None:
        # Adopted by reconciliation after a crash: even a fingerprint sidecar beside it must not make it one.
        raise UsageError(
            f"snapshot '{snapshot_id}' in '{destination.name}' is not a recovery point: {unusable.unusable_reason}"
        )
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
    sidecar = read_sidecar(context, job.name, destination, [snapshot_id])
    if sidecar is None:
        raise NotFound(
            f"snapshot '{snapshot_id}' of job '{job.name}' is unknown in destination '{destination.name}' "
            "(not in the catalog, no fingerprint sidecar)"
        )
    return ExpectedData.of_sidecar(snapshot_id, sidecar)


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
            for attempt in range(1, VERIFY_ATTEMPTS + 1):
                checks, outcome.rto_seconds, suspects = _attempt(
                    context, job, policy, destination, store, repository, expected, run
                )
                outcome.checks, outcome.failure, outcome.damaged_objects = checks, None, []
                if outcome.passed or suspects is None:
                    break
                # restic saw damage: it is data loss only if the stored bytes no longer hash to their names.
                run.phase("confirm")
                confirmation = _confirm_at_rest(context, destination, suspects)
                outcome.checks.append(confirmation.check)
                outcome.failure, outcome.damaged_objects = confirmation.failure, list(confirmation.damaged_objects)
                if outcome.failure != INCONCLUSIVE:
                    break
                reason = "; ".join(f"{c.name}: {c.detail}" for c in outcome.checks if not c.passed)
                reason += f"; {AT_REST_CHECK}: {confirmation.check.detail}" if confirmation.check.passed else ""
                outcome.inconclusive_attempts = attempt
                run.details.update(inconclusive_attempts=attempt, inconclusive_reason=reason)
                if not confirmation.may_retry or attempt == VERIFY_ATTEMPTS:
                    break
                context.progress(f"damage not confirmed at rest ({confirmation.check.detail}); verifying again")
            run.details.update(
                rto_seconds=outcome.rto_seconds,
                checks_total=len(outcome.checks),
                checks_failed=sum(not c.passed for c in outcome.checks),
            )
            context.catalog.add_checks(run.run_id, outcome.checks)
            if not outcome.passed:
                outcome.failure = outcome.failure or VerificationFailed.state
                failed = ", ".join(c.name for c in outcome.checks if c.critical and not c.passed)
                run.fail(
                    f"inconclusive: restic reported damage that is not confirmed at rest ({failed} failed)"
                    if outcome.failure == INCONCLUSIVE
                    else f"critical checks failed: {failed}",
                    outcome.failure,
                )
    except ReplicaError as error:
        # Only a verification that cannot open the repository at all (wrong password, repository gone) says
        # something about the data: nothing could be restored from it. One kept from running by anything else (the
        # endpoint unreachable or failing, a deadline, a full scratch disk, a stop on purpose) does not: no report.
        if outcome is not None and failure_state(error) in DATA_LOSS_STATES:
            outcome.checks.append(CheckOutcome("verification", False, True, f"verification could not run: {error}"))
            outcome.failure = failure_state(error)
            context.catalog.add_checks(outcome.run_id, outcome.checks)
            _report(context, job, policy, outcome)
            context.progress(f"data-loss report written: {outcome.report_path}")
        raise
    # An inconclusive verification alerts as a failure (the run failed) but is no data loss: no report.
    if not outcome.passed and outcome.failure != INCONCLUSIVE:
        _report(context, job, policy, outcome)
    return outcome


def _attempt(
    context: Context,
    job: JobConfig,
    policy: PolicyConfig,
    destination: DestinationConfig,
    store: Store,
    repository: Repository,
    expected: ExpectedData,
    run: RunRecorder,
) -> tuple[list[CheckOutcome], float | None, tuple[str, ...] | None]:
    """Run a verification's checks once: repository check, restore into a scratch target, checks of the data.

    Return the checks, the measured RTO (None unless the restore and its critical checks passed) and the
    repository files restic named when a check failed on damaged data (None when none did; empty when restic named
    no file).
    """
    suspects: tuple[str, ...] | None = None
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
    if not report.passed:
        suspects = report.suspects
    checks = [
        critical_by_policy(
            policy, CheckOutcome("repository", report.passed, True, report.detail, time.monotonic() - started)
        )
    ]
    rto_seconds = None
    physical = is_physical(job)
    if physical:
        # Imported here: the WAL archive's modules import boto3 (~0.15 s), which a logical job's S3 probe imports in
        # its own thread, beside restic.
        from replica.actions.verify_physical import aim_physical_verification, wal_chain_checks

        # A physical PostgreSQL job recovers to a random moment proven by a canary.
        aim = aim_physical_verification(context, job, store, destination, expected, run)
        expected = aim.expected
        checks += [critical_by_policy(policy, check) for check in aim.checks]
    run.phase("restore")
    context.progress(f"restoring snapshot {expected.snapshot_id} into a scratch target")
    rto_started = time.monotonic()
    label = f"{job.name}-{run.run_id}"
    # Verifying a copy proves that copy: its WAL alone, never the primary's as a silent fallback.
    # A verification proves the destination it verifies: its own WAL alone, the primary's too (a restore, by
    # contrast, may borrow a missing file from another destination).
    store.restoring_from(destination.name, only=True)
    with store.scratch_target(context.settings.scratch_path, label) as target:
        # The job's lock keeps its prune out: no restic lock needed.
        proven = restore_and_prove(
            context, store, policy, repository, expected, target, shared_lock=False, phase=run.phase
        )
        if proven.passed:
            rto_seconds = time.monotonic() - rto_started
    checks += proven.checks
    if physical:
        checks += [critical_by_policy(policy, check) for check in wal_chain_checks(context, job, destination)]
    if proven.suspects is not None:
        suspects = tuple(sorted({*(suspects or ()), *proven.suspects}))
    if proven.data_checks_seconds is not None:
        # What the RTO spends on proving the data usable, beside what the restore itself took.
        run.details.update(data_checks_seconds=proven.data_checks_seconds)
    if proven.canary is not None:
        run.details.update(canary_at=proven.canary.written_at.isoformat(), canary_run_id=proven.canary.run_id)
    return checks, rto_seconds, suspects


@dataclass(frozen=True)
class Confirmation:
    """What re-reading restic's suspect files at rest decided."""

    check: CheckOutcome  # the `at-rest` check
    failure: str  # `corrupt` (damaged or gone at rest) or `inconclusive`
    may_retry: bool  # False when the storage could not even be read, or the damage is confirmed
    damaged_objects: tuple[dict[str, str | None], ...] = ()  # for the data-loss report


def _confirm_at_rest(context: Context, destination: DestinationConfig, suspects: tuple[str, ...]) -> Confirmation:
    """Re-download the suspect repository files (every file when restic named none) and hash them against their
    names; return the decision."""
    from replica.storage.content import confirm_at_rest  # deferred: only a failed verification needs it

    context.progress(f"confirming at rest: re-downloading {len(suspects) or 'every'} suspect repository file(s)")
    started = time.monotonic()
    try:
        found = confirm_at_rest(context.storage(destination), destination.bucket, destination.prefix, suspects)
    except StorageError as error:
        detail = f"could not re-read the repository files to confirm the damage: {error}"
        return Confirmation(
            CheckOutcome(AT_REST_CHECK, False, True, detail, time.monotonic() - started), INCONCLUSIVE, False
        )
    duration = time.monotonic() - started
    if found.confirmed:
        objects: list[dict[str, str | None]] = [
            {"key": d.key, "state": "damaged", "expected_sha256": d.expected_sha256, "found_sha256": d.found_sha256}
            for d in found.damaged
        ]
        objects += [
            {"key": key, "state": "missing", "expected_sha256": None, "found_sha256": None} for key in found.missing
        ]
        check = CheckOutcome(AT_REST_CHECK, False, True, found.describe(), duration)
        return Confirmation(check, RepositoryCorrupt.state, False, tuple(objects))
    detail = f"{found.describe()}: the damage restic saw is not at rest (a fault in transit or an interrupted read)"
    return Confirmation(CheckOutcome(AT_REST_CHECK, True, True, detail, duration), INCONCLUSIVE, True)


def _report(context: Context, job: JobConfig, policy: PolicyConfig, outcome: VerifyOutcome) -> None:
    report_id, path = write_data_loss_report(
        context,
        job,
        policy,
        outcome.destination,
        outcome.snapshot_id,
        outcome.run_id,
        outcome.checks,
        damaged_objects=outcome.damaged_objects,
        failure=outcome.failure,
    )
    outcome.report_id, outcome.report_path = report_id, path
