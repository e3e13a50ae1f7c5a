"""Retention as a pure function: which snapshots of one destination to keep and which to remove, with the reason
for every decision (restic's `ApplyPolicy` does the same), and two rules no policy can override."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from replica.config.models import RetentionConfig

NEWEST_VERIFIED = "the newest verified snapshot (never removed)"
ONLY_WITHIN_RPO = "the only snapshot within the RPO window (never removed)"
NOTHING_VERIFIED = "nothing in this destination is verified yet: nothing is removed"
NO_RULE = "matched no keep rule"


@dataclass(frozen=True)
class RetentionCandidate:
    """A snapshot as retention sees it: its id and when its data was read."""

    snapshot_id: str
    taken_at: datetime


@dataclass(frozen=True)
class RetentionDecision:
    """Snapshots to keep and to remove (newest first), and the reasons for each, by snapshot id."""

    keep: list[RetentionCandidate] = field(default_factory=list)
    remove: list[RetentionCandidate] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)


def _hour(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:00")


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def _week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def _month(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


BUCKETS: tuple[tuple[str, str, Callable[[datetime], str]], ...] = (
    ("keep_hourly", "hour", _hour),
    ("keep_daily", "day", _day),
    ("keep_weekly", "week", _week),
    ("keep_monthly", "month", _month),
)


def apply_retention(
    snapshots: Sequence[RetentionCandidate],
    retention: RetentionConfig,
    *,
    verified_ids: Collection[str],
    now: datetime,
    rpo: timedelta,
) -> RetentionDecision:
    """Return what to keep and remove of one destination's snapshots, with every decision's reasons.

    The policy keeps the `keep_last` newest, and the newest snapshot of each of the `keep_hourly` (daily, weekly,
    monthly) most recent hours (days, weeks, months) that have one, as restic does; periods are those of the
    timestamps' own zone (UTC from the catalog) and weeks are ISO weeks. Whatever it says, the newest
    verified snapshot is kept, and so is a snapshot that is the only one taken within the RPO window; when nothing
    is verified, nothing is removed (the snapshots may be all there is).
    """
    ordered = sorted(snapshots, key=lambda snapshot: snapshot.taken_at, reverse=True)
    reasons: dict[str, list[str]] = {snapshot.snapshot_id: [] for snapshot in ordered}
    for snapshot in ordered[: retention.keep_last]:
        reasons[snapshot.snapshot_id].append(f"one of the {retention.keep_last} newest (keep_last)")
    for setting, unit, bucket_of in BUCKETS:
        count = getattr(retention, setting)
        seen: list[str] = []
        for snapshot in ordered:
            bucket = bucket_of(snapshot.taken_at)
            if len(seen) >= count:
                break
            if bucket not in seen:
                seen.append(bucket)
                reasons[snapshot.snapshot_id].append(f"newest of {unit} {bucket} ({setting})")
    verified = [snapshot for snapshot in ordered if snapshot.snapshot_id in verified_ids]
    if verified:
        reasons[verified[0].snapshot_id].append(NEWEST_VERIFIED)
    within_rpo = [snapshot for snapshot in ordered if now - snapshot.taken_at <= rpo]
    if len(within_rpo) == 1:
        reasons[within_rpo[0].snapshot_id].append(ONLY_WITHIN_RPO)
    if not verified:
        for snapshot in ordered:
            reasons[snapshot.snapshot_id].append(NOTHING_VERIFIED)
    decision = RetentionDecision(reasons=reasons)
    for snapshot in ordered:
        if reasons[snapshot.snapshot_id]:
            decision.keep.append(snapshot)
        else:
            reasons[snapshot.snapshot_id].append(NO_RULE)
            decision.remove.append(snapshot)
    return decision
