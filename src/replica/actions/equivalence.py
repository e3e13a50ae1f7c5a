"""`replica verify JOB --all-destinations`: the same recovery point restored from every destination.

Copies are matched by the backup run that made them (`original_id`), not by restic snapshot id, which `restic copy`
changes. Each copy is verified against the one backup-time fingerprint (row counts and content digests per table,
keys and values, files and digests), so copies that all pass are logically equivalent; a copy that diverges or is
missing fails, with a data-loss report naming its destination.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from replica.actions.context import Context
from replica.actions.locking import holding_job
from replica.actions.notifications import notifying
from replica.actions.report import write_data_loss_report
from replica.actions.runs import recorded_run
from replica.actions.verify import VerifyOutcome, run_verify
from replica.catalog.models import Snapshot
from replica.catalog.records import CheckOutcome
from replica.errors import Interrupted, ReplicaError, UsageError, VerificationFailed


@dataclass
class EquivalenceOutcome:
    """Per destination: its verification, or why it could not be verified."""

    job: str
    original_id: str
    verified: list[VerifyOutcome] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Return True when every destination restored the recovery point to the backup-time fingerprint."""
        return not self.failures and all(outcome.passed for outcome in self.verified)


def _recovery_point(rows: list[Snapshot], snapshot_id: str | None, job: str) -> str:
    usable = [row for row in rows if row.usable]
    if snapshot_id is None:
        if not usable:
            raise UsageError(f"job '{job}' has no recorded snapshot; run 'replica backup {job}' first")
        return usable[0].original_id
    originals = {
        row.original_id
        for row in usable
        if row.snapshot_id.startswith(snapshot_id) or row.original_id.startswith(snapshot_id)
    }
    if len(originals) != 1:
        raise UsageError(f"snapshot '{snapshot_id}' of job '{job}' is {'ambiguous' if originals else 'unknown'}")
    return originals.pop()


@notifying
@holding_job("verify")
def run_verify_all(context: Context, job_name: str, snapshot_id: str | None = None) -> EquivalenceOutcome:
    """Verify one recovery point (newest when None) in every destination and return the outcomes."""
    job, _ = context.job(job_name)
    rows = list(context.catalog.snapshots(job.name))
    original_id = _recovery_point(rows, snapshot_id, job.name)
    outcome = EquivalenceOutcome(job.name, original_id)
    for destination in job.destinations:
        copy = next(
            (
                row
                for row in rows
                if row.destination == destination.name and row.original_id == original_id and row.usable
            ),
            None,
        )
        if copy is None:
            _record_missing(context, job_name, destination.name, original_id)
            outcome.failures[destination.name] = f"recovery point {original_id} is missing from this destination"
            continue
        try:
            outcome.verified.append(run_verify(context, job.name, destination.name, copy.snapshot_id))
        except Interrupted:
            raise  # stopped on purpose: the remaining destinations must not start
        except ReplicaError as error:
            outcome.failures[destination.name] = str(error)
    return outcome


def _record_missing(context: Context, job_name: str, destination: str, original_id: str) -> None:
    """Record a failed verification for a destination that lacks the recovery point, and report it."""
    job, policy = context.job(job_name)
    check = CheckOutcome("present", False, True, f"no copy of recovery point {original_id} in '{destination}'")
    with recorded_run(
        context.catalog,
        job.name,
        "verify",
        destination=destination,
        phase="present",
        snapshot_id=original_id,
        details={"original_id": original_id},
    ) as run:
        context.catalog.add_checks(run.run_id, [check])
        run.fail(check.detail)
    write_data_loss_report(
        context, job, policy, destination, original_id, run.run_id, [check], failure=VerificationFailed.state
    )
