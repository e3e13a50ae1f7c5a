"""The client notices of a recovery: the facts of each client's stores gathered from the recovery plan (and what
the restores measured), rendered by `replica.report.notice`, written under `REPORTS_DIR/notices/PLAN-STAMP/`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replica.actions.context import Context
from replica.actions.restore import RestoreOutcome
from replica.report.dataloss import RecoveryPoint
from replica.report.notice import NoticeFacts, NoticeStore, build_notice, client_slug, render_notice_markdown

if TYPE_CHECKING:
    from replica.actions.recover import RecoveryPlan, RecoveryStep

NOTICES_FOLDER = "notices"


def plan_clients(recovery: RecoveryPlan) -> list[str]:
    """Return every client named by a job of the recovery, in the order the jobs first name them."""
    clients: list[str] = []
    for step in recovery.steps:
        clients += [client for client in step.choice.point.job.clients if client not in clients]
    return clients


def notice_documents(
    recovery: RecoveryPlan,
    created_at: datetime,
    restores: Sequence[RestoreOutcome] = (),
    total_seconds: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Return each client's notice (`build_notice` documents) by client: planned ones when `restores` is empty (a
    dry run), else what the restores measured."""
    measured = {outcome.plan.job: outcome for outcome in restores}
    completed = bool(restores)
    notices = {}
    for client in plan_clients(recovery):
        stores = [
            _notice_store(number, step, measured.get(step.restore.job))
            for number, step in enumerate(recovery.steps, start=1)
            if client in step.choice.point.job.clients
        ]
        facts = NoticeFacts(
            client=client,
            plan=recovery.plan.name,
            service=recovery.plan.description or f"service '{recovery.plan.name}'",
            stores=stores,
            plan_stores=len(recovery.steps),
            incident_at=recovery.incident_at,
            created_at=created_at,
            completed=completed,
            total_seconds=total_seconds if completed else None,
            forecast_total_seconds=recovery.forecast_seconds,
            rto_objective_seconds=recovery.plan.rto.total_seconds(),
        )
        notices[client] = build_notice(facts)
    return notices


def _notice_store(number: int, step: RecoveryStep, outcome: RestoreOutcome | None) -> NoticeStore:
    point, chosen = step.choice.point, step.choice
    return NoticeStore(
        job=point.job.name,
        kind=point.job.store.kind,
        description=point.job.description,
        order=number,
        point=RecoveryPoint(
            point.destination.name,
            point.expected.snapshot_id,
            point.taken_at,
            point.verified,
            chosen.rto_seconds,
            chosen.canary_at,
        ),
        verified_at=chosen.verified_at,
        forecast_seconds=step.forecast_seconds,
        restored_seconds=outcome.duration_seconds if outcome else None,
        checks=tuple(check.name for check in outcome.checks if check.passed) if outcome else (),
    )


def notice_folder(context: Context, plan: str, created_at: datetime) -> Path:
    """Return the folder the notices of a recovery finished at `created_at` go to (not created yet): a new one,
    never one holding an earlier recovery's notices."""
    base = context.settings.reports_path / NOTICES_FOLDER / f"{plan}-{created_at.strftime('%Y%m%dT%H%M%SZ')}"
    folder, number = base, 1
    while folder.exists():
        number += 1
        folder = base.with_name(f"{base.name}-{number}")
    return folder


def write_notices(
    context: Context,
    recovery: RecoveryPlan,
    folder: Path,
    created_at: datetime,
    restores: Sequence[RestoreOutcome],
    total_seconds: float,
) -> list[Path]:
    """Write each client's notice as Markdown and JSON into `folder`; return the Markdown paths.

    Raises OSError when a file cannot be written."""
    folder.mkdir(parents=True)
    paths, used = [], set()
    for client, body in notice_documents(recovery, created_at, restores, total_seconds).items():
        slug = client_slug(client)
        stem, number = slug, 1
        while stem in used:  # "ACME" and "Acme" are two clients with one slug
            number += 1
            stem = f"{slug}-{number}"
        used.add(stem)
        markdown = folder / f"{stem}.md"
        markdown.write_text(render_notice_markdown(body), encoding="utf-8")
        (folder / f"{stem}.json").write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        paths.append(markdown)
    context.progress(f"{len(paths)} client notice draft(s) written to {folder}")
    return paths
