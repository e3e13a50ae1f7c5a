"""Objective compliance over a period, for the auditor's evidence pack: pure functions, data in, figures out.

RPO at a moment is the age of the newest recovery point verified *by then*: it grows by one second per second and
drops when a verification proves a newer point. Before any point is verified, the RPO is unbounded (out of
compliance): an unproven backup is not a recovery point.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class VerifiedPoint:
    """A verification that passed: when it finished and the recovery point it proved."""

    verified_at: datetime
    recovery_point: datetime


@dataclass(frozen=True)
class RpoCompliance:
    """How much of a period the RPO stayed within its objective, and its worst value in the period."""

    period_seconds: float
    seconds_within_objective: float
    worst_seconds: float | None  # None: no point was verified during or before the period

    @property
    def compliance(self) -> float | None:
        """Return the share of the period within the objective (0..1), or None for an empty period."""
        return self.seconds_within_objective / self.period_seconds if self.period_seconds > 0 else None


@dataclass(frozen=True)
class RtoCompliance:
    """How many measured RTOs met the objective, the worst and the median."""

    measured: int
    within_objective: int
    worst_seconds: float | None
    median_seconds: float | None

    @property
    def compliance(self) -> float | None:
        """Return the share of measurements within the objective (0..1), or None without measurements."""
        return self.within_objective / self.measured if self.measured else None


def rpo_compliance(
    points: Iterable[VerifiedPoint], objective_seconds: float, start: datetime, end: datetime
) -> RpoCompliance:
    """Return the RPO compliance over [start, end] given every verification that passed up to `end`."""
    period = max((end - start).total_seconds(), 0.0)
    if period == 0:
        return RpoCompliance(0.0, 0.0, None)
    newest: datetime | None = None
    within = 0.0
    worst: float | None = None
    cursor = start
    for point in sorted(points, key=lambda p: p.verified_at):
        if point.verified_at > end:
            break
        if point.verified_at > cursor:
            within, worst = _segment(newest, cursor, point.verified_at, objective_seconds, within, worst)
            cursor = point.verified_at
        if newest is None or point.recovery_point > newest:
            newest = point.recovery_point
    within, worst = _segment(newest, cursor, end, objective_seconds, within, worst)
    return RpoCompliance(period, within, worst)


def _segment(
    newest: datetime | None,
    begin: datetime,
    finish: datetime,
    objective_seconds: float,
    within: float,
    worst: float | None,
) -> tuple[float, float | None]:
    # Between two verifications the RPO is `t - newest`, rising: within the objective until newest + objective.
    if newest is None or finish <= begin:
        return within, worst
    limit = newest.timestamp() + objective_seconds
    inside = min(finish.timestamp(), limit) - begin.timestamp()
    within += min(max(inside, 0.0), (finish - begin).total_seconds())
    at_end = (finish - newest).total_seconds()
    return within, at_end if worst is None else max(worst, at_end)


def rto_compliance(measured_seconds: Iterable[float], objective_seconds: float) -> RtoCompliance:
    """Return how the measured RTOs compare with the objective."""
    values = list(measured_seconds)
    if not values:
        return RtoCompliance(0, 0, None, None)
    within = sum(value <= objective_seconds for value in values)
    return RtoCompliance(len(values), within, max(values), statistics.median(values))
