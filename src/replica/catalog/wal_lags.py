"""The last measured replication lag of each physical job's WAL archive, per destination: written by each
measurement (`replica wal-status`, the daemon's tick), read by `status`, the metrics and the watchdog.

Not a run: measured every minute, it would bury the run history and bump the job's status revision each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from replica.catalog.models import WalLag


@dataclass(frozen=True)
class LagRecord:
    """One destination's lag as measured at `measured_at` (seconds None: nothing archived there)."""

    job: str
    destination: str
    measured_at: datetime
    lag_seconds: float | None
    newest_segment: str | None
    newest_stored_at: datetime | None
    insert_lsn: str

    def seconds_at(self, now: datetime) -> float | None:
        """Return the lag as an upper bound at `now`: the measured lag plus the time since it was measured (data
        written since may not be archived; nothing has shown it is). None when nothing was archived."""
        if self.lag_seconds is None:
            return None
        return self.lag_seconds + max((now - self.measured_at).total_seconds(), 0.0)


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
                    )
                )

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
                )
        return result
