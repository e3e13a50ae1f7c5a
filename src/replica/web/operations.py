"""The operator actions of the web console and API: backup, verify and restore of a job, started as background
tasks under the requester's name. The pages and the API both start work here, so they follow the same rules as the
command line: the same action code, a restore planned first and refused when its target holds data without
`force`, and every request (accepted or refused) an event of the verification log naming the token.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replica.actions.context import Context
from replica.catalog.actor import acting_as
from replica.catalog.events import EventDraft
from replica.catalog.tokens import TokenHolder
from replica.errors import ConfigError, Interrupted, NotPermitted, TargetNotEmpty, UsageError
from replica.settings import Settings
from replica.web.tasks import Progress, Task, TaskResult, TaskRunner, Work

if TYPE_CHECKING:
    from replica.actions.restore import RestorePlan

REQUEST_EVENT_KIND = "request"
# Store kinds whose restore target is a path (the others name a database on their server).
FILE_TARGET_KINDS = frozenset({"directory", "sqlite", "redis"})
WEB_RESTORE_FOLDER = "restores"


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
    """What the command line does before work: record changes of the job and policy files. Called in the request's
    thread, so that the change is recorded as the server's (`user@host`), not as the caller's: a token holder did
    not edit the files."""
    from replica.actions.configuration import record_configuration_changes

    record_configuration_changes(context)


def _start(
    context: Context,
    runner: TaskRunner,
    holder: TokenHolder,
    action: str,
    job: str,
    work: Work,
    figures: dict[str, Any] | None = None,
) -> Task:
    """Record the changes of the configuration and the accepted request (in that order, before any of the work),
    then start `work` as a task; return the task."""
    if runner.stopping.is_set():
        raise Interrupted("the web server is stopping; ask again once it is back")
    _prepare(context)
    task = runner.new_task(action, job, holder.actor)
    detail = f"{action} requested (task {task.id})"
    _record_request(context, holder, action, job, "accepted", detail, task=task.id, **(figures or {}))
    return runner.start(task, work)


def start_backup(context: Context, runner: TaskRunner, holder: TokenHolder, job: str) -> Task:
    """Start a backup of `job` (and its copies) in the background and return its task. Raises ConfigError or
    UsageError at once for an unknown or broken job."""
    context.job(job)

    def work(progress: Progress) -> TaskResult:
        from replica.actions.backup import run_backup

        outcome = run_backup(context.with_progress(progress), job)
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

    return _start(context, runner, holder, "backup", job, work)


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

        outcome = run_verify(context.with_progress(progress), job, destination, snapshot)
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

    return _start(context, runner, holder, "verify", job, work, {"destination": destination} if destination else {})


@dataclass(frozen=True)
class RestoreChoice:
    """What a restore request names: the target, and which recovery point (newest, a snapshot id, or the newest at
    or before a time) from which destination (the primary when None); `force` replaces a target holding data."""

    to: str
    snapshot: str | None = None
    at: datetime | None = None
    destination: str | None = None
    force: bool = False


def restore_root(settings: Settings) -> Path:
    """Return the folder the web may restore files into (setting web_restore_root, else STATE_DIR/restores)."""
    return (settings.web_restore_root or settings.state_dir / WEB_RESTORE_FOLDER).expanduser().absolute()


def _inside_root(path: Path, root: Path, description: str) -> None:
    """Raise NotPermitted unless `path`, symbolic links followed, lies strictly inside `root`."""
    resolved, real_root = path.resolve(), root.resolve()
    if resolved == real_root or not resolved.is_relative_to(real_root):
        raise NotPermitted(
            f"{description} is not inside {root}: the web console restores files only into the folder of setting "
            "web_restore_root (use the command line for other places)"
        )


def _file_target(settings: Settings, to: str) -> str:
    """Return the file target a web request names, made absolute inside `restore_root` when relative. Raises
    NotPermitted when it is not strictly inside the root (`..`, a symbolic link out, the root itself), UsageError
    when it names no usable path, ConfigError when the root cannot be made."""
    from replica.stores.paths import named_path

    root = restore_root(settings)
    # Made here, not at start-up: a server that never restores leaves no folder behind, and the store's checks of a
    # target (its name's length, what lies there) need the folder it goes in to exist.
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError([f"setting web_restore_root: cannot create {root}: {error.strerror}"]) from None
    path = Path(to) if Path(to).is_absolute() else root / to
    # Checked before the store plans anything: a path outside the root is not looked at (what lies there is not the
    # caller's business) and no destination is asked.
    _inside_root(named_path(str(path)), root, f"restore target {path}")
    return str(path)


def _planned(context: Context, holder: TokenHolder, job: str, choice: RestoreChoice) -> tuple[RestorePlan, Any]:
    """Plan a restore requested through the web and return the plan and the snapshot's expected data.

    A file target (directory, SQLite file, Redis RDB file) must lie strictly inside `restore_root`, a relative one
    is taken inside it: a token must not be able to replace what the server's user can write anywhere (its own
    catalog, /etc). Database targets are names on the store's own server, checked by the store as on the command
    line. Raises NotPermitted (and records the refused request) for a file target outside the root;
    ConfigError/UsageError/NotFound for bad arguments.
    """
    from replica.actions.restore import plan_restore

    job_config, _ = context.job(job)
    to = choice.to
    if job_config.store.kind in FILE_TARGET_KINDS:
        try:
            to = _file_target(context.settings, to)
        except (NotPermitted, UsageError) as refusal:  # outside the folder, or no usable path at all
            _record_request(context, holder, "restore", job, "refused", str(refusal), target=choice.to[:200])
            raise
    with acting_as(holder.actor):
        plan, expected = plan_restore(
            context,
            job,
            to,
            snapshot_id=choice.snapshot,
            at=choice.at,
            destination_name=choice.destination,
            force=choice.force,
        )
    return plan, expected


def plan_web_restore(context: Context, holder: TokenHolder, job: str, choice: RestoreChoice) -> dict[str, Any]:
    """Return what a restore would do (the confirmation step and `dry_run`), changing nothing. Raises as `_planned`."""
    plan, _ = _planned(context, holder, job, choice)
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


def start_restore(context: Context, runner: TaskRunner, holder: TokenHolder, job: str, choice: RestoreChoice) -> Task:
    """Plan a restore and start it in the background; return its task.

    Raises TargetNotEmpty (and records the refused request) when the target holds data and `force` is not set;
    otherwise raises as `_planned`. The restore itself is the command line's: staged beside the target, verified,
    then put in place, the replaced data kept aside.
    """
    from replica.actions.restore import run_restore

    plan, expected = _planned(context, holder, job, choice)
    figures: dict[str, Any] = {"target": plan.target.description, "snapshot": plan.snapshot_id, "force": choice.force}
    if plan.refused:
        detail = f"restore to {plan.target.description} refused: the target holds data and force was not given"
        _record_request(context, holder, "restore", job, "refused", detail, **figures)
        raise TargetNotEmpty(
            f"{plan.target.description} already holds data; refusing to overwrite it without force "
            "(the current data would be kept aside)"
        )

    def work(progress: Progress) -> TaskResult:
        if plan.target.path is not None:
            # Again when the task starts: it may have waited in the queue while another restore put a symbolic
            # link where this one's path goes.
            _inside_root(plan.target.path, restore_root(context.settings), plan.target.description)
        outcome = run_restore(context.with_progress(progress), plan, expected)
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

    return _start(context, runner, holder, "restore", job, work, figures)
