"""Claims on dispatched work: each scheduled slot of a job's kind of work runs once, however often its task arrives.

A distributed worker claims the slot while it holds the job's lock (replica.catalog.locks), so that a claim row
found `running` belongs to a claimant that is gone (the lock was free or taken over from a dead holder): the slot
is then run again, once. Taking a claim is an INSERT (the primary key lets exactly one of two racing claims win) or
a compare-and-swap on the attempt count, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from replica.catalog.models import Run, WorkSlot
from replica.catalog.records import first_line, utc_now

logger = logging.getLogger(__name__)

RUNNING, DONE, COVERED, GIVEN_UP, SUPERSEDED = "running", "done", "covered", "given-up", "superseded"
# A slot whose claimant died is run again once: a second death says the work itself kills its worker (memory, a
# crash in a tool), and running it a third time would only take a third worker down.
MAX_ATTEMPTS = 2

# What a claim decided.
RUN, DUPLICATE, ALREADY_COVERED, GIVE_UP = "run", "duplicate", "covered", "give-up"


@dataclass(frozen=True)
class Claim:
    """What a worker may do with a slot: `verdict` is RUN (the claim is ours; `attempt` counts from 1), DUPLICATE
    (another delivery already ran or settled it), ALREADY_COVERED (a run that started after the slot's time covers
    it) or GIVE_UP (its claimants died MAX_ATTEMPTS times); `previous` describes the earlier claim, if any."""

    verdict: str
    attempt: int
    previous: str | None = None


class WorkSlots:
    """Claiming, settling and reading the slots of dispatched work."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def claim(self, job: str, kind: str, slot: datetime, *, worker: str, covered_since: datetime | None) -> Claim:
        """Claim `slot` of `job`'s `kind` for this process; the caller holds the job's lock.

        `covered_since` is when the newest run of that kind that reached an outcome started: a run that started at
        or after the slot's time covers it (the work was done since it fell due), unless this is a second attempt
        after a dead claimant, whose run never reached one.
        """
        now = utc_now()
        covered = covered_since is not None and covered_since >= slot
        if covered:
            detail = f"covered by the {kind} that started {covered_since:%Y-%m-%d %H:%M:%S}"
            if self._insert(job, kind, slot, COVERED, 1, worker, detail):
                return Claim(ALREADY_COVERED, 1)
        elif self._insert(job, kind, slot, RUNNING, 1, worker, None):
            return Claim(RUN, 1)
        with self._sessions() as session:
            found = session.get(WorkSlot, (job, kind, slot))
        if found is None:  # cannot happen: only its claimant deletes a row, under the job lock the caller holds
            return Claim(DUPLICATE, 0, "the slot's claim vanished while it was read")
        previous = f"{found.state} by {found.worker} on {found.host} (pid {found.pid}), attempt {found.attempts}"
        if found.state != RUNNING:
            return Claim(DUPLICATE, found.attempts, previous)
        if found.attempts >= MAX_ATTEMPTS:
            self._settle(job, kind, slot, GIVEN_UP, f"its claimants died {found.attempts} times; not tried again")
            return Claim(GIVE_UP, found.attempts, previous)
        with self._sessions.begin() as session:
            result = session.execute(
                update(WorkSlot)
                .where(*_running_claim(job, kind, slot, found.attempts))
                .values(
                    attempts=found.attempts + 1,
                    worker=worker,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    claimed_at=now,
                    updated_at=now,
                )
            )
            if getattr(result, "rowcount", 0) != 1:
                return Claim(DUPLICATE, found.attempts, "another worker claimed the slot at the same moment")
        return Claim(RUN, found.attempts + 1, previous)

    def supersede(self, job: str, kind: str, slot: datetime, *, worker: str, detail: str) -> None:
        """Record that `slot` was not run because its job stayed busy until the next slot fell due (unless the slot
        was claimed meanwhile: then that claim's outcome stands)."""
        self._insert(job, kind, slot, SUPERSEDED, 0, worker, first_line(detail))

    def _insert(
        self, job: str, kind: str, slot: datetime, state: str, attempts: int, worker: str, detail: str | None
    ) -> bool:
        """Insert the row of `slot` claimed (or settled) by this process; return False when the slot has one."""
        now = utc_now()
        row = WorkSlot(
            job=job,
            kind=kind,
            slot=slot,
            state=state,
            attempts=attempts,
            worker=worker,
            host=socket.gethostname(),
            pid=os.getpid(),
            detail=detail,
            claimed_at=now,
            updated_at=now,
        )
        try:
            with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:  # the primary key: another claim (or settlement) of the slot came first
            return False
        return True

    def release(self, job: str, kind: str, slot: datetime, attempt: int) -> None:
        """Undo this process's claim `attempt` of `slot` (its work could not start: a lock it needs is held), so that
        the next delivery claims the same attempt instead of taking this process for a dead claimant."""
        mine = _running_claim(job, kind, slot, attempt)
        with self._sessions.begin() as session:
            if attempt == 1:
                session.execute(delete(WorkSlot).where(*mine))
            else:
                session.execute(update(WorkSlot).where(*mine).values(attempts=attempt - 1, updated_at=utc_now()))

    def finish(self, job: str, kind: str, slot: datetime, attempt: int, detail: str) -> None:
        """Settle this process's claim `attempt` of `slot` as `done`, naming the newest top-level run started for it
        (a claim taken over meanwhile is left to its new claimant: logged)."""
        with self._sessions.begin() as session:
            run_id = session.scalars(
                select(Run.id)
                .where(Run.job == job, Run.kind == kind, Run.slot == slot, Run.parent_run_id.is_(None))
                .order_by(Run.id.desc())
                .limit(1)
            ).first()
            result = session.execute(
                update(WorkSlot)
                .where(*_running_claim(job, kind, slot, attempt))
                .values(state=DONE, run_id=run_id, detail=first_line(detail), updated_at=utc_now())
            )
            if getattr(result, "rowcount", 0) != 1:
                logger.warning("%s of '%s', slot %s: the claim changed hands while it ran", kind, job, slot.isoformat())

    def stale_claims(self, job: str, kind: str, *, before: datetime) -> list[WorkSlot]:
        """Return the claims of `job`'s `kind` still `running` for slots before `before` (the caller holds the job's
        lock, so their claimants are gone)."""
        query = select(WorkSlot).where(
            WorkSlot.job == job, WorkSlot.kind == kind, WorkSlot.state == RUNNING, WorkSlot.slot < before
        )
        with self._sessions() as session:
            return list(session.scalars(query.order_by(WorkSlot.slot)).all())

    def supersede_claim(self, job: str, kind: str, slot: datetime, detail: str) -> None:
        """Settle a dead claimant's claim of `slot` as `superseded` (a later slot of the same work runs instead)."""
        self._settle(job, kind, slot, SUPERSEDED, detail)

    def _settle(self, job: str, kind: str, slot: datetime, state: str, detail: str) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(WorkSlot)
                .where(WorkSlot.job == job, WorkSlot.kind == kind, WorkSlot.slot == slot)
                .values(state=state, detail=detail, updated_at=utc_now())
            )

    def get(self, job: str, kind: str, slot: datetime) -> WorkSlot | None:
        """Return the claim on `slot` of `job`'s `kind`, or None when no worker claimed or settled it yet."""
        with self._sessions() as session:
            return session.get(WorkSlot, (job, kind, slot))

    def slots(self, job: str | None = None) -> list[WorkSlot]:
        """Return the claimed slots (of `job`, or of every job), oldest first."""
        query = select(WorkSlot).order_by(WorkSlot.slot, WorkSlot.job, WorkSlot.kind)
        if job is not None:
            query = query.where(WorkSlot.job == job)
        with self._sessions() as session:
            return list(session.scalars(query).all())


def _running_claim(job: str, kind: str, slot: datetime, attempt: int) -> tuple[ColumnElement[bool], ...]:
    """Return the conditions that match claim `attempt` of `slot` while it is still `running`."""
    return (
        WorkSlot.job == job,
        WorkSlot.kind == kind,
        WorkSlot.slot == slot,
        WorkSlot.state == RUNNING,
        WorkSlot.attempts == attempt,
    )
