"""The daemon's triggers keep the timetable that `schedule` and `run-due` compute: stable jitter, no drift."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from replica.daemon.scheduler import _trigger
from replica.schedule.specs import jitter_offset, next_run, parse_schedule

START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def test_an_interval_with_jitter_keeps_its_period_over_many_fires() -> None:
    schedule = parse_schedule("every 1h", timedelta(minutes=10))
    assert schedule is not None
    key = "billing:backup"
    offset = jitter_offset(schedule, key)
    assert offset > timedelta(0)
    trigger = _trigger(schedule, key)
    # The first run is off the grid (it was due when the daemon started); the next ones are on the shifted grid.
    fire = START + timedelta(minutes=17)
    fires = [fire]
    for _ in range(48):
        fire = trigger.get_next_fire_time(fire, fire)
        fires.append(fire)
    assert fires[1] == START + offset + (timedelta(hours=1) if offset <= timedelta(minutes=17) else timedelta(0))
    assert {later - earlier for earlier, later in itertools.pairwise(fires[1:])} == {timedelta(hours=1)}
    assert fires[-1] == fires[1] + timedelta(hours=47), "no drift"


def test_two_jobs_started_together_spread_out_by_their_jitter() -> None:
    schedule = parse_schedule("every 30s", timedelta(seconds=30))
    assert schedule is not None
    firsts = {_trigger(schedule, f"job-{n}:backup").get_next_fire_time(START, START) for n in range(100)}
    assert len(firsts) > 20, "not one herd every 30 s"
    assert all(START < first <= START + timedelta(seconds=30) for first in firsts)


def test_a_cron_trigger_fires_at_the_times_run_due_computes() -> None:
    schedule = parse_schedule("30 3 * * *", timedelta(minutes=30))
    assert schedule is not None
    key = "billing:verify"
    trigger = _trigger(schedule, key)
    last_started = datetime(2026, 11, 27, 3, 30, tzinfo=UTC) + jitter_offset(schedule, key)
    daemon_fire = trigger.get_next_fire_time(last_started, last_started + timedelta(seconds=1))
    assert daemon_fire == next_run(schedule, last_started, last_started, key)
    assert daemon_fire.date() == datetime(2026, 11, 28, tzinfo=UTC).date()
