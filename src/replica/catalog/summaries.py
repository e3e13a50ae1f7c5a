"""Per-job status summaries: the facts of `replica.catalog.latest`, cached per job and revision.

Database triggers (migration 0005) bump a job's revision in every transaction that changes its runs, snapshots or
check results. `cached_latest` reads the revision and cached facts of every asked job in one query per chunk,
recomputes with `read_latest` only the jobs whose revision moved (or that were never cached), and writes those
back. A job's facts are therefore never older than its revision says, whichever write path changed it.

The revisions are read before any facts are recomputed: facts computed by a later statement may be newer than the
revision stored with them (a write committed in between), never older, so the worst a race does is recompute a job
once more. Nothing time-dependent is cached: RPO ages and whether a `running` run's process died are decided by
the reader from the stored timestamps, hosts and pids.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from replica.catalog.database import SQLITE_BUSY_TIMEOUT_MILLISECONDS
from replica.catalog.facts import LatestRecords
from replica.catalog.latest import JOBS_PER_QUERY, job_names_table, read_latest
from replica.catalog.models import JobRevision, JobStatusCache
from replica.catalog.summary_codec import FACTS_FORMAT, decode_facts, encode_facts, split_cached

__all__ = ["FACTS_FORMAT", "cached_latest", "decode_facts", "encode_facts"]

logger = logging.getLogger(__name__)
# How long `status` waits for SQLite's write lock to store summaries before it gives up (they are a shortcut).
CACHE_WRITE_WAIT_MILLISECONDS = 200

_REVISIONS = JobRevision.__table__
_CACHE = JobStatusCache.__table__

# Portable upsert (SQLite 3.24+, PostgreSQL 9.5+). A slower reader never replaces facts of a newer revision.
_STORE = text(
    "INSERT INTO job_status_cache (job, revision, facts) VALUES (:job, :revision, :facts) "
    "ON CONFLICT (job) DO UPDATE SET revision = excluded.revision, facts = excluded.facts "
    "WHERE excluded.revision >= job_status_cache.revision"
)


def cached_latest(sessions: sessionmaker[Session], jobs: Sequence[str]) -> dict[str, LatestRecords]:
    """Return the latest records of each of `jobs` (every job gets an entry), from the cache where the job's
    revision has not moved; the others are recomputed and stored back in one short write transaction (skipped,
    with a warning, when the catalog refuses the write)."""
    result: dict[str, LatestRecords] = {}
    stale: dict[str, int] = {}  # job -> the revision its recomputed facts are stored under
    with sessions() as session:
        connection = session.connection()
        for start in range(0, len(jobs), JOBS_PER_QUERY):
            _read_cached(connection, list(jobs[start : start + JOBS_PER_QUERY]), result, stale)
        if not stale:
            return result
        fresh = read_latest(connection, list(stale))
    result.update(fresh)
    rows = [
        {"job": name, "revision": revision, "facts": encode_facts(fresh[name])}
        for name, revision in sorted(stale.items())
    ]
    try:
        with sessions.begin() as session, _short_lock_wait(session.connection()) as connection:
            connection.execute(_STORE, rows)
    except SQLAlchemyError as error:
        # `status` is safe to run from monitoring, with credentials that may only read: the facts are right
        # without the cache, which is only a shortcut; the next reader that may write stores them.
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        logger.warning(
            "status summaries of %d job(s) not stored (%s); they are recomputed until they are", len(rows), reason
        )
    return result


@contextlib.contextmanager
def _short_lock_wait(connection: Connection) -> Iterator[Connection]:
    """Yield `connection`, which on SQLite waits at most CACHE_WRITE_WAIT_MILLISECONDS for the write lock: `status`
    never queues for long behind a backup's writes to store a shortcut (it warns and goes on instead)."""
    if connection.dialect.name != "sqlite":
        yield connection
        return
    driver = connection.connection.driver_connection
    assert driver is not None
    # On the driver's connection: a PRAGMA needs no transaction, and restoring the wait must work in a failed one.
    driver.execute(f"PRAGMA busy_timeout={CACHE_WRITE_WAIT_MILLISECONDS}")
    try:
        yield connection
    finally:
        driver.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MILLISECONDS}")


def _read_cached(
    connection: Connection, jobs: list[str], result: dict[str, LatestRecords], stale: dict[str, int]
) -> None:
    """Fill `result` with the still valid cached facts of `jobs`; put the others in `stale` with their revision."""
    names = job_names_table(connection.dialect.name)
    query = (
        select(names.c.value, _REVISIONS.c.revision, _CACHE.c.revision, _CACHE.c.facts)
        .select_from(names)
        .outerjoin(_REVISIONS, _REVISIONS.c.job == names.c.value)
        .outerjoin(_CACHE, _CACHE.c.job == names.c.value)
    )
    split_cached(connection.execute(query, {"names": json.dumps(jobs)}), result, stale)
