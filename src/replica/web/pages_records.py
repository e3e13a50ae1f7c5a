"""The record pages: data-loss reports, the verification log with filters and its evidence export, and the page of
a background task (which refreshes itself until the task ends)."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from replica.actions.audit import read_log
from replica.actions.evidence import EXPORT_FORMATS
from replica.errors import NotFound
from replica.report.dataloss import render_markdown
from replica.report.evidence import compact_figures
from replica.web.api import MAX_RECORD_ID
from replica.web.auth import Auditor
from replica.web.exports import evidence_download
from replica.web.moments import parse_moment
from replica.web.rendering import render
from replica.web.state import web_state

router = APIRouter(include_in_schema=False)

AUDIT_LIMIT_DEFAULT = 200
AUDIT_LIMIT_MAX = 5000
# How often a running task's page reloads itself.
TASK_REFRESH_SECONDS = 1

# A time filter as a form sends it: empty when not given (see rendering.parse_moment).
Moment = Annotated[str, Query(max_length=64)]


@router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request, holder: Auditor, job: str | None = None) -> Response:
    """Every data-loss report, newest first (of one job when asked)."""
    reports = web_state(request).context().catalog.reports(job or None)
    return render(request, "reports.html", holder, reports=reports, job=job)


@router.get("/reports/{report_id}", response_class=HTMLResponse)
def report_page(request: Request, holder: Auditor, report_id: Annotated[int, Path(ge=1, le=MAX_RECORD_ID)]) -> Response:
    """One report: its saved HTML when it was written (shown in a sandboxed frame), else its Markdown."""
    report = web_state(request).context().catalog.report(report_id)
    if report is None:
        raise NotFound(f"no report {report_id}")
    saved = FilePath(report.html_path) if report.html_path else None
    html = saved.read_text(encoding="utf-8") if saved is not None and saved.is_file() else None
    markdown = None if html is not None else render_markdown(report.body)
    return render(request, "report.html", holder, report=report, html=html, markdown=markdown)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    holder: Auditor,
    job: str | None = None,
    kind: str | None = None,
    since: Moment = "",
    until: Moment = "",
    limit: Annotated[int, Query(ge=1, le=AUDIT_LIMIT_MAX)] = AUDIT_LIMIT_DEFAULT,
) -> Response:
    """The verification log, newest `limit` events of the filters (job, kind, period), newest first."""
    context = web_state(request).context()
    period = {"since": parse_moment(since), "until": parse_moment(until)}
    events = read_log(context, job=job or None, kinds=[kind] if kind else [], newest=limit, **period)
    for event in events:
        event["figures_shown"] = compact_figures(event["figures"])
    filters = {"job": job or "", "kind": kind or "", "since": since, "until": until, "limit": limit}
    return render(
        request,
        "audit.html",
        holder,
        events=list(reversed(events)),
        filters=filters,
        jobs=sorted(context.configuration.jobs),
        formats=EXPORT_FORMATS,
    )


@router.get("/audit/export")
def audit_export(
    request: Request,
    holder: Auditor,
    format: Annotated[str, Query(pattern="^(" + "|".join(EXPORT_FORMATS) + ")$")] = "json",
    since: Moment = "",
    until: Moment = "",
) -> Response:
    """Download the evidence pack of a period (as `replica audit export` writes it; CSV's two files as a zip)."""
    context = web_state(request).context()
    return evidence_download(context, holder, format, parse_moment(since), parse_moment(until))


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
def task_page(request: Request, holder: Auditor, task_id: Annotated[int, Path(ge=1, le=MAX_RECORD_ID)]) -> Response:
    """A background action: state, progress lines and outcome; the page reloads itself while it runs."""
    task = web_state(request).tasks.get(task_id)
    if task is None:
        raise NotFound(f"no task {task_id} (tasks are kept in memory until the server restarts)")
    # A copy of the progress lines: the task's thread appends to them while the page renders.
    progress = list(task.progress)
    return render(request, "task.html", holder, task=task, progress=progress, refresh_seconds=TASK_REFRESH_SECONDS)
