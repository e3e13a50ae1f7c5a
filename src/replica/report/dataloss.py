"""The data-loss report: what failed, what is at risk for whom, how to recover and how long it should take.

Pure functions: facts in, a JSON-ready document and its Markdown rendering out. No secrets are ever passed in.
Every report, this one and the watchdog's risk report (`replica.report.risk`), has the same four parts under the
headings of `SECTION_HEADINGS`, in Markdown here and in HTML (`replica.report.html`).

Optional keys of a report body, absent from bodies written before they existed (renderers must cope):
- `report_id` (int): the catalog id, set by `replica.actions.report.save_report` once the row exists.
- `events` (list of `{"seq": int, "kind": str, "hash": str}`): the verification-log events the report rests on,
  rendered as evidence references.
- `damaged_objects` (list of `{"key", "state": "damaged"|"missing", "expected_sha256", "found_sha256"}`): the
  repository files re-downloaded and found damaged (their SHA-256 is not their name) or gone at rest.
- `failure` (str or null): the failure state of the verification (`corrupt`, `verification_failed`, ...).
- `wal_gaps` (list of `{"destination", "start_lsn", "end_lsn", "segments", "description", "held_by": [{"destination",
  "whole", "ranges"}], "recoverable"}`): segments missing from a WAL chain (`replica wal-verify`), and which other
  destinations still hold them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from replica.config.durations import format_duration

REPORT_FORMAT = 1
# The `kind` of a watchdog's risk report body; a data-loss report's body has none (written before kinds existed).
RISK_REPORT_KIND = "risk"

# The four parts of every report, in this order; the issue names them, so they are headings verbatim.
IMPACT_HEADING = "Assessment of impact"
AT_RISK_HEADING = "Data lost or at risk"
RESOLUTIONS_HEADING = "Possible resolutions"
RECOVERY_HEADING = "Expected recovery time"
SECTION_HEADINGS = (IMPACT_HEADING, AT_RISK_HEADING, RESOLUTIONS_HEADING, RECOVERY_HEADING)


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
class ForecastFacts:
    """A destination's RTO forecast (replica.policy.forecast): when it exceeds the objective at the current growth."""

    destination: str
    breach_at: datetime | None  # None: not within the forecast's limit
    already: bool
    confidence: str
    samples: int


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
    damaged_objects: list[dict[str, str | None]] = field(default_factory=list)
    # The failure state of the verification (replica.errors.FAILURE_STATES): `corrupt`, `verification_failed`...
    failure: str | None = None
    rto_forecasts: list[ForecastFacts] = field(default_factory=list)
    wal_gaps: list[dict[str, Any]] = field(default_factory=list)


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
        "failure": facts.failure,
        "failed_checks": [{"name": c.name, "critical": c.critical, "detail": c.detail} for c in facts.failed_checks],
        "damaged_objects": facts.damaged_objects,
        "wal_gaps": facts.wal_gaps,
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
        "expected_recovery": expected_recovery_document(
            facts.expected_recovery_seconds, facts.rto_objective_seconds, facts.rto_forecasts
        ),
    }


def expected_recovery_document(
    seconds: float | None, rto_objective_seconds: float, forecasts: Sequence[ForecastFacts] = ()
) -> dict[str, Any]:
    """Return the report's expected recovery time, against the RTO objective and with what it is based on, and
    the RTO forecast of every destination that has one."""
    return {
        "seconds": seconds,
        "rto_objective_seconds": rto_objective_seconds,
        "basis": "worst of the last five measured restore-to-verified times"
        if seconds is not None
        else "no restore of this job has been measured yet",
        "forecasts": [
            {
                "destination": forecast.destination,
                "breach_at": forecast.breach_at.isoformat() if forecast.breach_at else None,
                "already": forecast.already,
                "confidence": forecast.confidence,
                "samples": forecast.samples,
                "summary": forecast_summary(forecast),
            }
            for forecast in forecasts
        ],
    }


def forecast_summary(forecast: ForecastFacts) -> str:
    """Return one sentence on a destination's RTO forecast."""
    basis = f"{forecast.confidence} confidence, {forecast.samples} measured restores"
    if forecast.already:
        when = "already exceeds the objective at the current size"
    elif forecast.breach_at is not None:
        when = f"is forecast to exceed the objective on {forecast.breach_at.date().isoformat()} at the current growth"
    else:
        when = "is not forecast to exceed the objective within 5 years"
    return f"The RTO of '{forecast.destination}' {when} ({basis})."


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
    resolutions: list[dict[str, Any]] = _wal_resolutions(facts)
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


def _wal_resolutions(facts: ReportFacts) -> list[dict[str, Any]]:
    """Return, for each WAL gap, the resolution of restoring (point in time) from the destinations that hold it."""
    resolutions = []
    for gap in facts.wal_gaps:
        for holder in gap["held_by"]:
            held = "all of it" if holder["whole"] else ", ".join(holder["ranges"])
            resolutions.append(
                {
                    "action": "restore-wal-from-other-destination",
                    "destination": holder["destination"],
                    "description": f"WAL {gap['start_lsn']}-{gap['end_lsn']} missing from '{gap['destination']}' "
                    f"is still in '{holder['destination']}' ({held}): restore to a point in time from there, and "
                    f"copy those segments back into '{gap['destination']}'.",
                    "commands": [f"replica restore {facts.job} --destination {holder['destination']} --to TARGET"],
                }
            )
    return resolutions


