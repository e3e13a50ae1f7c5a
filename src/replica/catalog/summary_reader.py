"""`replica status` without SQLAlchemy: the cached per-job facts, the recorded WAL lags and the scheduler's leader,
read with the database's own driver (sqlite3, psycopg).

SQLAlchemy and the catalog's models are ~0.2 s of a one-shot command's start-up; reading the summary tables of
migration 0005 (`job_revisions`, `job_status_cache`) needs none of it. Only a catalog this reader fully understands
is read: a SQLite file, or a PostgreSQL database named by a `postgresql+psycopg://` URL, at the newest schema
revision this replica knows. For anything else (another driver, a file not there yet, an older or unknown schema)
`open_summary_reader` yields None and status takes the catalog's usual path, which migrates or refuses. The jobs
whose revision moved since their facts were cached are left to the caller, which recomputes them through the
catalog (`Catalog.latest_records`, which stores them back).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from replica.catalog.facts import LagRecord, LatestRecords
from replica.catalog.schema import SQLITE_BUSY_TIMEOUT_MILLISECONDS, known_revisions
from replica.catalog.summary_codec import split_cached
from replica.errors import CatalogError
from replica.urls import redact_text, redact_url

# Jobs per query: the names travel as one JSON array parameter, as in replica.catalog.summaries.
JOBS_PER_QUERY = 2_000
SCHEDULER = "scheduler"  # the one row of `scheduler_leaders` (replica.catalog.leaders)

# {names}: the job names given as one JSON array parameter, as a table with a `value` column.
_CACHED = (
    "SELECT names.value, job_revisions.revision, job_status_cache.revision, job_status_cache.facts FROM {names} "
    "LEFT OUTER JOIN job_revisions ON job_revisions.job = names.value "
    "LEFT OUTER JOIN job_status_cache ON job_status_cache.job = names.value"
)
_WAL_LAGS = (
    "SELECT job, destination, measured_at, lag_seconds, newest_segment, newest_stored_at, insert_lsn, "
    "lag_is_lower_bound FROM wal_lags WHERE job IN (SELECT value FROM {names})"
)
_LEADER = "SELECT daemon, executor, since, heartbeat_at FROM scheduler_leaders WHERE name = {parameter}"
_NAMES = {
    "sqlite": ("json_each(?) AS names", "?"),
    "postgresql": ("json_array_elements_text(CAST(%s AS JSON)) AS names(value)", "%s"),
}


class LeaderFacts(NamedTuple):
    """The daemon that leads (or last led) the scheduling, as `scheduler_leaders` names it."""

    daemon: str
    executor: str
    since: datetime
    heartbeat_at: datetime


class SummaryReader:
    """Reads the summary tables, the WAL lags and the leader through one DB-API connection."""

    def __init__(self, connection: Any, dialect: str) -> None:
        self._connection = connection
        self._dialect = dialect
        names, parameter = _NAMES[dialect]
        self._cached = _CACHED.format(names=names)
        self._wal_lags = _WAL_LAGS.format(names=names)
        self._leader = _LEADER.format(parameter=parameter)

    def _rows(self, statement: str, parameters: Sequence[Any]) -> list[Any]:
        cursor = self._connection.execute(statement, parameters)
        return list(cursor.fetchall())

    def cached_latest(self, jobs: Sequence[str]) -> tuple[dict[str, LatestRecords], list[str]]:
        """Return the cached records of the jobs whose revision has not moved, and the names of the others (their
        facts must be recomputed), in the order of `jobs`."""
        result: dict[str, LatestRecords] = {}
        stale: dict[str, int] = {}
        for start in range(0, len(jobs), JOBS_PER_QUERY):
            chunk = json.dumps(list(jobs[start : start + JOBS_PER_QUERY]))
            split_cached(self._rows(self._cached, (chunk,)), result, stale)
        return result, [name for name in jobs if name in stale]

    def wal_lags(self, jobs: Sequence[str]) -> dict[str, dict[str, LagRecord]]:
        """Return the recorded WAL lags of `jobs` by job and destination (what `WalLags.latest` returns)."""
        result: dict[str, dict[str, LagRecord]] = {}
        for start in range(0, len(jobs), JOBS_PER_QUERY):
            chunk = json.dumps(list(jobs[start : start + JOBS_PER_QUERY]))
            for job, destination, measured, lag, segment, stored, lsn, lower in self._rows(self._wal_lags, (chunk,)):
                result.setdefault(job, {})[destination] = LagRecord(
                    job, destination, self._time(measured), lag, segment, self._time(stored), lsn, bool(lower)
                )
        return result

    def leader(self) -> LeaderFacts | None:
        """Return the daemon that leads the scheduling, or None when none ever did."""
        rows = self._rows(self._leader, (SCHEDULER,))
        if not rows:
            return None
        daemon, executor, since, heartbeat_at = rows[0]
        return LeaderFacts(daemon, executor, self._time(since), self._time(heartbeat_at))

    def _time(self, value: Any) -> Any:
        """Return a stored timestamp as the catalog's UtcDateTime reads it: timezone-aware, in UTC (SQLite keeps
        SQLAlchemy's text without the zone, PostgreSQL gives an aware datetime)."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@contextlib.contextmanager
