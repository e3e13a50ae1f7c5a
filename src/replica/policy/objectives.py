"""RPO and RTO against a job's objectives: a pure function from facts to a state and the reasons for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from replica.config.durations import format_duration
from replica.errors import FALLBACK_STATE

OK, AT_RISK, BREACHED, FAILING = "ok", "at risk", "breached", "failing"
STATE_ORDER = (OK, AT_RISK, BREACHED, FAILING)


@dataclass(frozen=True)
class JobFacts:
    """What the catalog says about one job, as plain values."""

    newest_verified_at: datetime | None
    last_rto_seconds: float | None
    last_backup_failed: bool
    last_copy_failed: bool
    last_verify_failed: bool
    abandoned_runs: int
    # The failure states (replica.errors.FAILURE_STATES) behind a failed last backup and failed last verifications.
    last_backup_failure: str | None = None
    last_verify_failures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Objectives:
    """A policy's objectives."""

    rpo: timedelta
    rto: timedelta
    at_risk_fraction: float


# A named tuple rather than a frozen dataclass: status builds one per job (10,000 and more), and a frozen
# dataclass's __init__ costs a setattr per field.
class Verdict(NamedTuple):
    """A job's state with its measured RPO/RTO and every reason that made the state."""

    state: str
    rpo_seconds: float | None
    rto_seconds: float | None
    reasons: list[str]


def evaluate(facts: JobFacts, objectives: Objectives, now: datetime) -> Verdict:
    """Return the verdict: `failing` (a run failed), `breached` (an objective is exceeded or nothing is
    verified), `at risk` (past the at-risk fraction of an objective, or abandoned runs), else `ok`.

    The worst applicable state wins; every reason is listed, not only the worst.
    """
    reasons: list[tuple[str, str]] = []
    rpo_seconds = (now - facts.newest_verified_at).total_seconds() if facts.newest_verified_at else None
    rpo_limit = objectives.rpo.total_seconds()
    rto_limit = objectives.rto.total_seconds()
    if rpo_seconds is None:
        reasons.append((BREACHED, "no verified recovery point"))
    elif rpo_seconds > rpo_limit:
        reasons.append((BREACHED, f"RPO {format_duration(rpo_seconds)} exceeds objective {format_duration(rpo_limit)}"))
    elif rpo_seconds > rpo_limit * objectives.at_risk_fraction:
        reasons.append((AT_RISK, f"RPO {format_duration(rpo_seconds)} is near objective {format_duration(rpo_limit)}"))
    if facts.last_rto_seconds is not None:
        if facts.last_rto_seconds > rto_limit:
            reasons.append(
                (
                    BREACHED,
                    f"measured RTO {format_duration(facts.last_rto_seconds)} exceeds objective "
                    f"{format_duration(rto_limit)}",
                )
            )
        elif facts.last_rto_seconds > rto_limit * objectives.at_risk_fraction:
            reasons.append(
                (
                    AT_RISK,
                    f"measured RTO {format_duration(facts.last_rto_seconds)} is near objective "
                    f"{format_duration(rto_limit)}",
                )
            )
    if facts.last_backup_failed:
        reasons.append((FAILING, "last backup failed" + _because(facts.last_backup_failure)))
    if facts.last_copy_failed:
        reasons.append((FAILING, "last copy to a secondary destination failed"))
    if facts.last_verify_failed:
        reasons.append((FAILING, "last verification failed" + _because(*facts.last_verify_failures)))
    if facts.abandoned_runs:
        reasons.append((AT_RISK, f"{facts.abandoned_runs} run(s) abandoned while running"))
    state = max((state for state, _ in reasons), key=STATE_ORDER.index, default=OK)
    return Verdict(state, rpo_seconds, facts.last_rto_seconds, [reason for _, reason in reasons])


def _because(*failures: str | None) -> str:
    """Return " (STATE, ...)" naming the distinct failure states given, or "" when none tells more than `failed`."""
    named = sorted({failure for failure in failures if failure and failure != FALLBACK_STATE})
    return f" ({', '.join(named)})" if named else ""
