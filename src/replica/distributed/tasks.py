"""The task workers run, and the worker process's own context (built once, re-read when job files change)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from replica.actions.context import Context
from replica.actions.dispatched import BUSY, run_dispatched
from replica.daemon.files import ConfigurationWatcher
from replica.distributed.app import TASK_NAME
from replica.urls import redact_text

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)

# A job held by another run is tried again this much later (until the next slot of the same work covers it).
BUSY_RETRY_SECONDS = 5.0
CATALOG_RETRY_SECONDS = 15.0


class WorkerState:
    """The worker's context, shared by its threads: re-read when a job or policy file changed (like a daemon's
    reload), so that a worker started before a job was added runs it; a running task keeps the context it began
    with."""

    def __init__(self, context: Context, worker: str) -> None:
        settings = context.settings
        self.worker = worker  # the name runs record as their actor (`worker:NAME`)
        self._context = context
        self._watcher = ConfigurationWatcher(settings.jobs_dir, settings.policies_dir, settings.drills_dir)
        self._lock = threading.Lock()

    def context(self) -> Context:
        """Return the current context, re-reading the configuration first when its files changed."""
        with self._lock:
            if self._watcher.changed():
                logger.info("jobs or policies changed: re-reading them")
                self._context = self._context.reloaded()
            return self._context


def register_tasks(app: Celery, state: WorkerState) -> None:
    """Register the run task on `app`, running its work with `state`'s context."""

    @app.task(name=TASK_NAME, bind=True, max_retries=None)  # type: ignore[untyped-decorator]
    def run_slot(task: Any, job: str, kind: str, slot: str) -> str:
        try:
            outcome = run_dispatched(state.context(), job, kind, datetime.fromisoformat(slot), worker=state.worker)
        except (SQLAlchemyError, OSError) as error:
            # The catalog (or the disk) failed outside the work's own recording: a task that failed would be
            # acknowledged and its slot lost, so it is tried again instead.
            logger.error("%s of '%s' for slot %s: %s; trying again", kind, job, slot, redact_text(str(error)))
            raise task.retry(countdown=CATALOG_RETRY_SECONDS) from None
        logger.info("%s of '%s' for slot %s: %s (%s)", kind, job, slot, outcome.verdict, outcome.detail)
        if outcome.verdict == BUSY:
            raise task.retry(countdown=BUSY_RETRY_SECONDS)
        return outcome.verdict
