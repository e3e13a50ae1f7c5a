"""Schedule expressions, a job's effective timetable and the due decision (no scheduler, no catalog)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from replica.config.models import JobConfig, PolicyConfig, ScheduleConfig
from replica.schedule.plan import job_schedules
from replica.schedule.specs import is_due, jitter_offset, next_run, parse_schedule

NOW = datetime(2026, 11, 27, 10, 17, 30, tzinfo=UTC)


def test_every_duration_fires_on_a_fixed_grid_from_the_epoch() -> None:
    schedule = parse_schedule("every 1h30m", None)
    assert schedule is not None
    assert schedule.interval == timedelta(hours=1, minutes=30)
    # 90-minute grid from 1970-01-01T00:00Z: ..., 09:00, 10:30, 12:00 (NOW is 10:17:30)
    assert schedule.next_after(NOW) == datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
    assert schedule.next_after(datetime(2026, 11, 27, 10, 30, tzinfo=UTC)) == datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert schedule.next_after(NOW, timedelta(minutes=20)) == datetime(2026, 11, 27, 10, 50, tzinfo=UTC)
    assert schedule.describe() == "every 1h30m"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0 * * * *", datetime(2026, 11, 27, 11, 0, tzinfo=UTC)),
        ("30 3 * * *", datetime(2026, 11, 28, 3, 30, tzinfo=UTC)),
        ("@daily", datetime(2026, 11, 28, 0, 0, tzinfo=UTC)),
        # crontab's day of week: 0 is Sunday (2026-11-29 is a Sunday)
        ("0 5 * * 0", datetime(2026, 11, 29, 5, 0, tzinfo=UTC)),
    ],
)
def test_cron_lines_fire_at_their_next_time_in_utc(text: str, expected: datetime) -> None:
    schedule = parse_schedule(text, None)
    assert schedule is not None
    assert schedule.next_after(NOW) == expected


def test_a_cron_fire_time_equal_to_the_last_start_is_not_fired_again() -> None:
    schedule = parse_schedule("0 * * * *", None)
    assert schedule is not None
    on_the_hour = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert schedule.next_after(on_the_hour) == datetime(2026, 11, 27, 11, 0, tzinfo=UTC)


def test_off_means_never() -> None:
    assert parse_schedule("off", None) is None
    assert parse_schedule(" OFF ", None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hourly", "neither 'every DURATION'"),
        ("61 * * * *", "invalid cron line '61 \\* \\* \\* \\*'"),
        ("* * *", "five-field cron line"),
        ("@yearly", "unknown shorthand"),
        ("every 0s", "must be positive"),
        ("every soon", "expected a duration"),
    ],
)
def test_bad_expressions_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_schedule(text, None)


def test_a_bad_schedule_in_a_job_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        ScheduleConfig(backup="every 1h", verify="25 * * *")
    assert info.value.errors()[0]["loc"] == ("verify",)


def test_work_that_never_ran_is_due_at_once() -> None:
    schedule = parse_schedule("@daily", None)
    assert schedule is not None
    assert is_due(schedule, None, NOW, "billing:backup")
    assert next_run(schedule, None, NOW, "billing:backup") == NOW


def test_missed_fire_times_make_one_run_not_many() -> None:
    schedule = parse_schedule("every 10m", None)
    assert schedule is not None
    # The daemon was down for a day: 144 fire times passed, the work is due once, now.
    last = NOW - timedelta(days=1)
    assert next_run(schedule, last, NOW, "billing:backup") == NOW
    # Once it ran (at 10:17:30), it is due at the next grid time, 10:20, not 10 minutes after the run.
    assert not is_due(schedule, NOW, datetime(2026, 11, 27, 10, 19, 59, tzinfo=UTC), "billing:backup")
    assert is_due(schedule, NOW, datetime(2026, 11, 27, 10, 20, tzinfo=UTC), "billing:backup")


def test_jitter_is_stable_per_work_within_bounds_and_shifts_the_grid_without_drift() -> None:
    schedule = parse_schedule("every 1h", timedelta(minutes=10))
    assert schedule is not None
    offsets = {jitter_offset(schedule, f"job{number}:backup") for number in range(50)}
    assert all(timedelta(0) <= offset < timedelta(minutes=10) for offset in offsets)
    assert len(offsets) > 10, "jobs on one timetable spread out"
    assert jitter_offset(schedule, "job1:backup") == jitter_offset(schedule, "job1:backup")
    offset = jitter_offset(schedule, "job1:backup")
    runs = [NOW]
    for _ in range(24):
        runs.append(next_run(schedule, runs[-1], runs[-1], "job1:backup"))
    assert runs[1] == datetime(2026, 11, 27, 10, 0, tzinfo=UTC) + offset + (
        timedelta(hours=1) if datetime(2026, 11, 27, 10, 0, tzinfo=UTC) + offset <= NOW else timedelta(0)
    )
    assert {later - earlier for earlier, later in itertools.pairwise(runs[1:])} == {timedelta(hours=1)}


def _job(schedule: dict[str, str]) -> JobConfig:
    return JobConfig.model_validate(
        {
            "name": "billing",
            "store": {"kind": "directory", "path": "/srv/billing"},
            "destinations": [{"name": "primary", "bucket": "backups-a"}, {"name": "copy", "bucket": "backups-b"}],
            "policy": "standard",
            "schedule": schedule,
        }
    )


def _policy(schedule: dict[str, str]) -> PolicyConfig:
    return PolicyConfig.model_validate({"name": "standard", "rpo": "1h", "rto": "15m", "schedule": schedule})


def test_a_job_overrides_its_policy_per_kind_and_off_disables_a_kind() -> None:
    policy = _policy({"backup": "every 1h", "verify": "@daily", "prune": "@weekly", "jitter": "5m"})
    job = _job({"backup": "every 15m", "prune": "off"})

    schedules = job_schedules(job, policy)

    assert set(schedules) == {"backup", "verify"}
    assert schedules["backup"].interval == timedelta(minutes=15)
    assert schedules["verify"].cron == "0 0 * * *"
    assert schedules["backup"].jitter == timedelta(minutes=5), "jitter comes from the policy when the job has none"


def test_a_job_without_any_schedule_has_no_scheduled_work() -> None:
    assert job_schedules(_job({}), _policy({})) == {}


@pytest.mark.parametrize(
    ("field", "expected_weekdays"),
    [
        ("1-5", {0, 1, 2, 3, 4}),  # Python weekday(): Monday = 0
        ("0", {6}),
        ("7", {6}),
        ("sat,sun", {5, 6}),
        ("*/2", {6, 1, 3, 5}),  # crontab: Sunday, Tuesday, Thursday, Saturday
    ],
)
def test_day_of_week_is_read_the_crontab_way(field: str, expected_weekdays: set[int]) -> None:
    schedule = parse_schedule(f"0 5 * * {field}", None)
    assert schedule is not None
    moment, weekdays = NOW, set()
    for _ in range(14):
        moment = schedule.next_after(moment)
        weekdays.add(moment.weekday())
    assert weekdays == expected_weekdays


def test_a_cron_line_restricting_both_day_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        parse_schedule("0 5 1 * 1", None)


@pytest.mark.parametrize(
    ("text", "moment", "expected"),
    [
        ("every 10s", NOW + timedelta(seconds=9.9), NOW),
        ("every 10s", NOW, NOW),  # a fire time is its own slot
        ("every 1h30m", NOW, datetime(2026, 11, 27, 9, 0, tzinfo=UTC)),
        ("30 3 * * *", NOW, datetime(2026, 11, 27, 3, 30, tzinfo=UTC)),
        ("0,1 * * * *", NOW, datetime(2026, 11, 27, 10, 1, tzinfo=UTC)),
        ("0 5 * * 0", NOW, datetime(2026, 11, 22, 5, 0, tzinfo=UTC)),
    ],
)
def test_the_slot_of_a_moment_is_the_newest_fire_time_at_or_before_it(
    text: str, moment: datetime, expected: datetime
) -> None:
    schedule = parse_schedule(text, None)
    assert schedule is not None
    assert schedule.latest_fire(moment) == expected
    # Every moment until the next fire time names the same slot: two daemons deciding apart agree.
    assert schedule.latest_fire(schedule.next_after(expected) - timedelta(microseconds=1)) == expected


def test_the_slot_moves_with_the_jitter_offset() -> None:
    schedule = parse_schedule("every 1h", None)
    assert schedule is not None
    offset = timedelta(minutes=7)
    assert schedule.latest_fire(NOW, offset) == datetime(2026, 11, 27, 10, 7, tzinfo=UTC)
    assert schedule.latest_fire(datetime(2026, 11, 27, 10, 6, tzinfo=UTC), offset) == datetime(
        2026, 11, 27, 9, 7, tzinfo=UTC
    )


def test_a_cron_line_that_fires_less_than_twice_in_four_years_has_no_slot() -> None:
    schedule = parse_schedule("0 0 30 2 *", None)
    assert schedule is not None
    assert schedule.latest_fire(NOW) is None
