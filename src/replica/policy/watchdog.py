"""The RPO/RTO watchdog's decision: a pure function from what the catalog says about a job to the breaches to open
and the breaches to clear.

A breach is a state, not an event: it is opened once when an objective is first found exceeded and stays open,
unreported again, until the objective is met; then it is cleared once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from replica.config.durations import format_duration
from replica.policy.objectives import Objectives

RPO, RTO = "rpo", "rto"
# A physical PostgreSQL job's replication lag (replica.wal.lag), judged against the policy's RPO: its own breach,
# beside the RPO of verified base backups, so that each clears when its own cause is fixed.
WAL_LAG = "wal_lag"
OBJECTIVE_KINDS = (RPO, RTO, WAL_LAG)


@dataclass(frozen=True)
class WatchFacts:
    """What the catalog says about one job's objectives, as plain values."""

    job: str
    newest_verified_at: datetime | None  # the newest verified recovery point of any destination
    first_run_at: datetime | None  # when the job's first recorded run started: None means never attempted
    last_rto_seconds: float | None  # the RTO measured by the newest verification that measured one
    open_objectives: Collection[str] = ()  # objectives ('rpo', 'rto', 'wal_lag') with a breach open now
    # A physical job's WAL lag of each destination as an upper bound at the time judged (None: nothing archived,
    # no base backup yet), or as a lower bound for the destinations in `wal_lag_lower_bounds` ("at least").
    wal_lags: Mapping[str, float | None] = field(default_factory=dict)
    wal_lag_lower_bounds: Collection[str] = ()


@dataclass(frozen=True)
class BreachOpening:
    """An objective found exceeded with no breach open for it yet."""

    objective: str
    measured_seconds: float
    objective_seconds: float
    detail: str


@dataclass(frozen=True)
class BreachClearing:
    """An open breach whose objective is met again."""

    objective: str
    measured_seconds: float | None
    detail: str


@dataclass(frozen=True)
class WatchDecision:
    """The breaches to open and to clear for one job; both empty when nothing changed."""

    opened: list[BreachOpening] = field(default_factory=list)
    cleared: list[BreachClearing] = field(default_factory=list)


def iso_utc(value: datetime) -> str:
    """Return a timestamp as people read it in alerts: `2026-11-27T01:00:00Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def judge_objectives(facts: WatchFacts, objectives: Objectives, now: datetime) -> WatchDecision:
    """Return which breaches of a job to open and which to clear.

    RPO: the age of the newest verified recovery point. A job never verified counts its age from its first
    recorded run (it has been trying, and failing, to protect its data since then); a job with no run at all is
    not judged yet. RTO: the last measured RTO; with no measurement an open RTO breach stays open (nothing has
    shown it fixed). An objective already breached is never opened again.
    """
    decision = WatchDecision()
    judgements = (_judge_rpo(facts, objectives, now), _judge_rto(facts, objectives), _judge_wal_lag(facts, objectives))
    for judgement in judgements:
        if judgement is None:
            continue
        objective, breached, measured, detail = judgement
        is_open = objective in facts.open_objectives
        if breached and not is_open:
            assert measured is not None  # a breach is always measured
            limit = (objectives.rto if objective == RTO else objectives.rpo).total_seconds()
            decision.opened.append(BreachOpening(objective, measured, limit, detail))
        elif not breached and is_open:
            decision.cleared.append(BreachClearing(objective, measured, detail))
    return decision


# (objective, breached, measured seconds, one-line detail) or None when there is nothing to judge.
_Judgement = tuple[str, bool, float | None, str]


def _judge_rpo(facts: WatchFacts, objectives: Objectives, now: datetime) -> _Judgement | None:
    limit = objectives.rpo.total_seconds()
    prefix = f"job '{facts.job}': RPO"
    if facts.newest_verified_at is not None:
        age = (now - facts.newest_verified_at).total_seconds()
        point = f"newest verified recovery point {iso_utc(facts.newest_verified_at)}"
        if age > limit:
            return (
                RPO,
                True,
                age,
                f"{prefix} {format_duration(age)} exceeds objective {format_duration(limit)}: {point}",
            )
        return RPO, False, age, f"{prefix} {format_duration(age)} within objective {format_duration(limit)}: {point}"
    if facts.first_run_at is None:
        return RPO, False, None, f"{prefix} not judged: no run recorded yet"
    age = (now - facts.first_run_at).total_seconds()
    since = f"no verified recovery point since the first run at {iso_utc(facts.first_run_at)}"
    if age > limit:
        return RPO, True, age, f"{prefix} {format_duration(age)} exceeds objective {format_duration(limit)}: {since}"
    return RPO, False, age, f"{prefix} {format_duration(age)} within objective {format_duration(limit)}: {since}"


def _judge_wal_lag(facts: WatchFacts, objectives: Objectives) -> _Judgement | None:
    """Judge the worst destination's WAL lag against the RPO: every destination is meant to hold the log, and one
    falling behind is a copy that would lose data. A destination with nothing archived has a lag too once a base
    backup needs its log (at least the age of the oldest recorded source position); None (nothing archived, no
    base backup) or no recorded lag at all: nothing to judge."""
    measured = [(name, lag) for name, lag in facts.wal_lags.items() if lag is not None]
    if not measured:
        return None
    limit = objectives.rpo.total_seconds()
    prefix = f"job '{facts.job}': WAL lag"
    destination, worst = max(measured, key=lambda item: item[1])
    verb = "exceeds" if worst > limit else "within"
    amount = ("at least " if destination in facts.wal_lag_lower_bounds else "") + format_duration(worst)
    detail = f"{prefix} {amount} {verb} RPO {format_duration(limit)}: worst destination '{destination}'"
    return WAL_LAG, worst > limit, worst, detail


def _judge_rto(facts: WatchFacts, objectives: Objectives) -> _Judgement | None:
    if facts.last_rto_seconds is None:
        return None
    limit = objectives.rto.total_seconds()
    measured = facts.last_rto_seconds
    verb = "exceeds" if measured > limit else "within"
    detail = (
        f"job '{facts.job}': RTO {format_duration(measured)} {verb} objective {format_duration(limit)}: "
        "last measured restore-to-verified time"
    )
    return RTO, measured > limit, measured, detail
