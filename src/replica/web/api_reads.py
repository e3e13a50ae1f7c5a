"""The reading half of the JSON API: status, jobs, runs, snapshots, the verification log, reports and the audit
evidence pack. Every route takes any valid token (`Auditor`) and answers the same documents as the command line's
`--json` output (built by the same functions), so a script can move from one to the other unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import AfterValidator, StringConstraints

from replica.actions import documents
from replica.actions.status import collect_status, job_status
from replica.catalog.records import utc_now
from replica.errors import LogTampered
from replica.web.api import MAX_RECORD_ID, JobFilter, JobName, error_responses
from replica.web.auth import Auditor
from replica.web.exports import EXPORT_MEDIA_TYPES, evidence_download
from replica.web.moments import in_utc
from replica.web.state import web_state

router = APIRouter(prefix="/api", tags=["api"], responses=error_responses(401, 404, 422))

MAX_LIMIT = 1000
KIND_PATTERN = r"^[a-z][a-z_]{0,31}$"


Moment = Annotated[
    datetime | None, AfterValidator(in_utc), Query(description="ISO 8601 time; without a zone it is UTC")
]
Kind = Annotated[str, StringConstraints(pattern=KIND_PATTERN)]
RunKind = Annotated[
    Kind | None, Query(description="only runs of this kind (init, backup, copy, verify, restore, prune, ...)")
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="at most this many, the newest")]
RunId = Annotated[int, Path(ge=1, le=MAX_RECORD_ID, description="a run's id")]
ReportId = Annotated[int, Path(ge=1, le=MAX_RECORD_ID, description="a report's id")]
JOB_ERRORS = error_responses(409)  # a job whose file is invalid


@router.get("/status", summary="Every job's status: RPO/RTO against its objectives, per destination")
def status(request: Request, holder: Auditor) -> dict[str, Any]:
    """The document of `replica status --json`."""
    return collect_status(web_state(request).context())


@router.get("/jobs", summary="Job names with their state; broken job files with their problems")
def list_jobs(request: Request, holder: Auditor) -> dict[str, Any]:
    document = collect_status(web_state(request).context())
    keys = ("job", "store", "policy", "state", "reasons")
    return {
        "jobs": [{key: job[key] for key in keys} for job in document["jobs"]],
        "broken_jobs": document["broken_jobs"],
    }


@router.get("/jobs/{job}", summary="One job's status document (as in `replica status --json`)", responses=JOB_ERRORS)
def show_job(request: Request, holder: Auditor, job: JobName) -> dict[str, Any]:
    return job_status(web_state(request).context(), job, utc_now())


@router.get("/jobs/{job}/runs", summary="A job's runs, newest first", responses=JOB_ERRORS)
def list_job_runs(
    request: Request, holder: Auditor, job: JobName, kind: RunKind = None, limit: Limit = 30
) -> list[dict[str, Any]]:
    context = web_state(request).context()
    context.job(job)
    return documents.run_documents(context, job=job, kind=kind, limit=limit)


@router.get("/jobs/{job}/snapshots", summary="A job's recorded snapshots, newest first", responses=JOB_ERRORS)
def list_snapshots(request: Request, holder: Auditor, job: JobName) -> list[dict[str, Any]]:
    return documents.snapshot_documents(web_state(request).context(), job)


@router.get("/runs", summary="Runs, newest first (as `replica runs --json`)")
def list_runs(
    request: Request, holder: Auditor, job: JobFilter = None, kind: RunKind = None, limit: Limit = 30
) -> list[dict[str, Any]]:
    return documents.run_documents(web_state(request).context(), job=job, kind=kind, limit=limit)


@router.get("/runs/{run_id}", summary="One run with the results of its checks")
def show_run(request: Request, holder: Auditor, run_id: RunId) -> dict[str, Any]:
    return documents.run_with_checks(web_state(request).context(), run_id)


@router.get("/events", summary="Events of the verification log, oldest first (as `replica audit log --json`)")
def list_events(
    request: Request,
    holder: Auditor,
    job: JobFilter = None,
    kind: Annotated[list[Kind] | None, Query(max_length=32, description="only these kinds (repeatable)")] = None,
    since: Moment = None,
    until: Moment = None,
    limit: Limit = 200,
) -> list[dict[str, Any]]:
    from replica.actions.audit import read_log

    context = web_state(request).context()
    return read_log(context, job=job, kinds=kind or (), since=since, until=until, newest=limit)


@router.get("/reports", summary="Reports (data-loss and risk), newest first (as `replica reports --json`)")
def list_reports(request: Request, holder: Auditor, job: JobFilter = None) -> list[dict[str, Any]]:
    return documents.report_documents(web_state(request).context(), job)


@router.get(
    "/reports/{report_id}",
    summary="One report: its JSON body, or its Markdown rendering with format=markdown",
    responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}},
)
def show_report(
    request: Request, holder: Auditor, report_id: ReportId, format: Literal["json", "markdown"] = "json"
) -> Any:
    body = documents.report_body(web_state(request).context(), report_id)
    if format == "markdown":
        return _markdown(body)
    return body


@router.get(
    "/reports/{report_id}/markdown",
    summary="One report rendered as Markdown (as `replica reports show ID`)",
    # A class without a media type, so that only the errors are documented as JSON.
    response_class=Response,
    responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}},
)
def show_report_markdown(request: Request, holder: Auditor, report_id: ReportId) -> PlainTextResponse:
    return _markdown(documents.report_body(web_state(request).context(), report_id))


def _markdown(body: dict[str, Any]) -> PlainTextResponse:
    from replica.report.dataloss import render_markdown

    return PlainTextResponse(render_markdown(body), media_type="text/markdown; charset=utf-8")


@router.get(
    "/audit/verify",
    summary="Whether the verification log's hash chain (and signatures, with a key) is intact; its head",
)
def verify_audit_log(request: Request, holder: Auditor) -> dict[str, Any]:
    from replica.actions.audit import verify_log

    # A tampered log is the answer to the question, not an error of the request.
    try:
        summary = verify_log(web_state(request).context())
    except LogTampered as problem:
        return {"intact": False, "problem": str(problem), "events": None, "head_seq": None, "head_hash": None}
    return {
        "intact": True,
        "problem": None,
        "events": summary.events,
        "head_seq": summary.head_seq,
        "head_hash": summary.head_hash,
    }


@router.get(
    "/audit/export",
    summary="Download the evidence pack of a period: json, html, or csv (a zip of the events and summary files)",
    responses={
        200: {
            "content": {media_type.split(";")[0]: {} for media_type in EXPORT_MEDIA_TYPES.values()},
            "description": "the evidence pack as a file (Content-Disposition: attachment)",
        },
        **error_responses(400),
    },
)
def export_evidence(
    request: Request,
    holder: Auditor,
    export_format: Annotated[Literal["json", "csv", "html"], Query(alias="format")] = "json",
    since: Moment = None,
    until: Moment = None,
) -> Response:
    return evidence_download(web_state(request).context(), holder, export_format, since, until)
