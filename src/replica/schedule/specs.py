"""Schedule expressions as users write them: `every 15m`, `@daily`, or a five-field cron line (UTC).

Parsing needs no scheduler; only a cron line is checked by APScheduler's cron parser (imported lazily: it costs
~60 ms, which commands that never look at schedules should not pay).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from replica.config.durations import format_duration, parse_duration

WORK_KINDS = ("backup", "verify", "prune")
OFF = "off"
# Shorthands every cron user knows, spelled out so that `schedule` shows the real line.
CRON_SHORTHANDS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}
MINIMUM_INTERVAL = timedelta(seconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
# Where the longest gap of a cron line is measured from: a leap year, so that a line firing on 29 February fires
# twice within the span measured (four years and two months, a cycle of every month and day-of-month pattern).
GAP_START = datetime(2024, 1, 1, tzinfo=UTC)
GAP_SPAN = timedelta(days=4 * 365 + 1 + 62)
GAP_WEEKDAY_SPAN = timedelta(days=15)


@dataclass(frozen=True)
class Schedule:
    """One kind of work's timetable: a fixed interval or a cron line in UTC, with an optional jitter."""

    text: str
    interval: timedelta | None = None
    cron: str | None = None
    jitter: timedelta | None = None

    def next_after(self, moment: datetime, offset: timedelta = timedelta(0)) -> datetime:
        """Return the first fire time strictly after `moment`, on the timetable shifted by `offset`.

        An interval fires on a fixed grid counted from the Unix epoch (`every 15m`: :00, :15, :30, :45 UTC), not
        from the last run: a run that starts late or early does not move the next one, and the jitter offset
        spreads jobs across the interval instead of adding to it.
        """
        base = moment - offset
        if self.interval is not None:
            step = self.interval // MICROSECOND
            fire = EPOCH + MICROSECOND * (((base - EPOCH) // MICROSECOND) // step + 1) * step
        else:
            assert self.cron is not None
            found: datetime | None = cron_trigger(self.cron).get_next_fire_time(None, base + MICROSECOND)
            assert found is not None  # a valid five-field cron line always fires again
            fire = found
        return fire + offset

    def latest_fire(self, moment: datetime, offset: timedelta = timedelta(0)) -> datetime | None:
        """Return the newest fire time at or before `moment` on the timetable shifted by `offset`, or None for a
        cron line that fires less than twice in four years (no earlier fire time is looked for).

        This is the slot a due run is sent for: two daemons that decide at different moments within one period
        name the same slot, so a worker can tell a second delivery of the same work from new work.
        """
        if self.interval is not None:
            step = self.interval // MICROSECOND
            return EPOCH + MICROSECOND * ((((moment - offset) - EPOCH) // MICROSECOND) // step) * step + offset
        gap = longest_gap(self)
        if gap is None:
            return None
        latest = None
        fire = self.next_after(moment - gap - MICROSECOND, offset)
        while fire <= moment:
            latest = fire
            fire = self.next_after(fire, offset)
        return latest

    def describe(self) -> str:
        """Return the schedule as people read it (`every 15m`, `cron 0 3 * * *`), with jitter if any."""
        what = f"every {format_duration(self.interval)}" if self.interval is not None else f"cron {self.cron}"
        return f"{what} (jitter {format_duration(self.jitter)})" if self.jitter else what


def validate_schedule_text(text: str) -> str:
    """Return `text` when it is `off`, `every DURATION`, a cron shorthand or a five-field cron line.

    Raises ValueError saying what is wrong, for the config loader to report with the file and field.
    """
    parse_schedule(text, None)
    return text


@functools.lru_cache(maxsize=1024)
def parse_schedule(text: str, jitter: timedelta | None) -> Schedule | None:
    """Return the Schedule written as `text`, or None for `off`. Raises ValueError for anything else.

    Cached: thousands of job files share a few timetables, and checking a cron line costs ~0.1 ms.
    """
    cleaned = " ".join(text.split())
    if cleaned.lower() == OFF:
        return None
    if cleaned.lower().startswith("every "):
        interval = parse_duration(cleaned[len("every ") :])
        if interval < MINIMUM_INTERVAL:
            raise ValueError(f"interval must be at least {MINIMUM_INTERVAL.total_seconds():.0f}s")
        return Schedule(cleaned, interval=interval, jitter=jitter)
    cron = CRON_SHORTHANDS.get(cleaned.lower(), cleaned)
    if cron.startswith("@"):
        raise ValueError(f"unknown shorthand '{cleaned}' (known: {', '.join(CRON_SHORTHANDS)})")
    if len(cron.split()) != 5:
        raise ValueError(
            f"'{cleaned}' is neither 'every DURATION' (e.g. 'every 15m'), 'off', a shorthand such as '@daily', "
            "nor a five-field cron line such as '30 3 * * *'"
        )
    try:
        cron_trigger(cron)
    except ValueError as error:
        raise ValueError(f"invalid cron line '{cron}': {error}") from None
    return Schedule(cleaned, cron=cron, jitter=jitter)


DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(line: str) -> Any:
    """Return APScheduler's cron trigger (UTC) for a five-field crontab line. Raises ValueError when invalid.

    APScheduler 3 reads day-of-week numbers from Monday = 0, crontab from Sunday = 0 (and 7); `from_crontab`
    does not translate, so `0 5 * * 0` would fire on Mondays. The day-of-week field is translated to names here.
    """
    from apscheduler.triggers.cron import CronTrigger

    minute, hour, day, month, day_of_week = line.split()
    if day != "*" and day_of_week != "*":
        # crontab fires when either matches, APScheduler only when both do: refuse rather than differ.
        raise ValueError("restrict the day of the month or the day of the week, not both")
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_crontab_days(day_of_week),
        timezone=UTC,
    )


def _crontab_days(field: str) -> str:
    """Return a crontab day-of-week field as APScheduler day names (`1-5` → `mon,tue,wed,thu,fri`)."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"bad step in day of week '{part}'")
        if span == "*":
            first, last = 0, 6
        else:
            start, _, end = span.partition("-")
            first = _day_number(start)
            last = _day_number(end) if end else (6 if step else first)
        if last < first:
            raise ValueError(f"day-of-week range '{span}' runs backwards")
        days.update(number % 7 for number in range(first, last + 1, step or 1))
    return ",".join(DAY_NAMES[number] for number in sorted(days))


def _day_number(text: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    if text[:3] in DAY_NAMES:
        return DAY_NAMES.index(text[:3])
    raise ValueError(f"'{text}' is not a day of the week (0-7 or sun-sat)")


def jitter_offset(schedule: Schedule, key: str) -> timedelta:
    """Return the delay, within the schedule's jitter, that `key` (job and kind) always gets.

    Stable rather than random, so that `run-due` called every minute from cron agrees with itself from one call
    to the next, and many jobs on one cron line still spread out.
    """
    if not schedule.jitter:
        return timedelta(0)
    digest = hashlib.sha256(key.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=int(schedule.jitter.total_seconds() * fraction))


def next_run(schedule: Schedule, last_started: datetime | None, now: datetime, key: str) -> datetime:
    """Return when the work runs next: `now` when it never ran or a fire time (shifted by the work's jitter
    offset) passed since it last started, else that next fire time.

    However many fire times were missed (the daemon was down), the answer is one run, not one per missed time.
    """
    if last_started is None:
        return now
    return max(now, schedule.next_after(last_started, jitter_offset(schedule, key)))


def is_due(schedule: Schedule, last_started: datetime | None, now: datetime, key: str) -> bool:
    """Return True when the work should start now (see `next_run`)."""
    return next_run(schedule, last_started, now, key) <= now


def longest_gap(schedule: Schedule) -> timedelta | None:
    """Return the longest time between two consecutive fire times of `schedule`, or None when a cron line fires
    less than twice in four years (`0 0 30 2 *` never does). A jitter offset shifts every fire alike: no change.
    """
    if schedule.interval is not None:
        return schedule.interval
    assert schedule.cron is not None
    return _cron_longest_gap(schedule.cron)


@functools.lru_cache(maxsize=512)
def _cron_longest_gap(line: str) -> timedelta | None:
    # A five-field line fires at the same times of day on every day it fires. Walking every fire time of a busy
    # line for four years would cost seconds; walking its times of day once and its days once costs milliseconds.
    minute, hour, day, month, day_of_week = line.split()
    day_start = GAP_START
    minutes = [fire - day_start for fire in _fire_times(f"{minute} 0 * * *", day_start, timedelta(hours=1))]
    hours = [fire - day_start for fire in _fire_times(f"0 {hour} * * *", day_start, timedelta(days=1))]
    times = sorted(at_hour + at_minute for at_hour in hours for at_minute in minutes)
    if not times:
        return None
    within_day = max((later - earlier for earlier, later in itertools.pairwise(times)), default=None)
    if day == "*" and month == "*" and day_of_week == "*":
        between_days = timedelta(days=1) - (times[-1] - times[0])
    else:
        span = GAP_WEEKDAY_SPAN if day == "*" and month == "*" else GAP_SPAN
        days = list(_fire_times(f"0 0 {day} {month} {day_of_week}", GAP_START, span))
        if len(days) < 2:
            return None
        longest_day_gap = max(later - earlier for earlier, later in itertools.pairwise(days))
        between_days = longest_day_gap - (times[-1] - times[0])
    return max(between_days, within_day) if within_day is not None else between_days


def _fire_times(line: str, start: datetime, span: timedelta) -> Iterator[datetime]:
    """Yield the fire times of a cron line from `start` (included) until `span` later (excluded)."""
    trigger = cron_trigger(line)
    end = start + span
    fire: datetime | None = trigger.get_next_fire_time(None, start)
    while fire is not None and fire < end:
        yield fire
        fire = trigger.get_next_fire_time(None, fire + MICROSECOND)
