"""The data-loss risk report of the watchdog: an objective is breached; what is at risk for whom, what failed
lately, how to get back within the objective and how to recover meanwhile.

Pure functions: facts in, a JSON-ready document and its Markdown rendering out. No secrets are ever passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from replica.config.durations import format_duration
from replica.report.dataloss import (
    AT_RISK_HEADING,
    REPORT_FORMAT,
    RISK_REPORT_KIND,
    RecoveryPoint,
    evidence_lines,
    expected_recovery_document,
    expected_recovery_lines,
    impact_lines,
    point_document,
    report_id_lines,
    resolution_lines,
    risk_summary,
    table_cell,
)

OBJECTIVE_NAMES = {"rpo": "RPO", "rto": "RTO", "wal_lag": "WAL lag (RPO)"}


@dataclass(frozen=True)
class FailedRun:
    """A recent run of the job that did not succeed, with the first line of its error."""

    run_id: int
    kind: str
    destination: str | None
    status: str
    started_at: datetime
    error: str | None


@dataclass(frozen=True)
class RiskFacts:
    """Everything the risk report says, gathered by the caller from the catalog and the configuration."""

    job: str
    store: str
    policy: str
    objective: str  # rpo | rto
    breach_id: int
    breach_detail: str
    measured_seconds: float | None
    objective_seconds: float
    watchdog_run_id: int
    destinations: list[str]  # every configured destination, primary first
    newest_verified: dict[str, RecoveryPoint]  # per destination that holds one
    recent_failures: list[FailedRun]  # newest first
    owners: list[str]
    clients: list[str]
    expected_recovery_seconds: float | None
    rto_objective_seconds: float
    created_at: datetime


def build_risk_report(facts: RiskFacts) -> dict[str, Any]:
    """Return the risk report as a JSON-ready document (`kind: risk`)."""
    name = OBJECTIVE_NAMES[facts.objective]
    # The canary restored by a verification is the real recovery point; the snapshot's time is the fallback.
    window_start = max((point.recovery_point for point in facts.newest_verified.values()), default=None)
    return {
        "format": REPORT_FORMAT,
        "kind": RISK_REPORT_KIND,
        "title": f"Data-loss risk report: job '{facts.job}', {name} objective breached",
        "created_at": facts.created_at.isoformat(),
        "job": facts.job,
        "store": facts.store,
        "policy": facts.policy,
        "watchdog_run_id": facts.watchdog_run_id,
        "breach": {
            "id": facts.breach_id,
            "objective": facts.objective,
            "measured_seconds": facts.measured_seconds,
            "objective_seconds": facts.objective_seconds,
            "detail": facts.breach_detail,
        },
        "newest_verified_recovery_points": {
            destination: point_document(facts.newest_verified[destination])
            if destination in facts.newest_verified
            else None
            for destination in facts.destinations
        },
        "data_at_risk": {
            "window_start": window_start.isoformat() if window_start else None,
            "window_end": facts.created_at.isoformat(),
            "window_seconds": (facts.created_at - window_start).total_seconds() if window_start else None,
            "summary": _risk_summary(facts, window_start),
        },
        "affected": {"owners": facts.owners, "clients": facts.clients},
        "recent_failures": [
            {
                "run_id": run.run_id,
                "kind": run.kind,
                "destination": run.destination,
                "status": run.status,
                "started_at": run.started_at.isoformat(),
                "error": run.error,
            }
            for run in facts.recent_failures
        ],
        "resolutions": _resolutions(facts),
        "expected_recovery": expected_recovery_document(facts.expected_recovery_seconds, facts.rto_objective_seconds),
    }


def _risk_summary(facts: RiskFacts, window_start: datetime | None) -> str:
    summary = risk_summary(facts.job, facts.store, facts.created_at, window_start)
    return summary if window_start is None else f"{summary[:-1]}; the window grows until a new backup is verified."


def _resolutions(facts: RiskFacts) -> list[dict[str, Any]]:
    """Return the possible resolutions, most promising first: get back within the objective, then how to recover
    if the store is lost before that."""
    resolutions: list[dict[str, Any]] = []
    failures = " Recent runs failed (listed above): fix their cause first." if facts.recent_failures else ""
    if facts.objective == "rpo":
        resolutions.append(
            {
                "action": "back-up-now",
                "description": f"Take a backup of {facts.store} now and verify it: a new verified recovery point "
                f"clears the breach.{failures}",
                "commands": [f"replica backup {facts.job}", f"replica verify {facts.job}"],
            }
        )
    elif facts.objective == "wal_lag":
        resolutions.append(
            {
                "action": "restore-wal-shipping",
                "description": f"WAL of {facts.store} is not reaching every destination within the RPO: look at the "
                "server's log for failing `replica wal-push` calls (a destination unreachable, credentials) and at "
                f"`replica wal-status {facts.job}`; the breach clears once the lag is measured within the RPO.",
                "commands": [f"replica wal-status {facts.job}"],
            }
        )
    else:
        resolutions.append(
            {
                "action": "speed-up-recovery",
                "description": f"The last measured restore took {format_duration(facts.measured_seconds)}, longer "
                f"than the objective of {format_duration(facts.objective_seconds)}: find what slows it (a store "
                "grown larger, a slow scratch disk or link to the destination) and verify again to measure anew, "
                f"or agree a longer RTO in policy '{facts.policy}' with the owners.",
                "commands": [f"replica verify {facts.job}"],
            }
        )
    for name, point in sorted(facts.newest_verified.items(), key=lambda item: item[1].taken_at, reverse=True):
        resolutions.append(
            {
                "action": "restore-newest-verified-snapshot",
                "destination": name,
                "snapshot_id": point.snapshot_id,
                "description": f"If {facts.store} is lost before then, restore the newest verified recovery point "
                f"in '{name}' (snapshot {point.snapshot_id}, recovery point {point.recovery_point.isoformat()}); "
                "changes made after it are lost.",
                "commands": [
                    f"replica restore {facts.job} --snapshot {point.snapshot_id} --destination {name} --to TARGET"
                ],
            }
        )
    return resolutions


def render_risk_markdown(report: dict[str, Any]) -> str:
    """Return the risk report as Markdown for people, in the four parts of every report (see
    `replica.report.dataloss.SECTION_HEADINGS`). Raises KeyError when `report` lacks a key every risk report has."""
    breach = report["breach"]
    lines = [
        f"# {report['title']}",
        "",
        f"Written {report['created_at']} by replica's watchdog (run {report['watchdog_run_id']}): {breach['detail']}.",
        "",
        "## What is breached",
        "",
        *report_id_lines(report),
        f"- Objective: {objective_name(breach)} of policy '{report['policy']}': measured "
        f"{format_duration(breach['measured_seconds'])}, objective {format_duration(breach['objective_seconds'])}",
        f"- Job: {report['job']}",
        f"- Store: {report['store']}",
        "",
        # Failures come before the resolutions, which refer to them as "listed above".
        "### Recent failures",
        "",
    ]
    if report["recent_failures"]:
        lines += ["| run | kind | destination | status | started | error |", "|---|---|---|---|---|---|"]
        lines += [
            f"| {run['run_id']} | {run['kind']} | {run['destination'] or '-'} | {run['status']} | "
            f"{run['started_at']} | {table_cell(run['error'])} |"
            for run in report["recent_failures"]
        ]
    else:
        lines.append("None recorded: no backup, copy or verification failed lately.")
    lines += [
        "",
        *impact_lines(report),
        f"## {AT_RISK_HEADING}",
        "",
        report["data_at_risk"]["summary"],
        "",
        "### Newest verified recovery point per destination",
        "",
    ]
    for destination, point in report["newest_verified_recovery_points"].items():
        if point is None:
            lines.append(f"- {destination}: none")
            continue
        canary = f", canary {point['canary_at']}" if point.get("canary_at") else ""
        lines.append(
            f"- {destination}: snapshot {point['snapshot_id']} taken {point['taken_at']}{canary} "
            f"(measured RTO {format_duration(point['rto_seconds'])})"
        )
    lines += resolution_lines(report["resolutions"])
    lines += ["", *expected_recovery_lines(report["expected_recovery"])]
    lines += evidence_lines(report)
    return "\n".join(lines)


def objective_name(breach: dict[str, Any]) -> str:
    """Return the display name of a breach's objective (`RPO`, `RTO`; unknown ones as written)."""
    objective = str(breach["objective"])
    return OBJECTIVE_NAMES.get(objective, objective)