def open_summary_reader(url: str) -> Iterator[SummaryReader | None]:
    """Yield a reader of the catalog at `url` (a SQLAlchemy URL), or None when this module does not read it (see
    the module docstring); the connection is closed on exit.

    Raises CatalogError, worded as `open_catalog` words it, when the PostgreSQL server refuses the connection.
    """
    connection = _connect(url)
    if connection is None:
        yield None
        return
    with contextlib.closing(connection[0]):
        if _schema_is_current(connection[0]):
            yield SummaryReader(*connection)
        else:
            yield None


def _connect(url: str) -> tuple[Any, str] | None:
    """Return a DB-API connection to the catalog at `url` and its dialect, or None when this module does not read
    it."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        # In memory, URL options, or a file not there yet (connecting would create it): the catalog's path.
        if not path or path == ":memory:" or "?" in path or not Path(path).is_file():
            return None
        connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MILLISECONDS / 1000, isolation_level=None)
        return connection, "sqlite"
    if url.startswith("postgresql+psycopg://"):
        parameters = _psycopg_parameters(url)
        if parameters is None:
            return None
        import psycopg  # deferred: ~40 ms that a SQLite catalog never needs

        try:
            return psycopg.connect(**parameters, autocommit=True), "postgresql"
        except psycopg.OperationalError as error:
            # The catalog's path would meet the same refusal (and wait out the same timeout) again.
            reason = redact_text(str(error).splitlines()[0] if str(error) else type(error).__name__)
            raise CatalogError(f"catalog {redact_url(url)} cannot be used: {reason}") from None
    return None


def _psycopg_parameters(url: str) -> dict[str, Any] | None:
    """Return the keyword arguments of psycopg.connect that SQLAlchemy's psycopg dialect derives from `url`, or
    None for a URL whose reading this module would not be sure of (several hosts, a malformed port)."""
    parts = urlsplit(url)
    if "," in parts.netloc:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    parameters: dict[str, Any] = {}
    if parts.hostname:
        parameters["host"] = unquote(parts.hostname)
    if port is not None:
        parameters["port"] = port
    if parts.username:
        parameters["user"] = unquote(parts.username)
    if parts.password is not None:
        parameters["password"] = unquote(parts.password)
    database = parts.path.removeprefix("/")
    if database:
        parameters["dbname"] = unquote(database)
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in parameters:  # repeated or shadowing options: SQLAlchemy makes lists of them
            return None
        parameters[name] = value
    return parameters


def _schema_is_current(connection: Any) -> bool:
    """Return True when the catalog carries the newest schema revision this replica knows (anything else is for
    `open_catalog` to migrate or refuse)."""
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except Exception:
        return False
    return row is not None and row[0] == known_revisions()[-1]
