"""`GET /api/jobs/{job}/history`: a job's measured RTO and RPO over time against its objectives (the series the
job page charts), read from the catalog."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from replica.actions.context import Context
from replica.web.api import JobName, error_responses
from replica.web.auth import Auditor
from replica.web.history import JobHistory, job_history
from replica.web.state import web_state

router = APIRouter(prefix="/api", tags=["api"], responses=error_responses(401, 404, 409, 422))

# The newest runs of each kind a history covers: months of daily runs, a few hundred rows to read.
HISTORY_RUNS = 400


def read_job_history(context: Context, job: str) -> JobHistory:
    """Return a job's history from its newest HISTORY_RUNS backups and verifications. Raises ConfigError or
    UsageError for a broken or unknown job."""
    _, policy = context.job(job)
    catalog = context.catalog
    runs = [
        *catalog.runs(job=job, kind="backup", limit=HISTORY_RUNS),
        *catalog.runs(job=job, kind="verify", limit=HISTORY_RUNS),
    ]
    snapshots = catalog.snapshots(job, include_pruned=True)
    return job_history(
        job,
        runs,
        snapshots,
        rto_objective_seconds=policy.rto.total_seconds(),
        rpo_objective_seconds=policy.rpo.total_seconds(),
    )


@router.get("/jobs/{job}/history", summary="Measured RTO per verification and RPO over time, with the objectives")
def show_job_history(request: Request, job: JobName, holder: Auditor) -> dict[str, Any]:
    return read_job_history(web_state(request).context(), job).document()
