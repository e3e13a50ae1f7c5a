"""The last measured replication lag of each physical job's WAL archive, per destination: written by each
measurement (`replica wal-status`, the daemon's tick), read by `status`, the metrics and the watchdog; and the
source positions of the recent measurements, from which the lag is computed (see `replica.wal.lag`).

Not a run: measured every minute, it would bury the run history and bump the job's status revision each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from replica.catalog.facts import LagRecord
from replica.catalog.models import WalLag, WalPositionSample

# How many source positions are kept per job: at one measurement a minute, the last ~16 hours. A lag older than
# the oldest is reported as at least that old.
POSITIONS_KEPT = 1000


class WalLags:
    """Writing and reading the `wal_lags` table."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def record(self, records: Sequence[LagRecord]) -> None:
        """Replace the recorded lag of each record's job and destination."""
        with self._sessions.begin() as session:
            for record in records:
                session.execute(
                    delete(WalLag).where(WalLag.job == record.job, WalLag.destination == record.destination)
                )
                session.add(
                    WalLag(
                        job=record.job,
                        destination=record.destination,
                        measured_at=record.measured_at,
                        lag_seconds=record.lag_seconds,
                        newest_segment=record.newest_segment,
                        newest_stored_at=record.newest_stored_at,
                        insert_lsn=record.insert_lsn,
                        lag_is_lower_bound=record.lower_bound,
                    )
                )

    def add_position(self, job: str, measured_at: datetime, insert_lsn: str, kept: int = POSITIONS_KEPT) -> None:
        """Record the source's insert LSN (`X/Y`) as read at `measured_at`, keeping the newest `kept` of the job."""
        with self._sessions.begin() as session:
            session.add(WalPositionSample(job=job, measured_at=measured_at, insert_lsn=insert_lsn))
            session.flush()
            oldest_kept = session.scalar(
                select(WalPositionSample.id)
                .where(WalPositionSample.job == job)
                .order_by(WalPositionSample.measured_at.desc(), WalPositionSample.id.desc())
                .offset(kept - 1)
                .limit(1)
            )
            if oldest_kept is not None:
                session.execute(
                    delete(WalPositionSample).where(WalPositionSample.job == job, WalPositionSample.id < oldest_kept)
                )

    def positions(self, job: str) -> list[tuple[datetime, str]]:
        """Return the recorded (measured at, insert LSN `X/Y`) of a job, oldest first."""
        query = (
            select(WalPositionSample.measured_at, WalPositionSample.insert_lsn)
            .where(WalPositionSample.job == job)
            .order_by(WalPositionSample.measured_at, WalPositionSample.id)
        )
        with self._sessions() as session:
            return [(row.measured_at, row.insert_lsn) for row in session.execute(query)]

    def latest(self, jobs: Sequence[str] | None = None) -> dict[str, dict[str, LagRecord]]:
        """Return the recorded lags by job and destination (of every job when `jobs` is None)."""
        query = select(WalLag)
        if jobs is not None:
            query = query.where(WalLag.job.in_(list(jobs)))
        result: dict[str, dict[str, LagRecord]] = {}
        with self._sessions() as session:
            for row in session.scalars(query):
                result.setdefault(row.job, {})[row.destination] = LagRecord(
                    row.job,
                    row.destination,
                    row.measured_at,
                    row.lag_seconds,
                    row.newest_segment,
                    row.newest_stored_at,
                    row.insert_lsn,
                    row.lag_is_lower_bound,
                )
        return result
