"""One run per job at a time: the catalog lock held around a backup, verify or prune."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, TypeVar

from replica.actions.context import Context
from replica.catalog.locks import HEARTBEAT_SECONDS, JobLocks
from replica.processes import process_alive

logger = logging.getLogger(__name__)

Parameters = ParamSpec("Parameters")
Result = TypeVar("Result")

# Jobs held by the current thread, with their lock and token: an action that calls another (verify of every
# destination) holds once, and the first run recorded under a lock is named in it.
_held = threading.local()


@dataclass
class _Hold:
    locks: JobLocks
    token: str
    run_named: bool = False


def _held_jobs() -> dict[str, _Hold]:
    if not hasattr(_held, "jobs"):
        _held.jobs = {}
    jobs: dict[str, _Hold] = _held.jobs
    return jobs


def name_run_in_lock(job: str, run_id: int) -> None:
    """Record `run_id` as the holder's run when this thread holds `job` and has named no run yet."""
    hold = _held_jobs().get(job)
    if hold is None or hold.run_named:
        return
    hold.run_named = True
    with contextlib.suppress(Exception):  # a name is a courtesy to whoever finds the job busy, never a failure
        hold.locks.attach_run(job, hold.token, run_id)


@contextlib.contextmanager
def hold_job(context: Context, job: str, kind: str) -> Iterator[None]:
    """Hold the catalog lock of `job` while the block runs a `kind` run; re-entrant within one thread.

    Raises JobBusy naming the live run that holds the job. A lock left by a dead process is taken over.
    """
    held = _held_jobs()
    if job in held:
        yield
        return
    locks = JobLocks(context.catalog.sessions)
    token = locks.acquire(job, kind, host=socket.gethostname(), pid=os.getpid(), is_alive=process_alive)
    held[job] = _Hold(locks, token)
    stop = threading.Event()
    beating = threading.Thread(target=_beat, args=(locks, job, token, stop), name=f"lock-heartbeat-{job}", daemon=True)
    beating.start()
    try:
        yield
    finally:
        stop.set()
        del held[job]
        locks.release(job, token)


def _beat(locks: JobLocks, job: str, token: str, stop: threading.Event) -> None:
    # Only other hosts rely on the heartbeat (this host checks the pid); a failed refresh is logged, not fatal.
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            if not locks.heartbeat(job, token):
                logger.warning("job '%s': the run lock was taken over by another process", job)
                return
        except Exception as error:  # the catalog may blip; the next beat retries
            logger.warning("job '%s': could not refresh the run lock: %s", job, error)


def holding_job(
    kind: str,
) -> Callable[
    [Callable[Concatenate[Context, str, Parameters], Result]], Callable[Concatenate[Context, str, Parameters], Result]
]:
    """Decorate an action `(context, job_name, ...)` so that it runs holding the job's lock (see `hold_job`)."""

    def decorate(
        action: Callable[Concatenate[Context, str, Parameters], Result],
    ) -> Callable[Concatenate[Context, str, Parameters], Result]:
        @functools.wraps(action)
        def holding(context: Context, job_name: str, /, *args: Parameters.args, **kwargs: Parameters.kwargs) -> Result:
            with hold_job(context, job_name, kind):
                return action(context, job_name, *args, **kwargs)

        return holding

    return decorate
