"""Who leads the scheduling: the row the leading daemon writes when it takes the lead and refreshes on each
watchdog tick (status and the metrics read it). The lead itself is an engine lock (replica.daemon.leadership); this
row only names its holder, and a standby that takes the lead overwrites it."""

from __future__ import annotations

import os
import socket

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from replica.catalog.models import SchedulerLeader
from replica.catalog.records import utc_now

SCHEDULER = "scheduler"


class Leaders:
    """Recording and reading the daemon that leads the scheduling."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def took_lead(self, daemon: str, executor: str) -> None:
        """Record that this process (`daemon@host:pid`) leads from now, with its executor."""
        now = utc_now()
        with self._sessions.begin() as session:
            session.merge(
                SchedulerLeader(
                    name=SCHEDULER,
                    daemon=daemon,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    executor=executor,
                    since=now,
                    heartbeat_at=now,
                )
            )

    def heartbeat(self, daemon: str) -> None:
        """Refresh the leader's heartbeat (only while the row still names `daemon`)."""
        with self._sessions.begin() as session:
            session.execute(
                update(SchedulerLeader)
                .where(SchedulerLeader.name == SCHEDULER, SchedulerLeader.daemon == daemon)
                .values(heartbeat_at=utc_now())
            )

    def leader(self) -> SchedulerLeader | None:
        """Return the row of the daemon that leads (or last led) the scheduling, or None when none ever did."""
        with self._sessions() as session:
            return session.get(SchedulerLeader, SCHEDULER)
