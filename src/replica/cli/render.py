"""Rendering results as plain-text tables for people (JSON output is printed as is by main)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from replica.config.durations import format_duration


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
    if lag["lag_seconds"] is None:
        return "-"
    return ("at least " if lag.get("lag_is_lower_bound") else "") + format_duration(lag["lag_seconds"])


def forecast_note(job: dict[str, Any]) -> str:
    """Return the earliest RTO forecast breach of a job's destinations as ` (over ~2027-01-03)`, `?` after a
    low-confidence date, ` (over now)` when the fit says it already is; "" when none is forecast."""
    forecasts = [
        d["rto_forecast"] for d in job["destinations"] if d.get("rto_forecast") and d["rto_forecast"]["breach_at"]
    ]
    if not forecasts:
        return ""
    earliest = min(forecasts, key=lambda forecast: forecast["breach_at"])
    if earliest["already"]:
        return " (over now)"
    doubt = "" if earliest["confidence"] == "high" else "?"
    return f" (over ~{earliest['breach_at'][:10]}{doubt})"


def status_table(document: dict[str, Any]) -> str:
    """Return the status table: one row per job, then broken job files."""
    now = datetime.fromisoformat(document["generated_at"])
    objectives: dict[float, str] = {}  # a few policies' objectives, repeated on every row
    rows = []
    for job in document["jobs"]:
        backup = job["last_backup"]
        points = "; ".join(
            [
                f"{d['name']}: {d['newest_verified_snapshot'] or 'none'}"
                + (f" ({age(d['newest_verified_at'], now)})" if d["newest_verified_at"] else "")
                + (f" [{object_lock(d['object_lock'])}]" if d.get("object_lock") else "")
                + (f" WAL lag {wal_lag(d['wal_lag'])}" if d.get("wal_lag") else "")
                for d in job["destinations"]
            ]
        )
        rpo_objective, rto_objective = job["rpo_objective_seconds"], job["rto_objective_seconds"]
        if rpo_objective not in objectives:
            objectives[rpo_objective] = format_duration(rpo_objective)
        if rto_objective not in objectives:
            objectives[rto_objective] = format_duration(rto_objective)
        rows.append(
            [
                job["job"],
                job["state"].upper() if job["state"] != "ok" else "ok",
                f"{backup['status']} {age(backup['finished_at'], now)}" if backup else "never",
                points,
                f"{format_duration(job['rpo_seconds'])} / {objectives[rpo_objective]}",
                f"{format_duration(job['rto_seconds'])} / {objectives[rto_objective]}{forecast_note(job)}",
                format_duration(job["data_loss_window_seconds"]),
            ]
        )
    text = (
        table(
            [
                "JOB",
                "STATE",
                "LAST BACKUP",
                "NEWEST VERIFIED POINT PER DESTINATION",
                "RPO / OBJ",
                "RTO / OBJ",
                "CANARY LOSS WINDOW",
            ],
            rows,
        )
        if rows
        else "no valid jobs"
    )
    reasons = [f"  {job['job']}: {'; '.join(job['reasons'])}" for job in document["jobs"] if job["reasons"]]
    if reasons:
        text += "\n\nreasons:\n" + "\n".join(reasons)
    for broken in document["broken_jobs"]:
        text += f"\n\nDISABLED {broken['job']}: " + "\n  ".join(broken["problems"])
    scheduler = document.get("scheduler") or {}
    if scheduler.get("leader"):  # said only where a daemon schedules: cron's run-due users see no change
        text += "\n\n" + scheduler_line(scheduler, now)
    return text


def scheduler_line(scheduler: dict[str, Any], now: datetime) -> str:
    """Return who leads the scheduling in one line, from the status document's `scheduler`."""
    return (
        f"scheduler: {scheduler['leader']} leads ({scheduler['executor']} executor) since {scheduler['since']}, "
        f"last heartbeat {age(scheduler['heartbeat_at'], now)}"
    )
