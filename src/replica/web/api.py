"""The JSON API (`/api/...`), described by the app's OpenAPI document (`/openapi.json`, browsable at `/docs`).

Reading routes take any valid token (`Auditor`); the actions take an operator's (`Operator`). Actions answer 202
with the task that runs them in the background: poll `GET /api/tasks/{id}` for its progress and outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from replica.errors import NotFound
from replica.web import operations
from replica.web.auth import Auditor, Operator
from replica.web.moments import in_utc
from replica.web.state import web_state

# Job and destination names as the job files allow them; snapshot ids are restic's hex ids (a prefix will do).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
SNAPSHOT_PATTERN = r"^[0-9a-f]{6,64}$"
# Catalog ids are 32-bit on PostgreSQL: a larger number is no id, and asking the database for it would fail.
MAX_RECORD_ID = 2**31 - 1
JobName = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN, description="a job's name")]
JobFilter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=NAME_PATTERN, description="only this job")]


class ErrorDetail(BaseModel):
    """What every error answers: one message a person can act on."""

    model_config = ConfigDict(extra="forbid")
    detail: str = Field(description="what was wrong", examples=["no job named 'billing' (known jobs: uploads)"])


ERROR_MEANINGS = {
    400: "the request asks for something that cannot be done (the message says why)",
    401: "no token, or an unknown or revoked one",
    403: "the token's role may not do this (actions need role 'operator')",
    404: "no such job, destination, snapshot, run, report or task",
    409: "refused: the target holds data (no force), or the job's file is invalid",
    413: "request body over 64 KiB",
    422: "a malformed parameter or body; the message names the field and the problem",
    502: "a destination failed while the request waited on it",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI `responses` of the given error statuses, each answering an ErrorDetail."""
    return {status: {"model": ErrorDetail, "description": ERROR_MEANINGS[status]} for status in statuses}


router = APIRouter(prefix="/api", tags=["api"], responses=error_responses(401, 404, 422))
ACTION_ERRORS = error_responses(400, 403, 409, 413, 502)


class VerifyRequest(BaseModel):
    """Which recovery point to test-restore (the newest in the primary destination when empty)."""

    model_config = ConfigDict(extra="forbid")
    destination: str | None = Field(default=None, min_length=1, max_length=64, pattern=NAME_PATTERN)
    snapshot: str | None = Field(default=None, pattern=SNAPSHOT_PATTERN)


class RestoreRequest(BaseModel):
    """Where to restore and from what. `dry_run` only plans; `force` replaces a target holding data (kept aside)."""

    model_config = ConfigDict(extra="forbid")
    to: str = Field(min_length=1, max_length=1024, description="directory, SQLite file or database name")
    snapshot: str | None = Field(default=None, pattern=SNAPSHOT_PATTERN)
    at: datetime | None = Field(default=None, description="newest snapshot taken at or before this time")
    destination: str | None = Field(default=None, min_length=1, max_length=64, pattern=NAME_PATTERN)
    force: bool = False
    dry_run: bool = False

    @field_validator("at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        return in_utc(value)


def _accepted(task_document: dict[str, Any]) -> JSONResponse:
    return JSONResponse(task_document, status_code=202, headers={"Location": f"/api/tasks/{task_document['id']}"})


@router.get("/whoami", summary="The name and role of the token used")
def whoami(holder: Auditor) -> dict[str, str]:
    return {"name": holder.name, "role": holder.role}


@router.post("/jobs/{job}/backup", status_code=202, summary="Start a backup (operator)", responses=ACTION_ERRORS)
def trigger_backup(request: Request, job: JobName, holder: Operator) -> JSONResponse:
    state = web_state(request)
    task = operations.start_backup(state.context(), state.tasks, holder, job)
    return _accepted(task.document())


@router.post("/jobs/{job}/verify", status_code=202, summary="Start a test restore (operator)", responses=ACTION_ERRORS)
def trigger_verify(request: Request, job: JobName, holder: Operator, body: VerifyRequest | None = None) -> JSONResponse:
    state = web_state(request)
    body = body or VerifyRequest()
    task = operations.start_verify(
        state.context(), state.tasks, holder, job, destination=body.destination, snapshot=body.snapshot
    )
    return _accepted(task.document())


@router.post(
    "/jobs/{job}/restore",
    status_code=202,
    summary="Restore to a named target (operator); 409 when the target holds data and force is not set; file "
    "targets only under the web restore folder (relative ones inside it)",
    responses={200: {"description": "with `dry_run`: the plan, nothing changed"}, **ACTION_ERRORS},
)
def trigger_restore(request: Request, job: JobName, holder: Operator, body: RestoreRequest) -> JSONResponse:
    state = web_state(request)
    choice = operations.RestoreChoice(body.to, body.snapshot, body.at, body.destination, body.force)
    if body.dry_run:
        return JSONResponse(operations.plan_web_restore(state.context(), holder, job, choice))
    task = operations.start_restore(state.context(), state.tasks, holder, job, choice)
    return _accepted(task.document())


@router.get("/tasks", summary="Actions started through the web, newest first")
def list_tasks(
    request: Request,
    holder: Auditor,
    job: JobFilter = None,
) -> list[dict[str, Any]]:
    return [task.document() for task in web_state(request).tasks.recent(job)]


@router.get("/tasks/{task_id}", summary="One action: state, progress lines, outcome")
def show_task(
    request: Request, holder: Auditor, task_id: Annotated[int, Path(ge=1, le=MAX_RECORD_ID)]
) -> dict[str, Any]:
    task = web_state(request).tasks.get(task_id)
    if task is None:
        raise NotFound(f"no task {task_id} (tasks are kept in memory until the server restarts)")
    return task.document()
