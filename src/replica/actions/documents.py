"""The catalog's records as JSON documents: runs, snapshots and reports exactly as `replica runs|snapshots|reports
--json` print them and the HTTP API returns them, so that the two never differ in shape."""

from __future__ import annotations

from typing import Any

from replica.actions.context import Context
from replica.actions.status import run_state
from replica.catalog.models import CheckResult, Report, Run, Snapshot
from replica.errors import NotFound


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_document(run: Run) -> dict[str, Any]:
    """Return a run as `replica runs --json` shows it (a dead `running` run as `abandoned`)."""
    return {
        "id": run.id,
        "job": run.job,
        "kind": run.kind,
        "destination": run.destination,
        "status": run_state(run),
        "phase": run.phase,
        "snapshot_id": run.snapshot_id,
        "started_at": run.started_at.isoformat(),
        "finished_at": _iso(run.finished_at),
        "error": run.error,
        "failure": run.failure,
        "actor": run.actor,
        "details": run.details,
    }


def run_documents(context: Context, *, job: str | None, kind: str | None = None, limit: int) -> list[dict[str, Any]]:
    """Return the newest `limit` runs (of one job and kind when given), newest first."""
    return [run_document(run) for run in context.catalog.runs(job=job, kind=kind, limit=limit)]


def check_document(check: CheckResult) -> dict[str, Any]:
    """Return one check of a run: its name, verdict, whether it is critical, its detail and duration."""
    return {
        "name": check.name,
        "passed": check.passed,
        "critical": check.critical,
        "detail": check.detail,
        "duration_seconds": check.duration_seconds,
    }


def run_with_checks(context: Context, run_id: int) -> dict[str, Any]:
    """Return one run with the results of its checks, in the order they ran. Raises NotFound for an unknown id."""
    run = context.catalog.run(run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id}")
    return {**run_document(run), "checks": [check_document(check) for check in context.catalog.checks(run_id)]}


def snapshot_document(snapshot: Snapshot) -> dict[str, Any]:
    """Return a recorded snapshot as `replica snapshots --json` shows it."""
    return {
        "destination": snapshot.destination,
        "snapshot_id": snapshot.snapshot_id,
        "original_id": snapshot.original_id,
        "taken_at": snapshot.taken_at.isoformat(),
        "bytes_processed": snapshot.bytes_processed,
        "usable": snapshot.usable,
        "unusable_reason": snapshot.unusable_reason,
        "backup_run_id": snapshot.backup_run_id,
    }


def snapshot_documents(context: Context, job: str) -> list[dict[str, Any]]:
    """Return the recorded (not pruned) snapshots of a valid job, newest first. Raises NotFound for an unknown job,
    ConfigError for a broken one."""
    context.job(job)
    return [snapshot_document(snapshot) for snapshot in context.catalog.snapshots(job)]


def report_document(report: Report) -> dict[str, Any]:
    """Return a report's catalog entry (not its body) as `replica reports --json` lists it."""
    return {
        "id": report.id,
        "job": report.job,
        "created_at": report.created_at.isoformat(),
        "title": report.title,
        "markdown_path": report.markdown_path,
        "json_path": report.json_path,
        "html_path": report.html_path,
        "run_id": report.run_id,
    }


def report_documents(context: Context, job: str | None) -> list[dict[str, Any]]:
    """Return the reports (of one job when given), newest first."""
    return [report_document(report) for report in context.catalog.reports(job)]


def report_body(context: Context, report_id: int) -> dict[str, Any]:
    """Return the JSON body of a report (what `replica reports show ID --json` prints). Raises NotFound."""
    report = context.catalog.report(report_id)
    if report is None:
        raise NotFound(f"no report with id {report_id}")
    return report.body
