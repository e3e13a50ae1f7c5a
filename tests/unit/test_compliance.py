"""RPO and RTO compliance over a period (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from replica.policy.compliance import VerifiedPoint, rpo_compliance, rto_compliance

START = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_a_point_verified_every_hour_keeps_a_two_hour_objective_all_period() -> None:
    points = [VerifiedPoint(START + n * HOUR, START + n * HOUR - timedelta(minutes=5)) for n in range(0, 11)]
    result = rpo_compliance(points, 2 * 3600, START, START + 10 * HOUR)
    assert result.compliance == pytest.approx(1.0)
    assert result.worst_seconds == pytest.approx(3600 + 300)


def test_a_gap_counts_only_the_time_past_the_objective() -> None:
    """GIVEN points verified at 0h and 5h, objective 2h THEN 1h55m... of 0h-5h is out: from 2h (point 0h) to 5h."""
    points = [VerifiedPoint(START, START), VerifiedPoint(START + 5 * HOUR, START + 5 * HOUR)]
    result = rpo_compliance(points, 2 * 3600, START, START + 6 * HOUR)
    # within: 0h-2h (2h) + 5h-6h (1h) = 3h of 6h
    assert result.seconds_within_objective == pytest.approx(3 * 3600)
    assert result.compliance == pytest.approx(0.5)
    assert result.worst_seconds == pytest.approx(5 * 3600)


def test_no_verified_point_is_never_compliant() -> None:
    result = rpo_compliance([], 3600, START, START + HOUR)
    assert result.compliance == 0.0 and result.worst_seconds is None


def test_a_point_verified_before_the_period_counts_from_its_start() -> None:
    points = [VerifiedPoint(START - HOUR, START - HOUR)]
    result = rpo_compliance(points, 2 * 3600, START, START + 2 * HOUR)
    assert result.seconds_within_objective == pytest.approx(3600)
    assert result.worst_seconds == pytest.approx(3 * 3600)


def test_an_older_point_verified_later_does_not_lower_the_newest() -> None:
    points = [VerifiedPoint(START, START), VerifiedPoint(START + HOUR, START - 10 * HOUR)]
    result = rpo_compliance(points, 3 * 3600, START, START + 2 * HOUR)
    assert result.compliance == pytest.approx(1.0)


def test_rto_compliance_counts_and_ranks() -> None:
    result = rto_compliance([10.0, 30.0, 700.0], 600)
    assert (result.measured, result.within_objective, result.worst_seconds, result.median_seconds) == (
        3,
        2,
        700.0,
        30.0,
    )
    assert result.compliance == pytest.approx(2 / 3)
    assert rto_compliance([], 600).compliance is None
