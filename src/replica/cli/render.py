"""Rendering results as plain-text tables for people (JSON output is printed as is by main)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from replica.config.durations import format_duration

if TYPE_CHECKING:
    from replica.actions.status import StatusViews


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Return rows aligned under headers, two spaces between columns."""
    widths = [max(map(len, column)) for column in zip(headers, *rows, strict=True)]
    # One format string for every line: each row is laid out by one C call, not a join per row (status prints
    # thousands). Cells are never formatted themselves: `{}` fields take them as given.
    line = "  ".join(f"{{:<{width}}}" for width in widths)
    return "\n".join([line.format(*headers).rstrip(), *[line.format(*row).rstrip() for row in rows]])


def age(timestamp: str | None, now: datetime) -> str:
    """Return how long ago an ISO timestamp was, e.g. `4m12s ago`, or `-`."""
    if not timestamp:
        return "-"
    return f"{format_duration((now - datetime.fromisoformat(timestamp)).total_seconds())} ago"


def object_lock(state: dict[str, Any]) -> str:
    """Return a destination's Object Lock state in a few words: `locked GOVERNANCE 30d`, `not locked`..."""
    if state["enabled"] is None:
        return "lock unknown"
    if not state["enabled"]:
        return "not locked"
    if state["mode"] is None:
        return "locked, no default retention"
    retention = f"{state['retention_days']}d" if state["retention_days"] else f"{state['retention_years']}y"
    return f"locked {state['mode']} {retention}"


def wal_lag(lag: dict[str, Any]) -> str:
    """Return a destination's recorded WAL lag: `12s`, `at least 3h0m` (a lower bound), `-` (nothing to judge)."""
    return _lag_text(lag["lag_seconds"], bool(lag.get("lag_is_lower_bound")))


def _lag_text(seconds: float | None, lower_bound: bool) -> str:
    if seconds is None:
        return "-"
    return ("at least " if lower_bound else "") + format_duration(seconds)


def forecast_note(job: dict[str, Any]) -> str:
    """Return the earliest RTO forecast breach of a job's destinations as ` (over ~2027-01-03)`, `?` after a
    low-confidence date, ` (over now)` when the fit says it already is; "" when none is forecast."""
    forecasts = [
        d["rto_forecast"] for d in job["destinations"] if d.get("rto_forecast") and d["rto_forecast"]["breach_at"]
    ]
    if not forecasts:
        return ""
    earliest = min(forecasts, key=lambda forecast: forecast["breach_at"])
    return _note(earliest["already"], earliest["breach_at"][:10], earliest["confidence"])


def _note(already: bool, day: str, confidence: str) -> str:
    if already:
        return " (over now)"
    return f" (over ~{day}{'' if confidence == 'high' else '?'})"


_HEADERS = (
    "JOB",
    "STATE",
    "LAST BACKUP",
    "NEWEST VERIFIED POINT PER DESTINATION",
    "RPO / OBJ",
    "RTO / OBJ",
    "CANARY LOSS WINDOW",
)


class _Rows:
    """The rows of the status table and its reasons, written the same from a document or from status's views."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.reasons: list[str] = []
        self._objectives: dict[float, str] = {}  # a few policies' objectives, repeated on every row

    def add(
        self,
        name: str,
        state: str,
        backup: str,
        points: list[str],
        measured: tuple[float | None, float | None],
        objectives: tuple[float, float],
        note: str,
        window: float | None,
        reasons: list[str],
    ) -> None:
        """Add the row of one job: its `measured` RPO and RTO against its policy's `objectives`, in seconds."""
        texts = self._objectives
        for objective in objectives:
            if objective not in texts:
                texts[objective] = format_duration(objective)
        self.rows.append(
            [
                name,
                state.upper() if state != "ok" else "ok",
                backup,
                "; ".join(points),
                f"{format_duration(measured[0])} / {texts[objectives[0]]}",
                f"{format_duration(measured[1])} / {texts[objectives[1]]}{note}",
                format_duration(window),
            ]
        )
        if reasons:
            self.reasons.append(f"  {name}: {'; '.join(reasons)}")

    def text(self, broken_jobs: list[tuple[str, list[str]]], scheduler: dict[str, Any], now: datetime) -> str:
        """Return the table, then the reasons, the broken job files and who leads the scheduling."""
        text = table(_HEADERS, self.rows) if self.rows else "no valid jobs"
        if self.reasons:
            text += "\n\nreasons:\n" + "\n".join(self.reasons)
        for name, problems in broken_jobs:
            text += f"\n\nDISABLED {name}: " + "\n  ".join(problems)
        if scheduler.get("leader"):  # said only where a daemon schedules: cron's run-due users see no change
            text += "\n\n" + scheduler_line(scheduler, now)
        return text


