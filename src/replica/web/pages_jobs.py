"""The job page (status, RPO/RTO charts, verification history with every check's figures, runs, snapshots) and
the operator's forms on it: Backup, Verify, and a restore in two steps (the plan first, then Confirm).

Actions answer 303 to the page of the task that runs them; an auditor posting one gets the 403 page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from replica.actions.status import job_status
from replica.catalog.records import utc_now
from replica.web import operations
from replica.web.api import NAME_PATTERN, SNAPSHOT_PATTERN, JobName
from replica.web.api_history import read_job_history
from replica.web.auth import Auditor, Operator
from replica.web.charts import time_series_chart
from replica.web.moments import parse_moment
from replica.web.rendering import render
from replica.web.state import web_state

router = APIRouter(include_in_schema=False)

VERIFICATIONS_SHOWN = 20
RUNS_SHOWN = 30
SNAPSHOTS_SHOWN = 30

# Optional form fields: an empty input sends "", which means "not given".
OptionalName = Annotated[str, Form(max_length=64, pattern=f"^$|{NAME_PATTERN}")]
OptionalSnapshot = Annotated[str, Form(max_length=64, pattern=f"^$|{SNAPSHOT_PATTERN}")]


@router.get("/jobs/{job}", response_class=HTMLResponse)
def job_page(request: Request, job: JobName, holder: Auditor) -> Response:
    """A job's state, RPO and RTO charts, verifications with their checks, recent runs, snapshots and reports."""
    state = web_state(request)
    context = state.context()
    status = job_status(context, job, utc_now())
    history = read_job_history(context, job)
    catalog = context.catalog
    verifications = [
        (run, catalog.checks(run.id)) for run in catalog.runs(job=job, kind="verify", limit=VERIFICATIONS_SHOWN)
    ]
    job_config, _ = context.job(job)
    return render(
        request,
        "job.html",
        holder,
        status=status,
        rto_chart=time_series_chart(history.rto, history.rto_objective_seconds, title=f"RTO of {job}"),
        rpo_chart=time_series_chart(history.rpo, history.rpo_objective_seconds, title=f"RPO of {job}"),
        verifications=verifications,
        runs=catalog.runs(job=job, limit=RUNS_SHOWN),
        snapshots=catalog.snapshots(job)[:SNAPSHOTS_SHOWN],
        reports=catalog.reports(job),
        tasks=state.tasks.recent(job, limit=10),
        destinations=[destination.name for destination in job_config.destinations],
    )


@router.post("/jobs/{job}/backup")
def backup(request: Request, job: JobName, holder: Operator) -> Response:
    """Start a backup and show its task."""
    state = web_state(request)
    task = operations.start_backup(state.context(), state.tasks, holder, job)
    return RedirectResponse(f"/tasks/{task.id}", status_code=303)


@router.post("/jobs/{job}/verify")
def verify(request: Request, job: JobName, holder: Operator, destination: OptionalName = "") -> Response:
    """Start a test restore (of the primary's newest point, or the chosen destination's) and show its task."""
    state = web_state(request)
    task = operations.start_verify(state.context(), state.tasks, holder, job, destination=destination or None)
    return RedirectResponse(f"/tasks/{task.id}", status_code=303)


@router.get("/jobs/{job}/restore", response_class=HTMLResponse)
def restore_form(request: Request, job: JobName, holder: Operator) -> Response:
    """The restore form: target, snapshot or time, destination, force."""
    context = web_state(request).context()
    job_config, _ = context.job(job)
    return render(
        request,
        "restore.html",
        holder,
        job=job,
        destinations=[destination.name for destination in job_config.destinations],
        snapshots=context.catalog.snapshots(job)[:SNAPSHOTS_SHOWN],
        plan=None,
        restore_root=operations.restore_root(context.settings),
    )


def _restore_choice(to: str, snapshot: str, at: str, destination: str, force: bool) -> operations.RestoreChoice:
    """Return the restore a form asks for. Raises UsageError for a malformed time."""
    return operations.RestoreChoice(to, snapshot or None, parse_moment(at), destination or None, force)


@router.post("/jobs/{job}/restore", response_class=HTMLResponse)
def restore_plan(
    request: Request,
    job: JobName,
    holder: Operator,
    to: Annotated[str, Form(min_length=1, max_length=1024)],
    snapshot: OptionalSnapshot = "",
    at: Annotated[str, Form(max_length=64)] = "",
    destination: OptionalName = "",
    force: Annotated[bool, Form()] = False,
) -> Response:
    """The confirmation step: what the restore would do, changing nothing; a refused plan offers no Confirm."""
    context = web_state(request).context()
    plan = operations.plan_web_restore(context, holder, job, _restore_choice(to, snapshot, at, destination, force))
    return render(request, "restore.html", holder, job=job, destinations=[], snapshots=[], plan=plan, to=to)


@router.post("/jobs/{job}/restore/confirm")
def restore_confirm(
    request: Request,
    job: JobName,
    holder: Operator,
    to: Annotated[str, Form(min_length=1, max_length=1024)],
    snapshot: Annotated[str, Form(pattern=SNAPSHOT_PATTERN)],
    destination: Annotated[str, Form(max_length=64, pattern=NAME_PATTERN)],
    force: Annotated[bool, Form()] = False,
) -> Response:
    """Start the confirmed restore (of exactly the snapshot and destination the plan showed) and show its task.
    A target that gained data since the plan is refused (409) unless force was confirmed."""
    state = web_state(request)
    choice = operations.RestoreChoice(to, snapshot, None, destination, force)
    task = operations.start_restore(state.context(), state.tasks, holder, job, choice)
    return RedirectResponse(f"/tasks/{task.id}", status_code=303)