def wal_gap_lines(report: dict[str, Any]) -> list[str]:
    """Return the Markdown list of the WAL chain's gaps and where their segments still are, or nothing."""
    gaps = report.get("wal_gaps") or []
    if not gaps:
        return []
    lines = ["WAL missing from the chain (restores past it stop at its start):", ""]
    for gap in gaps:
        held = "; ".join(
            f"'{h['destination']}' has " + ("all of it" if h["whole"] else ", ".join(h["ranges"]))
            for h in gap["held_by"]
        )
        lines.append(f"- '{gap['destination']}': {gap['description']}: {held or 'no other destination has it'}")
    return [*lines, ""]


def render_markdown(report: dict[str, Any]) -> str:
    """Return the report as Markdown for people: a data-loss report, or a risk report of the watchdog (its body
    says `kind: risk`), so that `replica reports show` renders either. Raises KeyError when `report` lacks a key
    every report body has."""
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
        *report_id_lines(report),
        f"- Job: {report['job']}",
        f"- Store: {report['store']}",
        f"- Destination: {report['destination']}",
        f"- Snapshot: {report['snapshot_id']} (taken {report['snapshot_taken_at'] or 'unknown'})",
        *([f"- Failure state: `{report['failure']}`"] if report.get("failure") else []),
        "",
        "| check | critical | finding |",
        "|---|---|---|",
        *[
            f"| {table_cell(c['name'])} | {'yes' if c['critical'] else 'no'} | {table_cell(c['detail'])} |"
            for c in report["failed_checks"]
        ],
        "",
        *damaged_object_lines(report),
        *wal_gap_lines(report),
        *impact_lines(report),
        f"## {AT_RISK_HEADING}",
        "",
        risk["summary"],
        "",
        "### Newest verified recovery point per destination",
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
    lines += evidence_lines(report)
    return "\n".join(lines)


def damaged_object_lines(report: dict[str, Any]) -> list[str]:
    """Return the Markdown list of repository files confirmed damaged or missing at rest, or nothing."""
    objects = report.get("damaged_objects") or []
    if not objects:
        return []
    lines = ["Repository files confirmed at rest (re-downloaded, SHA-256 compared with the name):", ""]
    for item in objects:
        if item["state"] == "missing":
            lines.append(f"- `{item['key']}`: missing")
        else:
            lines.append(f"- `{item['key']}`: damaged (SHA-256 {short_hash(str(item['found_sha256']))})")
    return [*lines, ""]


def report_id_lines(report: dict[str, Any]) -> list[str]:
    """Return the Markdown list item naming the report's catalog id, or nothing for a body saved without one."""
    return [f"- Report: {report['report_id']}"] if report.get("report_id") is not None else []


def impact_lines(report: dict[str, Any]) -> list[str]:
    """Return the Markdown section assessing the impact: who is affected, the window and size of data at risk."""
    risk = report["data_at_risk"]
    window = f" ({format_duration(risk['window_seconds'])})" if risk.get("window_seconds") is not None else ""
    lines = [
        f"## {IMPACT_HEADING}",
        "",
        f"- Owners: {', '.join(report['affected']['owners']) or 'none listed'}",
        f"- Clients affected: {', '.join(report['affected']['clients']) or 'none listed'}",
        f"- Window: {risk['window_start'] or 'everything'} to {risk['window_end']}{window}",
    ]
    # Risk reports measure no size (nothing failed to restore); their bodies have no `bytes_at_risk`.
    if "bytes_at_risk" in risk:
        lines.append(f"- Size of the failed recovery point: {format_size(risk['bytes_at_risk'])}")
    return [*lines, ""]


def resolution_lines(resolutions: list[dict[str, Any]]) -> list[str]:
    """Return the Markdown section of ranked resolutions, each with the commands to run."""
    lines = ["", f"## {RESOLUTIONS_HEADING}", "", "Most promising first.", ""]
    for number, resolution in enumerate(resolutions, start=1):
        lines.append(f"{number}. {resolution['description']}")
        lines += [f"   - `{command}`" for command in resolution["commands"]]
    return lines


def expected_recovery_lines(recovery: dict[str, Any]) -> list[str]:
    """Return the Markdown section of an expected recovery document."""
    return [
        f"## {RECOVERY_HEADING}",
        "",
        f"{format_duration(recovery['seconds']) if recovery['seconds'] is not None else 'unknown'} "
        f"({recovery['basis']}); objective {format_duration(recovery['rto_objective_seconds'])}.",
        "",
        # .get: report bodies written before forecasts have none
        *[f"- {forecast['summary']}" for forecast in recovery.get("forecasts", ())],
        *([""] if recovery.get("forecasts") else []),
    ]


def evidence_lines(report: dict[str, Any]) -> list[str]:
    """Return the Markdown section listing the verification-log events the report rests on, or nothing when the
    body names none (bodies written before the log existed)."""
    events = report.get("events") or []
    if not events:
        return []
    return [
        "## Evidence",
        "",
        *[f"- Verification-log event #{e['seq']} ({e['kind']}, hash {short_hash(e['hash'])})" for e in events],
        "",
    ]


def format_size(value: int | None) -> str:
    """Return a byte count as `30001366 bytes (28.6 MiB)`, or `unknown`."""
    if value is None:
        return "unknown"
    size, unit = float(value), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, larger
    return f"{value} bytes" if unit == "bytes" else f"{value} bytes ({size:.1f} {unit})"


def short_hash(value: str, length: int = 12) -> str:
    """Return the first `length` characters of a hash followed by an ellipsis (the whole value when shorter)."""
    return value if len(value) <= length else f"{value[:length]}…"


def table_cell(text: str | None) -> str:
    """Return text safe inside a Markdown table cell (`-` for none)."""
    # A detail or error message may hold `|` or a newline, which would end the cell or the row early.
    return text.replace("|", "\\|").replace("\n", " ") if text else "-"
