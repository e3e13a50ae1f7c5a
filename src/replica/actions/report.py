"""Writing reports: the data-loss report of a failed verification (gather facts, render), and the files and
catalog row of any report (the watchdog's risk reports too)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from replica.actions.context import Context
from replica.actions.recovery_points import (
    expected_recovery_seconds,
    latest_verifications,
    measured_rtos,
    newest_point_per_destination,
    verified_points,
)
from replica.catalog.models import Snapshot
from replica.catalog.records import SUCCEEDED, CheckOutcome, utc_now
from replica.config.models import JobConfig, PolicyConfig
from replica.policy.forecast import forecast_breach
from replica.report.dataloss import (
    RISK_REPORT_KIND,
    FailedCheck,
    ForecastFacts,
    RecoveryPoint,
    ReportFacts,
    build_report,
    render_markdown,
)


def write_data_loss_report(
    context: Context,
    job: JobConfig,
    policy: PolicyConfig,
    destination: str,
    snapshot_id: str,
    run_id: int,
    checks: Sequence[CheckOutcome],
    *,
    damaged_objects: Sequence[dict[str, str | None]] = (),
    failure: str | None = None,
    wal_gaps: Sequence[dict[str, Any]] = (),
) -> tuple[int, Path]:
    """Write the Markdown and JSON report of a failed verification; return the report id and the Markdown path.

    `damaged_objects` are the repository files confirmed damaged or missing at rest, named in the report;
    `failure` is the verification's failure state; `wal_gaps` the gaps of a WAL chain (replica.actions.wal_chain)."""
    catalog = context.catalog
    snapshots = catalog.snapshots(job.name)
    failed_row = next((s for s in snapshots if s.destination == destination and s.snapshot_id == snapshot_id), None)
    points = [
        p
        for p in verified_points(catalog, job.name)
        if not (p.snapshot.destination == destination and p.snapshot.snapshot_id == snapshot_id)
    ]
    newest = {
        name: RecoveryPoint(name, p.snapshot.snapshot_id, p.snapshot.taken_at, True, p.rto_seconds, p.canary_at)
        for name, p in newest_point_per_destination(points).items()
    }
    verifications = latest_verifications(catalog.runs(job=job.name, kind="verify", limit=10_000))
    same_elsewhere = []
    older_same_destination = None
    if failed_row is not None:
        for row in snapshots:
            if row.original_id == failed_row.original_id and row.destination != destination and row.usable:
                run = verifications.get((row.destination, row.snapshot_id))
                verified = run is not None and run.status == SUCCEEDED
                same_elsewhere.append(RecoveryPoint(row.destination, row.snapshot_id, row.taken_at, verified))
    older = [p for p in points if p.snapshot.destination == destination]
    if older:
        older_same_destination = RecoveryPoint(
            destination, older[0].snapshot.snapshot_id, older[0].snapshot.taken_at, True, older[0].rto_seconds
        )
    now = utc_now()
    facts = ReportFacts(
        job=job.name,
        store=context.store(job, policy).describe(),
        destination=destination,
        snapshot_id=snapshot_id,
        snapshot_taken_at=failed_row.taken_at if failed_row else None,
        verify_run_id=run_id,
        failed_checks=[FailedCheck(c.name, c.critical, c.detail) for c in checks if not c.passed],
        newest_verified=newest,
        same_snapshot_elsewhere=same_elsewhere,
        older_verified_same_destination=older_same_destination,
        owners=list(job.owners),
        clients=list(job.clients),
        bytes_at_risk=_original_size(snapshots, failed_row.original_id) if failed_row else None,
        expected_recovery_seconds=expected_recovery_seconds(measured_rtos(catalog, job.name)),
        rto_objective_seconds=policy.rto.total_seconds(),
        rpo_objective_seconds=policy.rpo.total_seconds(),
        created_at=now,
        damaged_objects=list(damaged_objects),
        failure=failure,
        rto_forecasts=rto_forecasts(context, job.name, policy, now),
        wal_gaps=list(wal_gaps),
    )
    evidence = [run_id, failed_row.backup_run_id] if failed_row else [run_id]
    return save_report(context, job.name, run_id, build_report(facts), now, evidence_run_ids=evidence)


def rto_forecasts(context: Context, job_name: str, policy: PolicyConfig, now: datetime) -> list[ForecastFacts]:
    """Return the RTO forecast of each destination whose fit the job's (cached) status facts hold."""
    fits = context.catalog.latest_records([job_name])[job_name].rto_fits
    forecasts = []
    for destination, fit in sorted(fits.items()):
        forecast = forecast_breach(fit, policy.rto.total_seconds(), now)
        forecasts.append(ForecastFacts(destination, forecast.breach_at, forecast.already, fit.confidence, fit.samples))
    return forecasts


def save_report(
    context: Context,
    job_name: str,
    run_id: int,
    body: dict[str, Any],
    created_at: datetime,
    *,
    evidence_run_ids: Sequence[int] = (),
) -> tuple[int, Path]:
    """Record a report built by `replica.report` in the catalog, then write it as Markdown, HTML and JSON under
    the reports folder of the job; return the report id and the Markdown path.

    The report cites the verification-log events of `run_id` and `evidence_run_ids` (and, for a risk report, the
    job's open breaches), by sequence number and hash. Raises OSError when a file cannot be written (the catalog
    row stays, without paths).
    """
    from replica.report.html import render_html  # deferred: Jinja2 costs ~50 ms that most commands skip

    catalog = context.catalog
    body["events"] = _evidence(context, job_name, [run_id, *evidence_run_ids], body)
    report_id = catalog.add_report(
        job=job_name, run_id=run_id, title=body["title"], markdown_path="", json_path="", body=body
    )
    body["report_id"] = report_id
    folder = context.settings.reports_path / job_name
    folder.mkdir(parents=True, exist_ok=True)
    # The id comes from the catalog row, so the file names are known only now; `kind` tells risk reports apart.
    stem = f"{created_at.strftime('%Y%m%dT%H%M%SZ')}-{body.get('kind', 'report')}-{report_id}"
    markdown_path, json_path, html_path = folder / f"{stem}.md", folder / f"{stem}.json", folder / f"{stem}.html"
    markdown_path.write_text(render_markdown(body), encoding="utf-8")
    html_path.write_text(render_html(body), encoding="utf-8")
    json_path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    catalog.update_report_paths(
        report_id, markdown_path=str(markdown_path), json_path=str(json_path), html_path=str(html_path), body=body
    )
    return report_id, markdown_path


def _evidence(context: Context, job_name: str, run_ids: Sequence[int], body: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the verification-log events a report stands on: those of its runs and, for a risk report, the
    openings of the job's breaches."""
    log = context.catalog.events
    events = log.events(job=job_name, run_ids=sorted(set(run_ids)))
    if body.get("kind") == RISK_REPORT_KIND:
        events += [e for e in log.events(job=job_name, kinds=["breach"], newest=20) if e.outcome == "opened"]
    unique = {event.seq: event for event in events}
    return [{"seq": e.seq, "kind": e.kind, "hash": e.hash} for _, e in sorted(unique.items())]


def _original_size(snapshots: Sequence[Snapshot], original_id: str) -> int | None:
    for row in snapshots:
        if row.snapshot_id == original_id and row.bytes_processed:
            return row.bytes_processed
    return None
