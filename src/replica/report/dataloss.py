"""The data-loss report: what failed, what is at risk for whom, how to recover and how long it should take.

Pure functions: facts in, a JSON-ready document and its Markdown rendering out. No secrets are ever passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from replica.config.durations import format_duration

REPORT_FORMAT = 1
# The `kind` of a watchdog's risk report body; a data-loss report's body has none (written before kinds existed).
RISK_REPORT_KIND = "risk"


@dataclass(frozen=True)
class FailedCheck:
    """A check that failed, with its figures."""

    name: str
    critical: bool
    detail: str


@dataclass(frozen=True)
class RecoveryPoint:
    """A snapshot in one destination, verified or merely recorded."""

    destination: str
    snapshot_id: str
    taken_at: datetime
    verified: bool
    rto_seconds: float | None = None
    canary_at: datetime | None = None  # the real recovery point, measured by the restored canary

    @property
    def recovery_point(self) -> datetime:
        """Return the best known recovery point: the restored canary's time, else the snapshot's."""
        return self.canary_at or self.taken_at


@dataclass(frozen=True)
class ReportFacts:
    """Everything the report says, gathered by the caller from the catalog and the configuration."""

    job: str
    store: str
    destination: str
    snapshot_id: str
    snapshot_taken_at: datetime | None
    verify_run_id: int
    failed_checks: list[FailedCheck]
    newest_verified: dict[str, RecoveryPoint]
    same_snapshot_elsewhere: list[RecoveryPoint]
    older_verified_same_destination: RecoveryPoint | None
    owners: list[str]
    clients: list[str]
    bytes_at_risk: int | None
    expected_recovery_seconds: float | None
    rto_objective_seconds: float
    rpo_objective_seconds: float
    created_at: datetime


def build_report(facts: ReportFacts) -> dict[str, Any]:
    """Return the report as a JSON-ready document."""
    good_points = sorted(facts.newest_verified.values(), key=lambda p: p.taken_at, reverse=True)
    newest_good = good_points[0] if good_points else None
    window_start = newest_good.recovery_point if newest_good else None
    return {
        "format": REPORT_FORMAT,
        "title": f"Data-loss report: job '{facts.job}', destination '{facts.destination}', "
        f"snapshot {facts.snapshot_id}",
        "created_at": facts.created_at.isoformat(),
        "job": facts.job,
        "store": facts.store,
        "destination": facts.destination,
        "snapshot_id": facts.snapshot_id,
        "snapshot_taken_at": facts.snapshot_taken_at.isoformat() if facts.snapshot_taken_at else None,
        "verify_run_id": facts.verify_run_id,
        "failed_checks": [{"name": c.name, "critical": c.critical, "detail": c.detail} for c in facts.failed_checks],
        "newest_verified_recovery_points": {
            name: point_document(point) for name, point in sorted(facts.newest_verified.items())
        },
        "data_at_risk": {
            "window_start": window_start.isoformat() if window_start else None,
            "window_end": facts.created_at.isoformat(),
            "window_seconds": (facts.created_at - window_start).total_seconds() if window_start else None,
            "bytes_at_risk": facts.bytes_at_risk,
            "summary": risk_summary(facts.job, facts.store, facts.created_at, window_start),
        },
        "affected": {"owners": facts.owners, "clients": facts.clients},
        "resolutions": _resolutions(facts),
        "expected_recovery": expected_recovery_document(facts.expected_recovery_seconds, facts.rto_objective_seconds),
    }


def expected_recovery_document(seconds: float | None, rto_objective_seconds: float) -> dict[str, Any]:
    """Return the report's expected recovery time, against the RTO objective and with what it is based on."""
    return {
        "seconds": seconds,
        "rto_objective_seconds": rto_objective_seconds,
        "basis": "worst of the last five measured restore-to-verified times"
        if seconds is not None
        else "no restore of this job has been measured yet",
    }


def point_document(point: RecoveryPoint) -> dict[str, Any]:
    """Return a recovery point as the JSON-ready object reports list per destination."""
    return {
        "destination": point.destination,
        "snapshot_id": point.snapshot_id,
        "taken_at": point.taken_at.isoformat(),
        "verified": point.verified,
        "rto_seconds": point.rto_seconds,
        "canary_at": point.canary_at.isoformat() if point.canary_at else None,
    }


def risk_summary(job: str, store: str, created_at: datetime, window_start: datetime | None) -> str:
    """Return the sentence saying which changes exist in no verified recovery point (all, when none is verified)."""
    if window_start is None:
        return (
            f"No verified recovery point exists for job '{job}': all of its data is at risk until a backup is verified."
        )
    return (
        f"Changes to {store} made after {window_start.isoformat()} exist in no verified recovery point "
        f"({format_duration(created_at - window_start)} of data)."
    )


