"""The per-job run lock in the catalog: at most one backup, verify or prune of a job at a time, across threads,
processes and hosts that share the catalog.

A lock is a row keyed by the job. Taking it is an INSERT (the primary key makes exactly one of two racing
inserts win, on SQLite and PostgreSQL alike). A row whose holder died is taken over with a compare-and-swap on its
random token, so a crashed holder never blocks the job for good and two processes that both see it dead cannot
both take it.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from replica.catalog.models import JobLock
from replica.catalog.records import utc_now
from replica.errors import JobBusy

logger = logging.getLogger(__name__)

# A holder on another host refreshes its heartbeat every HEARTBEAT_SECONDS; one silent for STALE_AFTER is dead.
HEARTBEAT_SECONDS = 60.0
STALE_AFTER = timedelta(minutes=10)
ACQUIRE_ATTEMPTS = 5

# Tokens of the locks this process holds. A row naming our own pid but a token we do not hold was left by an
# earlier process that had the same pid (a container restarted as pid 1, pid reuse): it is dead, not us.
_held_tokens: set[str] = set()
_held_tokens_lock = threading.Lock()


def _hold(token: str) -> None:
    with _held_tokens_lock:
        _held_tokens.add(token)


def _holder_text(row: JobLock) -> str:
    run = f"run {row.run_id}" if row.run_id else "a run"
    return f"{row.kind} {run} of process {row.pid} on {row.host} since {row.acquired_at.isoformat(timespec='seconds')}"


class JobLocks:
    """Taking, refreshing and releasing job locks."""

    def __init__(self, sessions: sessionmaker[Session], stale_after: timedelta = STALE_AFTER) -> None:
        self._sessions = sessions
        self._stale_after = stale_after

    def acquire(self, job: str, kind: str, *, host: str, pid: int, is_alive: Callable[[int], bool]) -> str:
        """Take the lock of `job` for a run of `kind` and return its token.

        `is_alive(pid)` tells whether a holder on this same host still runs. Raises JobBusy naming the holder
        when a live run holds the job.
        """
        for _ in range(ACQUIRE_ATTEMPTS):
            token = secrets.token_hex(16)
            now = utc_now()
            try:
                with self._sessions.begin() as session:
                    session.add(
                        JobLock(job=job, token=token, kind=kind, host=host, pid=pid, acquired_at=now, heartbeat_at=now)
                    )
                _hold(token)
                return token
            except IntegrityError:
                pass
            with self._sessions() as session:
                row = session.get(JobLock, job)
            if row is None:
                continue  # released between our insert and our read: try again
            if self._alive(row, host, is_alive, now):
                raise JobBusy(f"job '{job}' is busy: {_holder_text(row)}")
            if self._take_over(row, token, kind, host, pid, now):
                _hold(token)
                logger.warning("job '%s': took over the lock of a dead holder (%s)", job, _holder_text(row))
                return token
        raise JobBusy(f"job '{job}' is busy: its lock changed hands {ACQUIRE_ATTEMPTS} times while being taken")

    def _alive(self, row: JobLock, host: str, is_alive: Callable[[int], bool], now: datetime) -> bool:
        if row.host == host:
            if row.pid == os.getpid():
                with _held_tokens_lock:
                    return row.token in _held_tokens
            return is_alive(row.pid)
        return now - row.heartbeat_at < self._stale_after

    def _take_over(self, row: JobLock, token: str, kind: str, host: str, pid: int, now: datetime) -> bool:
        with self._sessions.begin() as session:
            result = session.execute(
                update(JobLock)
                .where(JobLock.job == row.job, JobLock.token == row.token)
                .values(token=token, kind=kind, host=host, pid=pid, run_id=None, acquired_at=now, heartbeat_at=now)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def attach_run(self, job: str, token: str, run_id: int) -> None:
        """Name the run that holds the lock (shown to whoever finds the job busy)."""
        with self._sessions.begin() as session:
            session.execute(update(JobLock).where(JobLock.job == job, JobLock.token == token).values(run_id=run_id))

    def heartbeat(self, job: str, token: str) -> bool:
        """Refresh the holder's heartbeat; return False when the lock is no longer ours."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(JobLock).where(JobLock.job == job, JobLock.token == token).values(heartbeat_at=utc_now())
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def release(self, job: str, token: str) -> None:
        """Release the lock if it is still ours (a lock taken over from us is left to its new holder).

        The token is forgotten first: should the catalog refuse the delete, the row left behind is one this process
        no longer claims, and the next run of the job takes it over instead of finding the job busy for good.
        Raises SQLAlchemyError when the catalog cannot be written.
        """
        with _held_tokens_lock:
            _held_tokens.discard(token)
        with self._sessions.begin() as session:
            session.execute(delete(JobLock).where(JobLock.job == job, JobLock.token == token))

    def holder(self, job: str) -> JobLock | None:
        """Return the current lock row of a job, or None."""
        with self._sessions() as session:
            return session.get(JobLock, job)
