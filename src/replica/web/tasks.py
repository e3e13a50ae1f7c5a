"""Background work of the web server: an action (backup, verify, restore) runs in a worker thread as a task
whose state and progress lines the pages and the API show while it runs.

Tasks live in the server's memory; what they did is in the catalog (their runs) and the verification log, so a
server restart loses only the task list, never a record: a run cut short by the restart is marked `interrupted`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from replica.catalog.actor import acting_as
from replica.errors import Interrupted, ReplicaError, failure_state
from replica.urls import redact_text

logger = logging.getLogger(__name__)

PROGRESS_LINES_KEPT = 200
TASKS_KEPT = 500
TASK_STATES = ("queued", "running", "succeeded", "failed")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TaskResult:
    """What an action returned: whether it achieved its purpose (a verification passed) and its figures."""

    succeeded: bool
    document: dict[str, Any]
    failure: str | None = None


Work = Callable[[Progress], TaskResult]


@dataclass
class Task:
    """One action started through the web: who asked, its state, progress lines and outcome."""

    id: int
    kind: str
    job: str
    actor: str
    created_at: datetime
    state: str = "queued"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=PROGRESS_LINES_KEPT))
    result: dict[str, Any] | None = None
    error: str | None = None
    failure: str | None = None

    @property
    def finished(self) -> bool:
        """Return True once the task succeeded or failed."""
        return self.state in ("succeeded", "failed")

    def document(self) -> dict[str, Any]:
        """Return the task as the API shows it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "job": self.job,
            "actor": self.actor,
            "state": self.state,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "progress": list(self.progress),
            "result": self.result,
            "error": self.error,
            "failure": self.failure,
        }


class TaskRunner:
    """Runs tasks on a fixed number of worker threads, each under its requester's actor; keeps the newest
    TASKS_KEPT tasks for reading."""

    def __init__(self, workers: int) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="web-task")
        self._tasks: collections.OrderedDict[int, Task] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.stopping = threading.Event()  # set once shutdown began: no queued task starts after it

    def new_task(self, kind: str, job: str, actor: str) -> Task:
        """Return a task not yet started (its id can be recorded before any of its work happens)."""
        return Task(id=next(self._ids), kind=kind, job=job, actor=actor, created_at=datetime.now(UTC))

    def start(self, task: Task, work: Work) -> Task:
        """Queue `work` as `task` and return the task at once. Raises Interrupted once `shutdown` began."""
        with self._lock:
            if self.stopping.is_set():
                raise Interrupted("the web server is stopping; ask again once it is back")
            self._tasks[task.id] = task
            while len(self._tasks) > TASKS_KEPT:
                oldest = next(iter(self._tasks))
                if not self._tasks[oldest].finished:
                    break
                del self._tasks[oldest]
            # Under the lock: `shutdown` either sees the task queued (and cancels or runs it) or refuses it here.
            self._pool.submit(self._run, task, work)
        return task

    def _run(self, task: Task, work: Work) -> None:
        if self.stopping.is_set():  # dequeued just as the server began to stop
            self._never_started(task)
            return
        task.started_at = datetime.now(UTC)
        task.state = "running"
        state, error_text, failure, result = "failed", None, None, None
        try:
            with acting_as(task.actor):
                outcome = work(lambda line: task.progress.append(redact_text(line)))
            result, failure = outcome.document, outcome.failure
            state = "succeeded" if outcome.succeeded else "failed"
        except ReplicaError as error:
            error_text, failure = redact_text(str(error)), failure_state(error)
        except Exception as error:  # a bug must end the task visibly, not leave it `running` for ever
            logger.exception("task %d (%s of '%s') failed", task.id, task.kind, task.job)
            error_text, failure = redact_text(f"internal error: {error}"), "failed"
        finally:
            # The state last, under the lock: a reader that sees the task finished sees all of its outcome.
            with self._lock:
                task.result, task.error, task.failure = result, error_text, failure
                task.finished_at = datetime.now(UTC)
                task.state = state

    def get(self, task_id: int) -> Task | None:
        """Return a task by id, or None when unknown (or forgotten)."""
        with self._lock:
            return self._tasks.get(task_id)

    def recent(self, job: str | None = None, limit: int = 50) -> list[Task]:
        """Return the newest tasks (of one job when given), newest first."""
        with self._lock:
            tasks = [task for task in reversed(self._tasks.values()) if job is None or task.job == job]
        return tasks[:limit]

    def running_count(self) -> int:
        """Return how many tasks are queued or running."""
        with self._lock:
            return sum(1 for task in self._tasks.values() if not task.finished)

    def shutdown(self) -> None:
        """Stop taking tasks and wait for the running ones (the caller interrupts their processes first)."""
        with self._lock:
            self.stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            queued = [task for task in self._tasks.values() if not task.finished]
        for task in queued:
            self._never_started(task)

    def _never_started(self, task: Task) -> None:
        with self._lock:
            task.error = "the server stopped before the task started"
            task.failure, task.finished_at, task.state = "interrupted", datetime.now(UTC), "failed"
