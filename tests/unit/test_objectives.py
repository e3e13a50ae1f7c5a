"""RPO/RTO evaluation: a pure function from catalog facts to a state and every reason for it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from replica.policy.objectives import AT_RISK, BREACHED, FAILING, OK, JobFacts, Objectives, evaluate

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
OBJECTIVES = Objectives(rpo=timedelta(hours=1), rto=timedelta(minutes=15), at_risk_fraction=0.8)
HEALTHY = JobFacts(
    newest_verified_at=NOW - timedelta(minutes=10),
    last_rto_seconds=120.0,
    last_backup_failed=False,
    last_copy_failed=False,
    last_verify_failed=False,
    abandoned_runs=0,
)


def test_recent_verified_point_and_fast_restore_are_ok() -> None:
    verdict = evaluate(HEALTHY, OBJECTIVES, NOW)

    assert verdict.state == OK
    assert verdict.reasons == []
    assert verdict.rpo_seconds == 600
    assert verdict.rto_seconds == 120


def test_no_verified_point_is_breached() -> None:
    verdict = evaluate(replace(HEALTHY, newest_verified_at=None), OBJECTIVES, NOW)

    assert verdict.state == BREACHED
    assert verdict.rpo_seconds is None
    assert verdict.reasons == ["no verified recovery point"]


def test_rpo_over_objective_is_breached() -> None:
    facts = replace(HEALTHY, newest_verified_at=NOW - timedelta(hours=1, minutes=5))

    verdict = evaluate(facts, OBJECTIVES, NOW)

    assert verdict.state == BREACHED
    assert verdict.reasons == ["RPO 1h05m exceeds objective 1h00m"]


def test_rpo_exactly_at_objective_is_only_at_risk() -> None:
    verdict = evaluate(replace(HEALTHY, newest_verified_at=NOW - timedelta(hours=1)), OBJECTIVES, NOW)

    assert verdict.state == AT_RISK


def test_rpo_past_at_risk_fraction_is_at_risk() -> None:
    facts = replace(HEALTHY, newest_verified_at=NOW - timedelta(minutes=50))

    verdict = evaluate(facts, OBJECTIVES, NOW)

    assert verdict.state == AT_RISK
    assert verdict.reasons == ["RPO 50m00s is near objective 1h00m"]


def test_measured_rto_over_objective_is_breached() -> None:
    verdict = evaluate(replace(HEALTHY, last_rto_seconds=20 * 60), OBJECTIVES, NOW)

    assert verdict.state == BREACHED
    assert verdict.reasons == ["measured RTO 20m00s exceeds objective 15m00s"]


def test_measured_rto_near_objective_is_at_risk() -> None:
    verdict = evaluate(replace(HEALTHY, last_rto_seconds=13 * 60), OBJECTIVES, NOW)

    assert verdict.state == AT_RISK
    assert verdict.reasons == ["measured RTO 13m00s is near objective 15m00s"]


def test_each_failed_run_kind_makes_the_job_failing() -> None:
    for flag, reason in [
        ("last_backup_failed", "last backup failed"),
        ("last_copy_failed", "last copy to a secondary destination failed"),
        ("last_verify_failed", "last verification failed"),
    ]:
        verdict = evaluate(replace(HEALTHY, **{flag: True}), OBJECTIVES, NOW)

        assert (verdict.state, verdict.reasons) == (FAILING, [reason]), flag


def test_failure_states_are_named_in_the_reasons() -> None:
    facts = replace(
        HEALTHY,
        last_backup_failed=True,
        last_backup_failure="throttled",
        last_verify_failed=True,
        last_verify_failures=("corrupt", "inconclusive", "corrupt"),
    )

    verdict = evaluate(facts, OBJECTIVES, NOW)

    assert verdict.reasons == ["last backup failed (throttled)", "last verification failed (corrupt, inconclusive)"]


def test_abandoned_runs_put_the_job_at_risk() -> None:
    verdict = evaluate(replace(HEALTHY, abandoned_runs=2), OBJECTIVES, NOW)

    assert verdict.state == AT_RISK
    assert verdict.reasons == ["2 run(s) abandoned while running"]


def test_failing_wins_over_breached_and_every_reason_is_kept() -> None:
    facts = replace(HEALTHY, newest_verified_at=None, last_verify_failed=True, abandoned_runs=1)

    verdict = evaluate(facts, OBJECTIVES, NOW)

    assert verdict.state == FAILING
    assert verdict.reasons == [
        "no verified recovery point",
        "last verification failed",
        "1 run(s) abandoned while running",
    ]


def test_breached_wins_over_at_risk() -> None:
    facts = replace(HEALTHY, newest_verified_at=NOW - timedelta(hours=2), last_rto_seconds=13 * 60)

    verdict = evaluate(facts, OBJECTIVES, NOW)

    assert verdict.state == BREACHED
    assert len(verdict.reasons) == 2
