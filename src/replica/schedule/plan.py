"""A job's effective timetable: its own schedule entries, else its policy's."""

from __future__ import annotations

from replica.config.models import JobConfig, PolicyConfig
from replica.schedule.specs import WORK_KINDS, Schedule, parse_schedule


def job_schedules(job: JobConfig, policy: PolicyConfig) -> dict[str, Schedule]:
    """Return the schedule of each kind of work of a job; kinds that never run (unset or `off`) are absent."""
    jitter = job.schedule.jitter or policy.schedule.jitter
    schedules: dict[str, Schedule] = {}
    for kind in WORK_KINDS:
        text = getattr(job.schedule, kind) or getattr(policy.schedule, kind)
        schedule = parse_schedule(text, jitter) if text else None
        if schedule is not None:
            schedules[kind] = schedule
    return schedules
