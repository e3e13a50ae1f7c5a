"""The catalog's side of startup reconciliation (see `replica.actions.reconcile`): adopting snapshots a crash left
unrecorded, marking snapshots an interrupted prune removed, each with its verification-log event in the same
transaction (the catalog never holds a reconciled row without the event that says why)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from replica.catalog.actor import current_actor
from replica.catalog.events import EventDraft, EventLog
from replica.catalog.models import Run, Snapshot

# Times default to datetime.now(UTC), not records.utc_now: records.py imports this module.

RECONCILE_KIND = "reconcile"


class Reconciliation:
    """Writing what reconciliation decided, and reading the runs it decides from."""

    def __init__(self, sessions: sessionmaker[Session], events: EventLog) -> None:
        self._sessions = sessions
        self._events = events

    def runs_of_job(self, job: str, statuses: Sequence[str], kinds: Sequence[str]) -> Sequence[Run]:
        """Return the runs of a job with one of `statuses` and `kinds` (an indexed, small query)."""
        query = select(Run).where(Run.job == job, Run.status.in_(statuses), Run.kind.in_(kinds))
        with self._sessions() as session:
            return session.scalars(query).all()

    def runs_by_id(self, run_ids: Sequence[int]) -> dict[int, Run]:
        """Return the runs with these ids, by id (ids the catalog does not know are left out)."""
        if not run_ids:
            return {}
        with self._sessions() as session:
            return {run.id: run for run in session.scalars(select(Run).where(Run.id.in_(run_ids)))}

    def adopt_snapshot(
        self,
        *,
        job: str,
        destination: str,
        snapshot_id: str,
        original_id: str,
        backup_run_id: int,
        taken_at: datetime,
        stored_name: str,
        fingerprint: dict[str, Any],
        usable: bool,
        unusable_reason: str | None,
        outcome: str,
        figures: dict[str, Any],
        detail: str,
        tagged_run_id: int,
    ) -> bool:
        """Record a snapshot found in a repository and its `reconcile` event; return False (and record nothing)
        when the catalog knows it already (another process reconciled or recorded it first)."""
        now = datetime.now(UTC)
        try:
            with self._sessions.begin() as session:
                known = session.scalars(
                    select(Snapshot.id).where(
                        Snapshot.job == job, Snapshot.destination == destination, Snapshot.snapshot_id == snapshot_id
                    )
                ).first()
                if known is not None:
                    return False
                session.add(
                    Snapshot(
                        job=job,
                        destination=destination,
                        snapshot_id=snapshot_id,
                        original_id=original_id,
                        backup_run_id=backup_run_id,
                        taken_at=taken_at,
                        bytes_processed=0,
                        bytes_added=0,
                        stored_name=stored_name,
                        fingerprint=fingerprint,
                        usable=usable,
                        unusable_reason=unusable_reason,
                        created_at=now,
                    )
                )
                session.flush()
                self._events.append_in(
                    session,
                    [self._draft(job, destination, snapshot_id, tagged_run_id, outcome, figures, detail)],
                    recorded_at=now,
                )
        except IntegrityError:
            return False  # recorded by another process between our look and our insert
        return True

    def mark_pruned(
        self, job: str, destination: str, rows: Sequence[tuple[int, str]], prune_run_id: int, detail: str
    ) -> int:
        """Mark these (row id, snapshot id) rows pruned by `prune_run_id`, each with a `reconcile` event; return how
        many were still unmarked."""
        now = datetime.now(UTC)
        with self._sessions.begin() as session:
            drafts = []
            for row_id, snapshot_id in rows:
                snapshot = session.get_one(Snapshot, row_id)
                if snapshot.pruned_at is not None:
                    continue
                snapshot.pruned_at, snapshot.prune_run_id = now, prune_run_id
                drafts.append(
                    self._draft(
                        job, destination, snapshot_id, prune_run_id, "pruned", {"action": "mark-pruned"}, detail
                    )
                )
            self._events.append_in(session, drafts, recorded_at=now)
            return len(drafts)

    def record_failure(self, job: str, destination: str | None, run_id: int | None, detail: str) -> None:
        """Record that a destination could not be reconciled (its snapshots stay as they are until a later try)."""
        self._events.append(self._draft(job, destination, None, run_id, "failed", {}, detail))

    @staticmethod
    def _draft(
        job: str,
        destination: str | None,
        snapshot_id: str | None,
        run_id: int | None,
        outcome: str,
        figures: dict[str, Any],
        detail: str,
    ) -> EventDraft:
        return EventDraft(
            kind=RECONCILE_KIND,
            outcome=outcome,
            actor=current_actor(),
            job=job,
            destination=destination,
            snapshot=snapshot_id,
            run_id=run_id,
            figures=figures,
            detail=detail,
        )
