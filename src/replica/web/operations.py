"""The operator actions of the web console and API: backup, verify and restore of a job, started as background
tasks under the requester's name. The pages and the API both start work here, so they follow the same rules as the
command line: the same action code, a restore planned first and refused when its target holds data without
`force`, and every request (accepted or refused) an event of the verification log naming the token.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from replica.actions.context import Context
from replica.catalog.actor import acting_as
from replica.catalog.events import EventDraft
from replica.catalog.tokens import TokenHolder
from replica.errors import TargetNotEmpty
from replica.web.tasks import Progress, Task, TaskResult, TaskRunner

REQUEST_EVENT_KIND = "request"


def _record_request(
    context: Context, holder: TokenHolder, action: str, job: str, outcome: str, detail: str, **figures: Any
) -> None:
    draft = EventDraft(
        REQUEST_EVENT_KIND,
        outcome,
        holder.actor,
        job=job,
        figures={"action": action, **figures},
        detail=detail,
    )
    context.catalog.events.append(draft)


def _prepare(context: Context) -> None:
    """What the command line does before work: record configuration changes under the requester's name."""
    from replica.actions.configuration import record_configuration_changes

    record_configuration_changes(context)


def start_backup(context: Context, runner: TaskRunner, holder: TokenHolder, job: str) -> Task:
    """Start a backup of `job` (and its copies) in the background and return its task. Raises ConfigError or
    UsageError at once for an unknown or broken job."""
    context.job(job)

    def work(progress: Progress) -> TaskResult:
        from replica.actions.backup import run_backup

        task_context = context.with_progress(progress)
        _prepare(task_context)
        outcome = run_backup(task_context, job)
        document = {
            "run_id": outcome.run_id,
            "snapshot_id": outcome.snapshot_id,
            "taken_at": outcome.taken_at.isoformat(),
            "bytes_processed": outcome.bytes_processed,
            "bytes_added": outcome.bytes_added,
            "duration_seconds": round(outcome.duration_seconds, 3),
            "copies": [asdict(copy) for copy in outcome.copies],
        }
        return TaskResult(outcome.succeeded, document, None if outcome.succeeded else "copy_failed")

    task = runner.new_task("backup", job, holder.actor)
    _record_request(context, holder, "backup", job, "accepted", f"backup requested (task {task.id})", task=task.id)
    return runner.start(task, work)


def start_verify(
    context: Context,
    runner: TaskRunner,
    holder: TokenHolder,
    job: str,
    *,
    destination: str | None = None,
    snapshot: str | None = None,
) -> Task:
    """Start a test restore of `job` in the background and return its task. Raises ConfigError or UsageError at
    once for an unknown job or destination."""
    job_config, _ = context.job(job)
    context.destination(job_config, destination)

    def work(progress: Progress) -> TaskResult:
        from replica.actions.verify import run_verify

        task_context = context.with_progress(progress)
        _prepare(task_context)
        outcome = run_verify(task_context, job, destination, snapshot)
        document = {
            "run_id": outcome.run_id,
            "destination": outcome.destination,
            "snapshot_id": outcome.snapshot_id,
            "passed": outcome.passed,
            "checks": [asdict(check) for check in outcome.checks],
            "rto_seconds": outcome.rto_seconds,
            "report_id": outcome.report_id,
            "inconclusive_attempts": outcome.inconclusive_attempts,
        }
        return TaskResult(outcome.passed, document, outcome.failure)

    task = runner.new_task("verify", job, holder.actor)
    figures: dict[str, Any] = {"task": task.id}
    if destination:
        figures["destination"] = destination
    _record_request(context, holder, "verify", job, "accepted", f"verification requested (task {task.id})", **figures)
    return runner.start(task, work)


def plan_web_restore(
    context: Context,
    holder: TokenHolder,
    job: str,
    to: str,
    *,
    snapshot: str | None = None,
    at: datetime | None = None,
    destination: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Return what a restore would do (the confirmation step and `dry_run`), changing nothing. Raises
    ConfigError/UsageError for an unknown job, destination or snapshot, or a target the store cannot name."""
    from replica.actions.restore import plan_restore

    with acting_as(holder.actor):
        plan, _ = plan_restore(context, job, to, snapshot_id=snapshot, at=at, destination_name=destination, force=force)
    return {
        "job": plan.job,
        "destination": plan.destination,
        "snapshot_id": plan.snapshot_id,
        "target": plan.target.description,
        "target_has_data": plan.target_has_data,
        "force": plan.force,
        "refused": plan.refused,
        "plan": plan.describe(),
    }


def start_restore(
    context: Context,
    runner: TaskRunner,
    holder: TokenHolder,
    job: str,
    to: str,
    *,
    snapshot: str | None = None,
    at: datetime | None = None,
    destination: str | None = None,
    force: bool = False,
) -> Task:
    """Plan a restore and start it in the background; return its task.

    Raises TargetNotEmpty (and records the refused request) when the target holds data and `force` is not set,
    ConfigError/UsageError for bad arguments. The restore itself is the command line's: staged beside the target,
    verified, then put in place, the replaced data kept aside.
    """
    from replica.actions.restore import plan_restore, run_restore

    with acting_as(holder.actor):
        plan, expected = plan_restore(
            context, job, to, snapshot_id=snapshot, at=at, destination_name=destination, force=force
        )
    figures: dict[str, Any] = {"target": plan.target.description, "snapshot": plan.snapshot_id, "force": force}
    if plan.refused:
        detail = f"restore to {plan.target.description} refused: the target holds data and force was not given"
        _record_request(context, holder, "restore", job, "refused", detail, **figures)
        raise TargetNotEmpty(
            f"{plan.target.description} already holds data; refusing to overwrite it without force "
            "(the current data would be kept aside)"
        )

    def work(progress: Progress) -> TaskResult:
        task_context = context.with_progress(progress)
        _prepare(task_context)
        outcome = run_restore(task_context, plan, expected)
        document = {
            "run_id": outcome.run_id,
            "snapshot_id": plan.snapshot_id,
            "destination": plan.destination,
            "target": plan.target.description,
            "duration_seconds": round(outcome.duration_seconds, 3),
            "replaced": outcome.replaced,
            "checks": [asdict(check) for check in outcome.checks],
        }
        return TaskResult(True, document)

    task = runner.new_task("restore", job, holder.actor)
    detail = f"restore to {plan.target.description} requested (task {task.id})"
    _record_request(context, holder, "restore", job, "accepted", detail, task=task.id, **figures)
    return runner.start(task, work)
