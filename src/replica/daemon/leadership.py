"""The scheduling lead: a lock on the catalog's engine that one daemon at a time holds for as long as it lives.

Several `replica daemon` processes may share one catalog; the one holding the lead schedules, the others stand by
and poll for it. The lock belongs to the database engine, so it is released by the engine itself when its holder
dies, whatever killed it:

- PostgreSQL: `pg_try_advisory_lock(LEADER_LOCK_KEY)` on one connection of its own (not from the catalog's pool),
  kept open for the daemon's life. TCP keepalives on both ends (libpq's `keepalives*` on the daemon's side, the
  session's `tcp_keepalives_*` on the server's) make a dead peer noticed within about
  KEEPALIVE_IDLE_SECONDS + KEEPALIVE_INTERVAL_SECONDS x KEEPALIVE_COUNT seconds: the server then ends the session
  and the lock is free; the daemon finds its connection gone on its next check.
- SQLite: a non-blocking `flock` on the file `<catalog>.leader-lock` beside the catalog. An flock only excludes
  processes of one host (and not reliably over NFS): a SQLite catalog allows several daemons on ONE host only.
  An in-memory catalog is private to its process: its only daemon always leads.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from replica.errors import ConfigError
from replica.urls import redact_text, redact_url

logger = logging.getLogger(__name__)

# Session-level advisory lock key of the scheduling lead ("rpleader" in ASCII); distinct from the schema
# migration's MIGRATION_LOCK_KEY in replica.catalog.database, which shares PostgreSQL's one key space.
LEADER_LOCK_KEY = 0x72706C6561646572
KEEPALIVE_IDLE_SECONDS, KEEPALIVE_INTERVAL_SECONDS, KEEPALIVE_COUNT = 5, 2, 3
# Unacknowledged data for this long ends the connection (and the lead), well before the server's keepalives free it.
TCP_USER_TIMEOUT_MILLISECONDS = 5000
CONNECT_TIMEOUT_SECONDS = 5
# The check on the lead's connection is one trivial query: longer than this means the server or the way to it
# is in trouble, and a lead that cannot be confirmed is treated as lost.
CHECK_TIMEOUT_MILLISECONDS = 3_000
LOCK_FILE_SUFFIX = ".leader-lock"
# Whether this session holds the advisory lock of a bigint key: pg_locks shows its high half as classid, its low
# half as objid, and objsubid 1.
_HOLDS_LOCK = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()"
    " AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid) AND objsubid = 1)"
)


class Leadership(Protocol):
    """The scheduling lead of one daemon process."""

    def try_acquire(self) -> bool:
        """Take the lead if no other process holds it; return True when this process holds it (now or already).

        Never blocks for long and never raises: an unreachable catalog is a lead not taken (logged), tried again
        by the caller's next poll.
        """

    def still_held(self) -> bool:
        """Return True while this process still holds the lead; once False, the lead stays lost (release it and
        exit; a new process stands by again)."""

    def release(self) -> None:
        """Give the lead up (a standby may take it at once); does nothing when it is not held."""


def leadership_for(catalog_url: str) -> Leadership:
    """Return the lead on the catalog at `catalog_url`, not yet taken.

    Raises ConfigError for a catalog engine other than PostgreSQL and SQLite.
    """
    url = make_url(catalog_url)
    if url.get_backend_name() == "postgresql":
        return AdvisoryLockLead(catalog_url)
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            return SoleLead()
        return FileLockLead(Path(f"{url.database}{LOCK_FILE_SUFFIX}"))
    raise ConfigError([f"catalog {redact_url(catalog_url)}: no scheduling lead for this engine (PostgreSQL, SQLite)"])


class AdvisoryLockLead:
    """The lead as a PostgreSQL session-level advisory lock, held on a connection of its own."""

    def __init__(self, catalog_url: str) -> None:
        self._shown_url = redact_url(catalog_url)
        # NullPool: the connection is this object's alone and really closes when released.
        self._engine = create_engine(
            catalog_url,
            poolclass=NullPool,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "keepalives": 1,
                "keepalives_idle": KEEPALIVE_IDLE_SECONDS,
                "keepalives_interval": KEEPALIVE_INTERVAL_SECONDS,
                "keepalives_count": KEEPALIVE_COUNT,
                # Keepalives say nothing while a query's bytes wait unacknowledged (a partition mid-check): without
                # this the check would hang for TCP's retransmissions (~15 minutes) while the scheduler runs on.
                "tcp_user_timeout": TCP_USER_TIMEOUT_MILLISECONDS,
                "application_name": "replica daemon lead",
            },
        )
        self._connection: Connection | None = None
        self._lost = False
        self._last_problem: str | None = None

    def try_acquire(self) -> bool:
        if self._connection is not None:
            return True
        if self._lost:
            return False
        try:
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError as error:
            self._report_problem(error)
            return False
        try:
            # Autocommit: the session holds the lock, never an open transaction (which would hold back VACUUM).
            for setting, value in (
                ("tcp_keepalives_idle", KEEPALIVE_IDLE_SECONDS),
                ("tcp_keepalives_interval", KEEPALIVE_INTERVAL_SECONDS),
                ("tcp_keepalives_count", KEEPALIVE_COUNT),
                ("statement_timeout", CHECK_TIMEOUT_MILLISECONDS),
            ):
                connection.execute(text(f"SET {setting} = {int(value)}"))
            taken = bool(
                connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY}).scalar()
            )
        except SQLAlchemyError as error:
            self._report_problem(error)
            _close_quietly(connection)
            return False
        self._last_problem = None
        if not taken:
            connection.close()
            return False
        self._connection = connection
        return True

    def still_held(self) -> bool:
        if self._connection is None:
            return False
        try:
            # The lock is the session's: while this very session answers, it holds it. The pg_locks lookup also
            # catches a session that was somehow given the lock up (pg_advisory_unlock_all by hand).
            held = self._connection.execute(
                _HOLDS_LOCK,
                {"high": LEADER_LOCK_KEY >> 32, "low": LEADER_LOCK_KEY & 0xFFFFFFFF},
            ).scalar()
        except SQLAlchemyError as error:
            logger.error("the lead's connection to %s failed: %s", self._shown_url, _reason(error))
            held = False
        if not held:
            # Never checked again on a new connection: SQLAlchemy would reconnect silently, without the lock.
            self._lost = True
            _close_quietly(self._connection)
            self._connection = None
        return bool(held)

    def release(self) -> None:
        if self._connection is None:
            return
        with contextlib.suppress(SQLAlchemyError):
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LEADER_LOCK_KEY})
        _close_quietly(self._connection)
        self._connection = None
        self._engine.dispose()

    def _report_problem(self, error: SQLAlchemyError) -> None:
        """Log why the lead could not be tried, once per distinct reason (a standby polls every second or two)."""
        reason = _reason(error)
        if reason != self._last_problem:
            logger.warning("cannot try the scheduling lead on %s: %s", self._shown_url, reason)
            self._last_problem = reason


class FileLockLead:
    """The lead as an exclusive flock on a file beside a SQLite catalog (one host only)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._handle: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self._handle is not None:
            return True
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)  # as open_catalog does for the catalog
            handle = self._path.open("a")
        except OSError as error:
            logger.warning("cannot try the scheduling lead on %s: %s", self._path, error)
            return False
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: another process holds it
            handle.close()
            return False
        self._handle = handle
        return True

    def still_held(self) -> bool:
        if self._handle is None:
            return False
        # An flock cannot be taken from its holder; but if the file was removed (or replaced), another process
        # can lock a new file of the same name, and two would lead.
        try:
            same_file = os.stat(self._path).st_ino == os.fstat(self._handle.fileno()).st_ino
        except OSError:
            same_file = False
        if not same_file:
            logger.error("the lead's lock file %s was removed or replaced", self._path)
            self.release()
        return same_file

    def release(self) -> None:
        if self._handle is None:
            return
        # The file stays: removing it would let a process that opened it before lock a file no one else sees.
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None


class SoleLead:
    """The lead on an in-memory catalog: no other process can share it, so its one daemon always leads."""

    def try_acquire(self) -> bool:
        return True

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        pass


def _reason(error: SQLAlchemyError) -> str:
    """Return the first line of a database error, with any credentials it quotes redacted."""
    lines = str(getattr(error, "orig", None) or error).splitlines()
    return redact_text(lines[0] if lines else type(error).__name__)


def _close_quietly(connection: Connection) -> None:
    # Closing a connection whose server is gone may raise; it is gone either way.
    with contextlib.suppress(SQLAlchemyError):
        connection.close()
