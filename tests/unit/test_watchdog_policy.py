"""The watchdog's decision: a pure function from catalog facts to the breaches to open and to clear."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from replica.policy.objectives import Objectives
from replica.policy.watchdog import RPO, RTO, WatchFacts, judge_objectives

NOW = datetime(2026, 11, 27, 3, 5, tzinfo=UTC)
OBJECTIVES = Objectives(rpo=timedelta(hours=1), rto=timedelta(minutes=15), at_risk_fraction=0.8)
HEALTHY = WatchFacts(
    job="billing",
    newest_verified_at=NOW - timedelta(minutes=10),
    first_run_at=NOW - timedelta(days=30),
    last_rto_seconds=120.0,
)
STALE = replace(HEALTHY, newest_verified_at=datetime(2026, 11, 27, 1, 0, tzinfo=UTC))


def test_healthy_job_opens_and_clears_nothing() -> None:
    decision = judge_objectives(HEALTHY, OBJECTIVES, NOW)

    assert decision.opened == []
    assert decision.cleared == []


def test_newest_verified_point_older_than_the_rpo_opens_a_breach_naming_job_age_and_point() -> None:
    decision = judge_objectives(STALE, OBJECTIVES, NOW)

    assert [opening.objective for opening in decision.opened] == [RPO]
    opening = decision.opened[0]
    assert opening.measured_seconds == 2 * 3600 + 5 * 60
    assert opening.objective_seconds == 3600
    assert opening.detail == (
        "job 'billing': RPO 2h05m exceeds objective 1h00m: newest verified recovery point 2026-11-27T01:00:00Z"
    )
    assert decision.cleared == []


def test_an_open_rpo_breach_is_not_opened_again() -> None:
    decision = judge_objectives(replace(STALE, open_objectives={RPO}), OBJECTIVES, NOW)

    assert decision.opened == []
    assert decision.cleared == []


def test_an_open_rpo_breach_clears_once_the_newest_verified_point_is_within_the_objective() -> None:
    decision = judge_objectives(replace(HEALTHY, open_objectives={RPO}), OBJECTIVES, NOW)

    assert decision.opened == []
    assert [clearing.objective for clearing in decision.cleared] == [RPO]
    assert decision.cleared[0].measured_seconds == 600
    assert decision.cleared[0].detail.startswith("job 'billing': RPO 10m00s within objective 1h00m")


def test_exactly_at_the_objective_is_not_a_breach() -> None:
    decision = judge_objectives(replace(HEALTHY, newest_verified_at=NOW - timedelta(hours=1)), OBJECTIVES, NOW)

    assert decision.opened == []


def test_last_measured_rto_above_the_objective_opens_an_rto_breach() -> None:
    decision = judge_objectives(replace(HEALTHY, last_rto_seconds=1200.0), OBJECTIVES, NOW)

    assert [(o.objective, o.measured_seconds, o.objective_seconds) for o in decision.opened] == [(RTO, 1200.0, 900.0)]
    assert decision.opened[0].detail.startswith("job 'billing': RTO 20m00s exceeds objective 15m00s")


def test_an_open_rto_breach_stays_open_while_slow_and_clears_when_a_restore_is_fast_again() -> None:
    still_slow = judge_objectives(replace(HEALTHY, last_rto_seconds=1200.0, open_objectives={RTO}), OBJECTIVES, NOW)
    fast_again = judge_objectives(replace(HEALTHY, last_rto_seconds=300.0, open_objectives={RTO}), OBJECTIVES, NOW)

    assert (still_slow.opened, still_slow.cleared) == ([], [])
    assert fast_again.opened == []
    assert [(c.objective, c.measured_seconds) for c in fast_again.cleared] == [(RTO, 300.0)]


def test_without_any_measured_rto_an_open_rto_breach_stays_open() -> None:
    decision = judge_objectives(replace(HEALTHY, last_rto_seconds=None, open_objectives={RTO}), OBJECTIVES, NOW)

    assert (decision.opened, decision.cleared) == ([], [])


def test_rpo_and_rto_are_judged_independently() -> None:
    decision = judge_objectives(replace(STALE, last_rto_seconds=1200.0, open_objectives={RTO}), OBJECTIVES, NOW)

    assert [opening.objective for opening in decision.opened] == [RPO]
    assert decision.cleared == []


def test_a_job_without_any_run_is_not_a_breach_yet() -> None:
    fresh = WatchFacts(job="billing", newest_verified_at=None, first_run_at=None, last_rto_seconds=None)

    decision = judge_objectives(fresh, OBJECTIVES, NOW)

    assert (decision.opened, decision.cleared) == ([], [])


def test_a_job_never_verified_counts_its_rpo_from_its_first_run() -> None:
    within = replace(HEALTHY, newest_verified_at=None, first_run_at=NOW - timedelta(minutes=50))
    past = replace(HEALTHY, newest_verified_at=None, first_run_at=NOW - timedelta(hours=3))

    assert judge_objectives(within, OBJECTIVES, NOW).opened == []
    opened = judge_objectives(past, OBJECTIVES, NOW).opened
    assert [(o.objective, o.measured_seconds) for o in opened] == [(RPO, 3 * 3600)]
    assert opened[0].detail == (
        "job 'billing': RPO 3h00m exceeds objective 1h00m: no verified recovery point since the first run at "
        "2026-11-27T00:05:00Z"
    )


def test_a_never_verified_breach_clears_when_the_first_point_is_verified() -> None:
    verified_now = replace(HEALTHY, newest_verified_at=NOW - timedelta(minutes=5), open_objectives={RPO})

    decision = judge_objectives(verified_now, OBJECTIVES, NOW)

    assert [clearing.objective for clearing in decision.cleared] == [RPO]
