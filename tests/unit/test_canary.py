"""The canary check: the restored canary must be the one written right before the snapshot's own dump."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from replica.policy.canary import evaluate_canary
from replica.report.dataloss import RecoveryPoint
from replica.stores.base import Canary

WRITTEN = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
NOW = WRITTEN + timedelta(minutes=42)


def test_the_backups_own_canary_passes_and_gives_the_data_loss_window() -> None:
    check = evaluate_canary(Canary(7, WRITTEN), Canary(7, WRITTEN), NOW)
    assert check.passed and check.name == "canary"
    assert "real recovery point 2026-11-26T12:00:00+00:00" in check.detail
    assert "42m00s" in check.detail


def test_an_older_canary_means_the_dump_missed_the_latest_writes() -> None:
    older = Canary(6, WRITTEN - timedelta(hours=1))
    check = evaluate_canary(Canary(7, WRITTEN), older, NOW)
    assert not check.passed and check.critical
    assert "run 6" in check.detail and "run 7" in check.detail and "missed the latest writes" in check.detail


def test_no_canary_in_the_restore_fails() -> None:
    check = evaluate_canary(Canary(7, WRITTEN), None, NOW)
    assert not check.passed
    assert "no canary in the restored data" in check.detail


def test_a_canary_of_another_run_at_the_same_time_fails() -> None:
    assert not evaluate_canary(Canary(7, WRITTEN), Canary(8, WRITTEN), NOW).passed


def test_canary_round_trips_through_its_document() -> None:
    canary = Canary(12, WRITTEN)
    assert Canary.from_document(canary.as_document()) == canary


def test_recovery_point_prefers_the_canary_time_over_the_snapshot_time() -> None:
    snapshot_time = WRITTEN + timedelta(seconds=3)
    with_canary = RecoveryPoint("primary", "abcd1234", snapshot_time, True, 1.0, WRITTEN)
    without = RecoveryPoint("primary", "abcd1234", snapshot_time, True, 1.0)
    assert with_canary.recovery_point == WRITTEN
    assert without.recovery_point == snapshot_time


def test_a_failed_restore_is_critical_whatever_the_policy_lists() -> None:
    from replica.actions.proving import critical_by_policy
    from replica.catalog.records import CheckOutcome
    from replica.config.models import PolicyConfig

    policy = PolicyConfig.model_validate(
        {"name": "lax", "rpo": "1h", "rto": "1h", "verification": {"critical_checks": ["fingerprint"]}}
    )
    assert critical_by_policy(policy, CheckOutcome("restore", False, False, "dump failed")).critical
    assert not critical_by_policy(policy, CheckOutcome("integrity", False, True, "x")).critical
