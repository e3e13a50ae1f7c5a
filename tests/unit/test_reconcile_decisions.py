"""The pure decisions of startup reconciliation: which snapshots are orphans, which may still be recorded by a
live run, when a copy is proven identical to its original, and what retention does with unusable snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from replica.actions.prune import add_unusable
from replica.actions.reconcile import made_by, may_still_be_recorded, proven_original, run_tag, unknown_snapshots
from replica.catalog.models import Run, Snapshot
from replica.policy.retention import NOTHING_VERIFIED, RetentionDecision
from replica.restic.messages import ResticSnapshot

NOW = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
ORIGINAL = "a1b2c3d4" + "0" * 56
TREE = "f" * 64


def listed(
    snapshot_id: str, *, run: int | None = 7, original: str | None = None, tree: str | None = TREE
) -> ResticSnapshot:
    tags = ("replica", "replica-job=billing", *((f"replica-run={run}",) if run is not None else ()))
    return ResticSnapshot(snapshot_id, snapshot_id[:8], NOW, ("/billing.sql",), "host", tags, original, tree)


def run(run_id: int, status: str, kind: str = "backup", parent: int | None = None, destination: str = "primary") -> Run:
    return Run(id=run_id, status=status, kind=kind, parent_run_id=parent, destination=destination)


def row(snapshot_id: str, *, usable: bool = True, pruned: bool = False, reason: str | None = None) -> Snapshot:
    return Snapshot(
        snapshot_id=snapshot_id,
        usable=usable,
        pruned_at=NOW if pruned else None,
        taken_at=NOW - timedelta(hours=1),
        unusable_reason=reason,
    )


def test_only_snapshots_tagged_with_a_run_and_unknown_to_the_catalog_are_orphans() -> None:
    known = listed("1111111122")
    orphan = listed("2222222233")
    by_hand = listed("3333333344", run=None)  # made with restic by a person: not replica's to judge
    assert unknown_snapshots([known, orphan, by_hand], ["11111111"]) == [orphan]
    assert run_tag(orphan) == 7 and run_tag(by_hand) is None


def test_a_run_id_tag_proves_nothing_unless_the_run_is_a_backup_of_the_job_on_that_host_at_that_time() -> None:
    orphan = listed("2222222233")  # taken at NOW on "host", tagged run 7 of billing

    def backup(**changes: object) -> Run:
        fields: dict[str, object] = {
            "id": 7, "job": "billing", "kind": "backup", "host": "host", "status": "abandoned",
            "started_at": NOW - timedelta(minutes=1), "finished_at": NOW + timedelta(minutes=1),
        }  # fmt: skip
        return Run(**{**fields, **changes})

    assert made_by(backup(), "billing", orphan)
    assert made_by(backup(finished_at=None), "billing", orphan)  # still marked running: up to now
    # another catalog's run 7 (another job, kind, host, or hours away) is not its maker: left alone, never adopted
    assert not made_by(backup(job="crm"), "billing", orphan)
    assert not made_by(backup(kind="verify"), "billing", orphan)
    assert not made_by(backup(host="db7"), "billing", orphan)
    assert not made_by(
        backup(started_at=NOW + timedelta(hours=2), finished_at=NOW + timedelta(hours=3)), "billing", orphan
    )
    assert not made_by(
        backup(started_at=NOW - timedelta(hours=3), finished_at=NOW - timedelta(hours=2)), "billing", orphan
    )


def test_a_snapshot_of_a_running_backup_or_of_a_running_copy_to_that_destination_may_still_be_recorded() -> None:
    assert may_still_be_recorded(run(7, "running"), [], "primary")
    assert not may_still_be_recorded(run(7, "abandoned"), [], "primary")
    live_copy = run(9, "running", kind="copy", parent=7, destination="offsite")
    assert may_still_be_recorded(run(7, "succeeded"), [live_copy], "offsite")
    assert not may_still_be_recorded(run(7, "succeeded"), [live_copy], "other")


def test_a_copy_is_proven_only_by_a_usable_recorded_original_with_the_same_root_tree() -> None:
    copy = listed("c0c0c0c0aa", original=ORIGINAL)
    primary = [listed(ORIGINAL)]
    recorded = row("a1b2c3d4")
    assert proven_original(copy, [recorded], primary) is recorded
    # a different tree, an original the primary no longer lists, one the catalog holds unusable or pruned, a copy
    # without `original`: not proven
    assert proven_original(listed("c0c0c0c0aa", original=ORIGINAL, tree="e" * 64), [recorded], primary) is None
    assert proven_original(copy, [recorded], []) is None
    assert proven_original(copy, [row("a1b2c3d4", usable=False)], primary) is None
    assert proven_original(copy, [row("a1b2c3d4", pruned=True)], primary) is None
    assert proven_original(listed("c0c0c0c0aa"), [recorded], primary) is None


def test_retention_removes_unusable_snapshots_once_the_destination_has_a_verified_point_and_never_before() -> None:
    unusable = [row("deadbeef", usable=False, reason="left by run 7")]

    decision = RetentionDecision()
    add_unusable(decision, unusable, any_verified=True)
    assert [c.snapshot_id for c in decision.remove] == ["deadbeef"] and decision.keep == []
    assert decision.reasons["deadbeef"] == ["unusable, never a recovery point: left by run 7"]

    decision = RetentionDecision()
    add_unusable(decision, unusable, any_verified=False)
    assert [c.snapshot_id for c in decision.keep] == ["deadbeef"] and decision.remove == []
    assert decision.reasons["deadbeef"] == [NOTHING_VERIFIED]
