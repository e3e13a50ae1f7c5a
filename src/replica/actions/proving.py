"""Restoring a snapshot into a target that already exists and proving the data usable: the part of a verification
that a drill repeats for every store of a service (the drill keeps every target up for its cross-store checks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from replica.actions.context import Context, sidecar_key
from replica.actions.restoring import SnapshotRef, restore_snapshot
from replica.catalog.models import Snapshot
from replica.catalog.records import CheckOutcome, utc_now
from replica.config.models import CHECK_NAMES, DestinationConfig, PolicyConfig
from replica.policy.canary import evaluate_canary
from replica.restic.command import Repository
from replica.stores.base import Canary, Fingerprint, Store, Target


@dataclass(frozen=True)
class ExpectedData:
    """What a snapshot should restore to: where it stores its data and the fingerprint taken at backup time."""

    snapshot_id: str
    stored_name: str
    fingerprint: Fingerprint

    @classmethod
    def of_snapshot(cls, row: Snapshot) -> ExpectedData:
        """Return what a snapshot the catalog records should restore to."""
        return cls(row.snapshot_id, row.stored_name, row.fingerprint)

    @classmethod
    def of_sidecar(cls, snapshot_id: str, sidecar: dict[str, Any]) -> ExpectedData:
        """Return what snapshot `snapshot_id` should restore to, as its fingerprint sidecar says."""
        return cls(snapshot_id, str(sidecar["stored_name"]), dict(sidecar["fingerprint"]))


def read_sidecar(
    context: Context, job: str, destination: DestinationConfig, snapshot_ids: Sequence[str]
) -> dict[str, Any] | None:
    """Return the fingerprint sidecar of a snapshot of `job` in `destination`, stored under the first of
    `snapshot_ids` that has one (a copy is recorded by its short id), or None when none does or it is another
    job's. Raises StorageError when the bucket cannot be read."""
    storage = context.storage(destination)
    for snapshot_id in snapshot_ids:
        sidecar = storage.get_json(destination.bucket, sidecar_key(destination, snapshot_id))
        if sidecar is not None:
            return sidecar if sidecar.get("job") == job else None
    return None


@dataclass(frozen=True)
class Proven:
    """The checks of one restore into a target, from `restore` on, and what they found on the way."""

    checks: list[CheckOutcome]
    location: Target | None  # where the restored data sits; None when the restore failed
    suspects: tuple[str, ...] | None  # repository files restic named when the restore failed on damaged data
    data_checks_seconds: float | None  # what proving the data usable took, beside the restore itself
    canary: Canary | None  # the newest canary found in the restored data

    @property
    def passed(self) -> bool:
        """Return True when the restore and every critical check of the data passed."""
        return self.location is not None and all(check.passed for check in self.checks if check.critical)


def restore_and_prove(
    context: Context,
    store: Store,
    policy: PolicyConfig,
    repository: Repository,
    expected: ExpectedData,
    target: Target,
    *,
    shared_lock: bool,
    phase: Callable[[str], None],
) -> Proven:
    """Restore the snapshot into `target`, then run the store's checks and the canary check on the data; return
    the checks (criticality decided by the policy). `phase` is told when the data checks start.

    Raises only what `restore_snapshot` raises (faults that say nothing about the data).
    """
    restored = restore_snapshot(
        context,
        store,
        repository,
        SnapshotRef(expected.snapshot_id, expected.stored_name),
        target,
        shared_lock=shared_lock,
    )
    checks = [critical_by_policy(policy, restored.check)]
    suspects = restored.damage.suspects if restored.damage is not None else None
    if not restored.check.passed:
        return Proven(checks, None, suspects, None, None)
    phase("check-data")
    context.progress("checking the restored data")
    location = store.restored_location(target, expected.stored_name)
    started = time.monotonic()
    checks += [
        critical_by_policy(policy, check)
        for check in store.check_restored(location, expected.fingerprint, policy.verification)
    ]
    data_checks_seconds = round(time.monotonic() - started, 3)
    found = None
    if "canary" in expected.fingerprint:
        found = store.read_canary(location)
        written = Canary.from_document(expected.fingerprint["canary"])
        checks.append(critical_by_policy(policy, evaluate_canary(written, found, utc_now())))
    return Proven(checks, location, suspects, data_checks_seconds, found)


def critical_by_policy(policy: PolicyConfig, check: CheckOutcome) -> CheckOutcome:
    """Return the check with its criticality decided by the policy.

    A failed restore is always critical (no data came back, and the data checks did not even run), as are checks
    the policy cannot name.
    """
    critical = (
        check.name == "restore" or check.name not in CHECK_NAMES or check.name in policy.verification.critical_checks
    )
    return CheckOutcome(check.name, check.passed, critical, check.detail, check.duration_seconds)
