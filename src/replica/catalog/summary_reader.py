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
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote

from replica.catalog.facts import LagRecord, LatestRecords
from replica.catalog.schema import SQLITE_BUSY_TIMEOUT_MILLISECONDS, known_revisions, unusable_catalog
from replica.catalog.summary_codec import split_cached

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
# A URL as SQLAlchemy's make_url splits it, which is not urllib's way: the user ends at the first ':' or '/', the
# password at the first '@', the host is kept as written (neither percent-decoded nor lowercased: libpq must get
# `MyHost` or `%2Fvar%2Frun` as the catalog's path gives it), and a '#' belongs to the database or the query.
_SQLALCHEMY_URL = re.compile(
    r"[\w+]+://"
    r"(?:(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@)?"
    r"(?:(?:\[(?P<ipv6_host>[^/?]+)\]|(?P<host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?"
    r"(?:/(?P<database>[^?]*))?"
    r"(?:\?(?P<query>.*))?"
)


class LeaderFacts(NamedTuple):
    """The daemon that leads (or last led) the scheduling, as `scheduler_leaders` names it."""

    daemon: str
    executor: str
    since: datetime
    heartbeat_at: datetime


class _Connection(NamedTuple):
    """A DB-API connection to the catalog, with its dialect and the base class of its driver's errors."""

    connection: Any
    dialect: str
    errors: type[Exception]  # sqlite3.Error or psycopg.Error


