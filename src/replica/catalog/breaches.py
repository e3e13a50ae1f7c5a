"""Objective breaches in the catalog: opened once, cleared once, never deleted.

Several processes may judge the same job at the same moment (the daemon's watchdog, two overlapping `run-due`
calls). Opening and clearing are therefore each one conditional statement: of two racing processes exactly one
opens (or clears) a breach, and only that one raises the alert. (SQLite, the default catalog, takes its write lock
before the statement reads; PostgreSQL at READ COMMITTED could still let two inserts within the same instant both
see no open breach.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import exists, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from replica.catalog.actor import current_actor
from replica.catalog.events import EventDraft, EventLog
from replica.catalog.models import Breach, Run

# Times default to datetime.now(UTC), not records.utc_now: records.py imports this module.

BREACH_HISTORY_LIMIT = 100
# The watchdog records a run of its own when it writes a report; it is not the job attempting to protect data.
WATCHDOG_KIND = "watchdog"


class Breaches:
    """Writing and reading the `breaches` table."""

    def __init__(self, sessions: sessionmaker[Session], events: EventLog) -> None:
        self._sessions = sessions
        self._events = events

    def open_breach(
        self,
        *,
        job: str,
        objective: str,
        measured_seconds: float | None,
        objective_seconds: float,
        detail: str,
        opened_at: datetime | None = None,
    ) -> int | None:
        """Open a breach of `objective` for `job` and return its id; return None when one is already open (another
        process opened it first, and raises the alert)."""
        already_open = exists().where(Breach.job == job, Breach.objective == objective, Breach.cleared_at.is_(None))
        values = select(
            literal(job, Breach.job.type),
            literal(objective, Breach.objective.type),
            literal(opened_at or datetime.now(UTC), Breach.opened_at.type),
            literal(measured_seconds, Breach.measured_seconds.type),
            literal(objective_seconds, Breach.objective_seconds.type),
            literal(detail, Breach.detail.type),
        ).where(~already_open)
        columns = ["job", "objective", "opened_at", "measured_seconds", "objective_seconds", "detail"]
        try:
            with self._sessions.begin() as session:
                # INSERT ... SELECT ... WHERE NOT EXISTS, and a partial unique index on open breaches for the
                # writers (PostgreSQL, READ COMMITTED) that both pass the check: exactly one insert succeeds.
                # RETURNING says whether a row went in: the rowcount of an INSERT ... SELECT is -1 ("unknown")
                # through psycopg, which made every opening on PostgreSQL look lost to another process.
                breach_id: int | None = session.scalar(insert(Breach).from_select(columns, values).returning(Breach.id))
                if breach_id is None:
                    return None
                figures = {"breach_id": breach_id, "objective": objective, "objective_seconds": objective_seconds}
                if measured_seconds is not None:
                    figures["measured_seconds"] = round(measured_seconds, 3)
                draft = EventDraft("breach", "opened", current_actor(), job=job, figures=figures, detail=detail)
                self._events.append_in(session, [draft])
                return breach_id
        except IntegrityError:
            return None

    def clear(self, breach_id: int, detail: str, *, cleared_at: datetime | None = None) -> bool:
        """Record that an open breach cleared, with why; return False when it was cleared already (by another
        process, which reports it)."""
        with self._sessions.begin() as session:
            cleared = session.execute(
                update(Breach)
                .where(Breach.id == breach_id, Breach.cleared_at.is_(None))
                .values(cleared_at=cleared_at or datetime.now(UTC), cleared_detail=detail)
            )
            if getattr(cleared, "rowcount", 0) != 1:
                return False
            breach = session.get_one(Breach, breach_id)
            figures = {"breach_id": breach_id, "objective": breach.objective}
            draft = EventDraft("breach", "cleared", current_actor(), job=breach.job, figures=figures, detail=detail)
            self._events.append_in(session, [draft])
            return True

    def attach_report(self, breach_id: int, report_id: int) -> None:
        """Link the risk report written for a breach to it."""
        with self._sessions.begin() as session:
            session.get_one(Breach, breach_id).report_id = report_id

    def open_breaches(self, job: str | None = None) -> list[Breach]:
        """Return the open breaches of a job (of every job when None), oldest first."""
        query = select(Breach).where(Breach.cleared_at.is_(None)).order_by(Breach.id)
        if job:
            query = query.where(Breach.job == job)
        with self._sessions() as session:
            return list(session.scalars(query).all())

    def breaches(self, job: str | None = None, *, limit: int = BREACH_HISTORY_LIMIT) -> Sequence[Breach]:
        """Return breaches, open and cleared, newest first, optionally of one job."""
        query = select(Breach).order_by(Breach.id.desc()).limit(limit)
        if job:
            query = query.where(Breach.job == job)
        with self._sessions() as session:
            return session.scalars(query).all()

    def first_run_started(self, job: str) -> datetime | None:
        """Return when the job's first recorded run started (its own watchdog runs aside), or None: the clock of
        the RPO of a job never verified."""
        query = select(func.min(Run.started_at)).where(Run.job == job, Run.kind != WATCHDOG_KIND)
        with self._sessions() as session:
            return session.scalars(query).first()