def _resolutions(facts: ReportFacts) -> list[dict[str, Any]]:
    """Return the possible resolutions, most promising first."""
    resolutions: list[dict[str, Any]] = []
    for point in facts.same_snapshot_elsewhere:
        state = "verified" if point.verified else "not yet verified"
        steps = (
            []
            if point.verified
            else [f"replica verify {facts.job} --destination {point.destination} --snapshot {point.snapshot_id}"]
        )
        steps.append(
            f"replica restore {facts.job} --destination {point.destination} --snapshot {point.snapshot_id} --to TARGET"
        )
        resolutions.append(
            {
                "action": "restore-from-other-destination",
                "destination": point.destination,
                "snapshot_id": point.snapshot_id,
                "description": f"Use the copy of the same recovery point in destination '{point.destination}' "
                f"(snapshot {point.snapshot_id}, {state}); no data beyond this report's window is lost.",
                "commands": steps,
            }
        )
    for name, point in sorted(facts.newest_verified.items(), key=lambda item: item[1].taken_at, reverse=True):
        if any(r.get("destination") == name and r.get("snapshot_id") == point.snapshot_id for r in resolutions):
            continue
        resolutions.append(
            {
                "action": "restore-older-verified-snapshot",
                "destination": name,
                "snapshot_id": point.snapshot_id,
                "description": f"Restore the newest verified recovery point in '{name}' (snapshot {point.snapshot_id}, "
                f"taken {point.taken_at.isoformat()}); changes made after it are lost.",
                "commands": [
                    f"replica restore {facts.job} --destination {name} --snapshot {point.snapshot_id} --to TARGET"
                ],
            }
        )
    resolutions.append(
        {
            "action": "back-up-now",
            "description": f"If {facts.store} is still healthy, take a new backup now so that a fresh recovery point "
            "exists, then verify it; investigate and repair the damaged destination.",
            "commands": [f"replica backup {facts.job}", f"replica verify {facts.job}"],
        }
    )
    return resolutions


def render_markdown(report: dict[str, Any]) -> str:
    """Return the report as Markdown for people: a data-loss report, or a risk report of the watchdog (its body
    says `kind: risk`), so that `replica reports show` renders either."""
    if report.get("kind") == RISK_REPORT_KIND:
        from replica.report.risk import render_risk_markdown  # deferred: risk.py builds on this module

        return render_risk_markdown(report)
    risk = report["data_at_risk"]
    lines = [
        f"# {report['title']}",
        "",
        f"Written {report['created_at']} by replica after verification run {report['verify_run_id']} failed.",
        "",
        "## What failed",
        "",
        f"- Store: {report['store']}",
        f"- Destination: {report['destination']}",
        f"- Snapshot: {report['snapshot_id']} (taken {report['snapshot_taken_at'] or 'unknown'})",
        "",
        "| check | critical | finding |",
        "|---|---|---|",
        *[f"| {c['name']} | {'yes' if c['critical'] else 'no'} | {c['detail']} |" for c in report["failed_checks"]],
        "",
        "## Impact: data at risk",
        "",
        risk["summary"],
        "",
        f"- Window: {risk['window_start'] or 'everything'} to {risk['window_end']}",
        f"- Size of the failed recovery point: {_bytes(risk['bytes_at_risk'])}",
        f"- Owners: {', '.join(report['affected']['owners']) or 'none listed'}",
        f"- Clients affected: {', '.join(report['affected']['clients']) or 'none listed'}",
        "",
        "## Newest verified recovery point per destination",
        "",
    ]
    points = report["newest_verified_recovery_points"]
    if points:
        lines += [
            f"- {name}: snapshot {p['snapshot_id']} taken {p['taken_at']} (measured RTO "
            f"{format_duration(p['rto_seconds'])})"
            for name, p in points.items()
        ]
    else:
        lines.append("- none: no destination holds a verified recovery point")
    lines += resolution_lines(report["resolutions"])
    lines += ["", *expected_recovery_lines(report["expected_recovery"])]
    return "\n".join(lines)


def resolution_lines(resolutions: list[dict[str, Any]]) -> list[str]:
    """Return the Markdown section of ranked resolutions, each with the commands to run."""
    lines = ["", "## Possible resolutions, most promising first", ""]
    for number, resolution in enumerate(resolutions, start=1):
        lines.append(f"{number}. {resolution['description']}")
        lines += [f"   - `{command}`" for command in resolution["commands"]]
    return lines


def expected_recovery_lines(recovery: dict[str, Any]) -> list[str]:
    """Return the Markdown section of an expected recovery document."""
    return [
        "## Expected recovery time",
        "",
        f"{format_duration(recovery['seconds']) if recovery['seconds'] is not None else 'unknown'} "
        f"({recovery['basis']}); objective {format_duration(recovery['rto_objective_seconds'])}.",
        "",
    ]


def _bytes(value: int | None) -> str:
    return "unknown" if value is None else f"{value} bytes"