class SummaryReader:
    """Reads the summary tables, the WAL lags and the leader through one DB-API connection."""

    def __init__(self, opened: _Connection, url: str) -> None:
        self._connection = opened.connection
        self._errors = opened.errors
        self._url = url
        names, parameter = _NAMES[opened.dialect]
        self._cached = _CACHED.format(names=names)
        self._wal_lags = _WAL_LAGS.format(names=names)
        self._leader = _LEADER.format(parameter=parameter)

    def _rows(self, statement: str, parameters: Sequence[Any]) -> list[Any]:
        """Return the rows of `statement`. Raises CatalogError, worded as `open_catalog` words it, when the driver
        fails (a lock held past the busy timeout, an I/O error, a connection lost)."""
        try:
            return list(self._connection.execute(statement, parameters).fetchall())
        except self._errors as error:
            raise unusable_catalog(self._url, error) from None

    def cached_latest(self, jobs: Sequence[str]) -> tuple[dict[str, LatestRecords], list[str]]:
        """Return the cached records of the jobs whose revision has not moved, and the names of the others (their
        facts must be recomputed), in the order of `jobs`. Raises CatalogError when the catalog cannot be read."""
        result: dict[str, LatestRecords] = {}
        stale: dict[str, int] = {}
        for start in range(0, len(jobs), JOBS_PER_QUERY):
            chunk = json.dumps(list(jobs[start : start + JOBS_PER_QUERY]))
            split_cached(self._rows(self._cached, (chunk,)), result, stale)
        return result, [name for name in jobs if name in stale]

    def wal_lags(self, jobs: Sequence[str]) -> dict[str, dict[str, LagRecord]]:
        """Return the recorded WAL lags of `jobs` by job and destination (what `WalLags.latest` returns). Raises
        CatalogError when the catalog cannot be read."""
        result: dict[str, dict[str, LagRecord]] = {}
        for start in range(0, len(jobs), JOBS_PER_QUERY):
            chunk = json.dumps(list(jobs[start : start + JOBS_PER_QUERY]))
            for job, destination, measured, lag, segment, stored, lsn, lower in self._rows(self._wal_lags, (chunk,)):
                result.setdefault(job, {})[destination] = LagRecord(
                    job, destination, self._time(measured), lag, segment, self._time(stored), lsn, bool(lower)
                )
        return result

    def leader(self) -> LeaderFacts | None:
        """Return the daemon that leads the scheduling, or None when none ever did. Raises CatalogError when the
        catalog cannot be read."""
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

    Raises CatalogError, worded as `open_catalog` words it, when the database refuses the connection or the URL (an
    option libpq does not know); the reader's methods raise it when a read fails.
    """
    opened = _connect(url)
    if opened is None:
        yield None
        return
    with contextlib.closing(opened.connection):
        yield SummaryReader(opened, url) if _schema_is_current(opened.connection) else None


def _connect(url: str) -> _Connection | None:
    """Return a DB-API connection to the catalog at `url`, or None when this module does not read it. Raises
    CatalogError when the database cannot be opened."""
    if url.startswith("sqlite:///"):
        return _connect_sqlite(url)
    if url.startswith("postgresql+psycopg://"):
        return _connect_postgresql(url)
    return None


def _connect_sqlite(url: str) -> _Connection | None:
    """Return a connection to the SQLite file of `url`, or None when it is not there (never creating it). Raises
    CatalogError when the file cannot be opened."""
    written = url.removeprefix("sqlite:///")
    # In memory, URL options, or a file not there yet (connecting would create it): the catalog's path.
    if not written or written == ":memory:" or "?" in written:
        return None
    # The file SQLAlchemy's pysqlite opens: make_url percent-decodes the database, the dialect takes its abspath.
    path = Path(os.path.abspath(unquote(written)))
    if not path.is_file():
        return None
    # mode=rw: a file removed since the check above is not created empty by sqlite3 (the catalog's path creates and
    # migrates it). quote, not urllib.request's pathname2url: importing urllib.request costs ~35 ms of start-up.
    uri = f"file://{quote(str(path))}?mode=rw"
    timeout = SQLITE_BUSY_TIMEOUT_MILLISECONDS / 1000
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    except sqlite3.Error as error:
        if not path.exists():
            return None
        raise unusable_catalog(url, error) from None
    return _Connection(connection, "sqlite", sqlite3.Error)


def _connect_postgresql(url: str) -> _Connection | None:
    """Return an autocommit psycopg connection to the database of `url`, or None for a URL whose reading this module
    would not be sure of. Raises CatalogError when libpq refuses the URL or the server the connection."""
    parameters = _psycopg_parameters(url)
    if parameters is None:
        return None
    import psycopg  # deferred: ~40 ms that a SQLite catalog never needs

    try:
        connection = psycopg.connect(**parameters, autocommit=True)
    except psycopg.Error as error:
        # The catalog's path would meet the same refusal (and wait out the same timeout) again.
        raise unusable_catalog(url, error) from None
    return _Connection(connection, "postgresql", psycopg.Error)


def _psycopg_parameters(url: str) -> dict[str, Any] | None:
    """Return the keyword arguments of psycopg.connect that SQLAlchemy's psycopg dialect derives from `url`, or
    None for a URL whose reading this module would not be sure of (one SQLAlchemy refuses or reads only in part,
    several hosts, repeated options)."""
    match = _SQLALCHEMY_URL.match(url)
    if match is None or match.end() != len(url):  # make_url would ignore the rest
        return None
    port = match["port"]
    if port is not None and not (port.isascii() and port.isdigit()):
        return None  # SQLAlchemy fails on it (an empty port too)
    # Like URL.translate_connect_args: empty parts are left out; user, password and database are percent-decoded.
    written = {
        "host": match["host"] or match["ipv6_host"],
        "port": int(port) if port else None,
        "user": unquote(match["user"] or ""),
        "password": unquote(match["password"] or ""),
        "dbname": unquote(match["database"] or ""),
    }
    parameters: dict[str, Any] = {name: value for name, value in written.items() if value}
    options: dict[str, str] = {}
    # Blank options are dropped, as create_engine's make_url drops them.
    for name, value in parse_qsl(match["query"] or "", keep_blank_values=False):
        if name in options:  # repeated: SQLAlchemy makes a list of them (several hosts)
            return None
        if name in ("host", "port") and ("," in value or ":" in value):  # several hosts, or `host:port`
            return None
        if name == "port" and not (value.isascii() and value.isdigit()):
            return None  # SQLAlchemy fails on it
        options[name] = value
    # The query's options win over the URL's parts, as in SQLAlchemy's dialect (a port given there stays text).
    parameters.update(options)
    return parameters


def _schema_is_current(connection: Any) -> bool:
    """Return True when the catalog carries the newest schema revision this replica knows (anything else is for
    `open_catalog` to migrate or refuse)."""
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except Exception:
        return False
    return row is not None and row[0] == known_revisions()[-1]
