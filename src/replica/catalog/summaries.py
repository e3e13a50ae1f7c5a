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
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from replica.catalog.database import SQLITE_BUSY_TIMEOUT_MILLISECONDS
from replica.catalog.latest import (
    JOBS_PER_QUERY,
    SUCCEEDED,
    LatestRecords,
    RunFacts,
    VerifiedPointFacts,
    job_names_table,
    read_latest,
)
from replica.catalog.models import JobRevision, JobStatusCache
from replica.policy.forecast import RtoFit

logger = logging.getLogger(__name__)
# Stored first in every cached document: a replica that encodes facts differently recomputes instead of misreading.
FACTS_FORMAT = 5  # 2: failure states; 3: the destinations' Object Lock states; 4: RTO fits; 5: who ran a run
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
    current: list[tuple[str, int, str]] = []
    for name, revision, cached_revision, facts in connection.execute(query, {"names": json.dumps(jobs)}):
        revision = revision or 0  # a job never written to has no row: revision 0
        if facts is not None and cached_revision == revision:
            current.append((name, revision, facts))
        else:
            stale[name] = revision
    for (name, revision, _), records in zip(current, _decode_many([facts for *_, facts in current]), strict=True):
        if records is None:
            stale[name] = revision
        else:
            result[name] = records


def _decode_many(texts: list[str]) -> list[LatestRecords | None]:
    """Return `decode_facts` of each text; one JSON parse for all of them (10,000 parses cost ~30 ms more)."""
    try:
        documents = json.loads(f"[{','.join(texts)}]")
    except ValueError:  # a damaged row: decoded one by one, so that only it is recomputed
        return [_decode_or_none(text) for text in texts]
    if len(documents) != len(texts):  # a row holding several values: one by one as well
        return [_decode_or_none(text) for text in texts]
    return [_records_of(document) for document in documents]


def _decode_or_none(text: str) -> LatestRecords | None:
    try:
        return decode_facts(text)
    except ValueError:
        return None


# Encoding: compact JSON lists, decoded without a schema library (status decodes thousands per call) -------------


def _run(run: RunFacts | None) -> list[Any] | None:
    """Return a run as [id, destination, status, snapshot id, finished at, error, details, failure, actor],
    trailing defaults cut."""
    if run is None:
        return None
    finished = run.finished_at.isoformat() if run.finished_at else None
    optional: list[Any] = [run.error, dict(run.details), run.failure, run.actor]
    while optional and optional[-1] in (None, {}):
        optional.pop()
    return [run.id, run.destination, run.status, run.snapshot_id, finished, *optional]


def _run_of(value: list[Any]) -> RunFacts:
    finished = value[4]
    finished_at = datetime.fromisoformat(finished) if finished else None
    if len(value) == 5:
        return RunFacts(value[0], value[1], value[2], value[3], finished_at, None)
    return RunFacts(value[0], value[1], value[2], value[3], finished_at, *value[5:])


def encode_facts(records: LatestRecords) -> str:
    """Return `records` as the JSON text stored in `job_status_cache.facts`."""
    points = {}
    for name, point in records.newest_points.items():
        verification = point.verification
        # What read_latest gives a point's verification: the point's destination and snapshot, succeeded, no error.
        # Anything else is stored whole rather than reconstructed wrongly.
        implied = (verification.destination, verification.status, verification.snapshot_id, verification.error) == (
            name,
            SUCCEEDED,
            point.snapshot_id,
            None,
        )
        points[name] = [
            point.snapshot_id,
            point.taken_at.isoformat(),
            point.row_id,
            [verification.id, verification.finished_at.isoformat() if verification.finished_at else None,
             dict(verification.details)] if implied else _run(verification),
        ]  # fmt: skip
    return json.dumps(
        [
            FACTS_FORMAT,
            _run(records.last_backup),
            records.last_backup_copy_failed,
            {name: _run(run) for name, run in records.latest_verifications.items()},
            records.last_rto_seconds,
            points,
            records.running,
            {
                name: [run.id, run.finished_at.isoformat() if run.finished_at else None, run.details["object_lock"]]
                for name, run in records.object_locks.items()
            },
            {name: _fit(fit) for name, fit in records.rto_fits.items()},
        ],
        separators=(",", ":"),
    )


def decode_facts(facts: str | None) -> LatestRecords | None:
    """Return the records `encode_facts` stored in `facts`, or None when there are none in this format."""
    if facts is None:
        return None
    return _records_of(json.loads(facts))


def _records_of(document: Any) -> LatestRecords | None:
    """Return the records of a decoded cache document, or None when it is not one of this format (or damaged:
    the job is then recomputed, never shown from a row that does not hold what replica wrote)."""
    if not isinstance(document, list) or not document or document[0] != FACTS_FORMAT:
        return None
    try:
        return _records_from(document)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


def _records_from(document: list[Any]) -> LatestRecords:
    _, backup, copy_failed, verifications, rto, points, running, object_locks, fits = document
    newest_points = {}
    for name, (snapshot_id, taken_at, row_id, verification) in points.items():
        if len(verification) == 3:  # implied by the point (see encode_facts)
            identifier, finished, details = verification
            finished_at = datetime.fromisoformat(finished) if finished else None
            run = RunFacts(identifier, name, SUCCEEDED, snapshot_id, finished_at, None, details)
        else:
            run = _run_of(verification)
        newest_points[name] = VerifiedPointFacts(name, snapshot_id, datetime.fromisoformat(taken_at), row_id, run)
    return LatestRecords(
        _run_of(backup) if backup else None,
        copy_failed,
        {name: _run_of(value) for name, value in verifications.items()},
        rto,
        newest_points,
        [(host, pid) for host, pid in running],
        {name: _object_lock_of(name, value) for name, value in object_locks.items()},
        {name: _fit_of(value) for name, value in fits.items()},
    )


def _object_lock_of(destination: str, value: list[Any]) -> RunFacts:
    """Return the run that recorded a destination's Object Lock state, from its [id, finished at, state]."""
    identifier, finished, state = value
    finished_at = datetime.fromisoformat(finished) if finished else None
    return RunFacts(identifier, destination, SUCCEEDED, None, finished_at, None, {"object_lock": state})


def _fit(fit: RtoFit) -> list[Any]:
    """Return an RTO fit as [samples, intercept, slope, residual, confidence, reference at, size there, growth]."""
    return [
        fit.samples, fit.intercept_seconds, fit.slope_seconds_per_byte, fit.residual_seconds, fit.confidence,
        fit.reference_at.isoformat(), fit.size_at_reference_bytes, fit.growth_bytes_per_second,
    ]  # fmt: skip


def _fit_of(value: list[Any]) -> RtoFit:
    samples, intercept, slope, residual, confidence, reference_at, size, growth = value
    return RtoFit(samples, intercept, slope, residual, confidence, datetime.fromisoformat(reference_at), size, growth)