def _point(name: str, snapshot: str | None, age_text: str | None, lock: str | None, lag: str | None) -> str:
    """Return one destination's part of its job's cell: `primary: 4e06424e (1h02m ago) [not locked] WAL lag 12s`."""
    return (
        f"{name}: {snapshot or 'none'}"
        + (f" ({age_text})" if age_text else "")
        + (f" [{lock}]" if lock else "")
        + (f" WAL lag {lag}" if lag else "")
    )


def status_table(document: dict[str, Any]) -> str:
    """Return the status table: one row per job, then broken job files."""
    now = datetime.fromisoformat(document["generated_at"])
    rows = _Rows()
    for job in document["jobs"]:
        backup = job["last_backup"]
        points = [
            _point(
                d["name"],
                d["newest_verified_snapshot"],
                age(d["newest_verified_at"], now) if d["newest_verified_at"] else None,
                object_lock(d["object_lock"]) if d.get("object_lock") else None,
                wal_lag(d["wal_lag"]) if d.get("wal_lag") else None,
            )
            for d in job["destinations"]
        ]
        rows.add(
            job["job"],
            job["state"],
            f"{backup['status']} {age(backup['finished_at'], now)}" if backup else "never",
            points,
            (job["rpo_seconds"], job["rto_seconds"]),
            (job["rpo_objective_seconds"], job["rto_objective_seconds"]),
            forecast_note(job),
            job["data_loss_window_seconds"],
            job["reasons"],
        )
    broken = [(broken["job"], broken["problems"]) for broken in document["broken_jobs"]]
    return rows.text(broken, document.get("scheduler") or {}, now)


def status_table_of(status: StatusViews) -> str:
    """Return what `status_table` returns for the document `status` is written as, straight from `status`: the
    documents of 10,000 jobs cost ~0.15 s that the table does not need."""
    now = status.now
    rows = _Rows()
    for view in status.jobs:
        backup = view.latest.last_backup
        points = []
        earliest: tuple[datetime, bool, str] | None = None  # the earliest forecast breach: at, already, confidence
        for destination in view.destinations:
            point, lock, lag, forecast = (
                destination.point,
                destination.object_lock,
                destination.wal_lag,
                destination.forecast,
            )
            points.append(
                _point(
                    destination.name,
                    point.snapshot_id if point else None,
                    _age_of(point.taken_at, now) if point else None,
                    object_lock(lock.details["object_lock"]) if lock else None,
                    _lag_text(lag.seconds_at(now), lag.lower_bound) if lag else None,
                )
            )
            fit = destination.fit
            breach_at = forecast.breach_at if forecast is not None and fit is not None else None
            # The first of equal ones, as min() over the documents' ISO texts (which sort as the times do).
            if breach_at is not None and (earliest is None or breach_at < earliest[0]):
                assert forecast is not None and fit is not None
                earliest = (breach_at, forecast.already, fit.confidence)
        note = _note(earliest[1], earliest[0].date().isoformat(), earliest[2]) if earliest else ""
        policy = view.policy
        rows.add(
            view.job.name,
            view.state,
            f"{backup.status} {_age_of(backup.finished_at, now)}" if backup else "never",
            points,
            (view.verdict.rpo_seconds, view.verdict.rto_seconds),
            (policy.rpo.total_seconds(), policy.rto.total_seconds()),
            note,
            view.window,
            view.reasons,
        )
    return rows.text(status.broken_jobs, status.scheduler, now)


def _age_of(moment: datetime | None, now: datetime) -> str:
    """Return `age` of a moment given as a datetime (a document gives its ISO text, which reads back equal)."""
    return f"{format_duration((now - moment).total_seconds())} ago" if moment else "-"


def scheduler_line(scheduler: dict[str, Any], now: datetime) -> str:
    """Return who leads the scheduling in one line, from the status document's `scheduler`."""
    return (
        f"scheduler: {scheduler['leader']} leads ({scheduler['executor']} executor) since {scheduler['since']}, "
        f"last heartbeat {age(scheduler['heartbeat_at'], now)}"
    )
