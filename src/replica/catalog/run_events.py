"""The verification-log event of a run's outcome: what was done, by whom, with which result and figures.

Built inside the transaction that records the outcome, so the event and the run's status never disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from replica.catalog.events import EventDraft
from replica.catalog.latest import DRILL_RESTORE_KIND, WAL_VERIFY_KIND
from replica.catalog.models import CheckResult, Run, Snapshot


def run_event(session: Session, run: Run, finished_at: datetime) -> EventDraft:
    """Return the event of a run that just reached `run.status`.

    Figures: the run's own (bytes, RTO, kept/removed...), its duration, each check of a verification or restore
    with its result, and for a verification the recovery point it proved and the RPO that gave at that moment.
    """
    figures: dict[str, Any] = {
        key: value for key, value in run.details.items() if isinstance(value, str | int | float | bool | list)
    }
    figures["started_at"] = run.started_at.isoformat()
    figures["duration_seconds"] = round((finished_at - run.started_at).total_seconds(), 3)
    if run.failure is not None:
        figures["failure"] = run.failure
    if run.parent_run_id is not None:
        figures["parent_run_id"] = run.parent_run_id
    if run.kind in ("verify", "restore", DRILL_RESTORE_KIND, WAL_VERIFY_KIND):
        checks = session.scalars(select(CheckResult).where(CheckResult.run_id == run.id).order_by(CheckResult.id))
        figures["checks"] = [
            {"name": check.name, "passed": check.passed, "critical": check.critical, "detail": check.detail}
            for check in checks
        ]
    if run.kind == "verify" and run.snapshot_id and run.destination:
        snapshot = session.scalars(
            select(Snapshot).where(
                Snapshot.job == run.job,
                Snapshot.destination == run.destination,
                Snapshot.snapshot_id == run.snapshot_id,
            )
        ).first()
        if snapshot is not None:
            canary = run.details.get("canary_at")
            recovery_point = datetime.fromisoformat(canary) if isinstance(canary, str) else snapshot.taken_at
            figures["recovery_point"] = recovery_point.isoformat()
            figures["rpo_seconds"] = round((finished_at - recovery_point).total_seconds(), 3)
            figures["original_snapshot"] = snapshot.original_id
    return EventDraft(
        kind=run.kind,
        outcome=run.status,
        actor=run.actor,
        job=run.job,
        destination=run.destination,
        snapshot=run.snapshot_id,
        run_id=run.id,
        figures=figures,
        detail=run.error or "",
    )
