"""The replication lag of a physical job's WAL archive in each destination ("RPO in seconds", defined in
`replica.wal.lag`), measured against the source's current WAL position and recorded in the catalog, where
`status`, the metrics and the watchdog read it. `replica wal-status JOB` shows it with the chain's state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from replica.actions.context import Context
from replica.actions.wal import physical_job, wal_archives
from replica.actions.wal_chain import (
    chain_documents,
    check_wal_chain,
    history_of_timeline,
    on_path,
    retained_base_backups,
)
from replica.catalog.facts import LagRecord
from replica.catalog.records import utc_now
from replica.config.models import JobConfig, PostgresqlStoreConfig, is_physical
from replica.errors import ReplicaError
from replica.wal.archive import WalArchive
from replica.wal.lag import (
    Lag,
    NewestSegment,
    PositionSample,
    WalPosition,
    listing_start,
    measure_lag,
    newest_segment,
)
from replica.wal.segments import Segment, format_lsn, parse_lsn, parse_segment_name

logger = logging.getLogger(__name__)


def newest_archived(
    archive: WalArchive,
    position: WalPosition,
    previous: LagRecord | None = None,
    path: Callable[[Segment], bool] | None = None,
) -> NewestSegment | None:
    """Return the newest segment in an archive, listing only the names after a segment shortly before the current
    one; when none is there (an archive far behind, or one on an older timeline), only the names after the newest
    segment the previous measurement found (`previous`, that segment kept when nothing is newer): a tick must not
    list a whole archive every minute. Only with no previous finding, the whole archive. `path` keeps only the
    segments of the timelines the source's history follows. Raises StorageError."""
    size = position.segment_bytes
    start = listing_start(position)
    if start is not None:
        recent = newest_segment(((s.name, s.stored_at) for s in archive.stored(start)), size, path)
        if recent is not None:
            return recent
    known = _previously_found(previous, size)
    if known is not None:
        later = newest_segment(((s.name, s.stored_at) for s in archive.stored(known.name)), size, path)
        newer = later is not None and (later.segment.number, later.segment.timeline) > (
            known.segment.number,
            known.segment.timeline,
        )
        return later if later is not None and newer else known
    return newest_segment(((s.name, s.stored_at) for s in archive.stored()), size, path)


def _previously_found(previous: LagRecord | None, segment_bytes: int) -> NewestSegment | None:
    """Return the newest segment a previous measurement recorded (None: none, or not a segment of this size)."""
    if previous is None or previous.newest_segment is None or previous.newest_stored_at is None:
        return None
    try:
        segment = parse_segment_name(previous.newest_segment, segment_bytes)
    except ValueError:  # the cluster's segment size changed: list everything once
        return None
    return NewestSegment(previous.newest_segment, segment, previous.newest_stored_at)


def measure_wal_lag(context: Context, job: JobConfig, now: datetime | None = None) -> list[Lag]:
    """Return the lag of every destination of a physical job (in the job's order) and record it in the catalog.

    Raises UsageError for a job that ships no WAL, SourceUnreachable/StoreError when the source's position cannot
    be read, StorageError when an archive cannot be listed (nothing is recorded then).
    """
    from replica.stores.postgresql_wal import read_wal_position  # deferred: psycopg is for the commands that ask

    store = physical_job(context, job.name).store
    assert isinstance(store, PostgresqlStoreConfig)  # physical_job made sure
    # The position first: a segment archived after it was read can only make the lag look larger, never smaller.
    measured_at = now or utc_now()
    position = read_wal_position(store)
    catalog = context.catalog.wal_lags
    previous = catalog.latest([job.name]).get(job.name, {})
    catalog.add_position(job.name, measured_at, format_lsn(position.insert_lsn))
    samples = [PositionSample(at, parse_lsn(lsn)) for at, lsn in catalog.positions(job.name)]
    lags = []
    for destination, archive in zip(job.destinations, wal_archives(context, job), strict=True):
        # Only the segments of the timelines the source follows: an abandoned timeline's (an old primary that went on
        # archiving after its standby was promoted) protect none of the source's data.
        path = on_path(history_of_timeline(archive, position.timeline), position.segment_bytes)
        newest = newest_archived(archive, position, previous.get(destination.name), path)
        # With nothing archived, the lag counts only once a base backup exists: before, nothing needs the log.
        needed = newest is not None or bool(retained_base_backups(context, job, destination.name))
        lags.append(measure_lag(destination.name, position, newest, samples, measured_at, needed=needed))
    catalog.record([lag_record(job.name, lag) for lag in lags])
    return lags


def lag_record(job: str, lag: Lag) -> LagRecord:
    """Return a measured lag as the catalog records it."""
    newest = lag.newest
    return LagRecord(
        job,
        lag.destination,
        lag.measured_at,
        lag.seconds,
        newest.name if newest else None,
        newest.stored_at if newest else None,
        format_lsn(lag.insert_lsn),
        lag.lower_bound,
    )


def record_wal_lags(context: Context) -> int:
    """Measure and record the lag of every valid physical job (the daemon's tick, before the watchdog judges it);
    return how many jobs were measured. A job whose source or archive cannot be reached is logged and skipped:
    its recorded lag keeps ageing (see LagRecord.seconds_at), which is what the watchdog should see."""
    measured = 0
    configuration = context.configuration
    # From the outlines: only PostgreSQL jobs' files are read (a tick must not read 10,000 job files).
    for name, outline in sorted(configuration.outlines.items()):
        if outline.store_kind != "postgresql":
            continue
        job = configuration.job(name)
        if not is_physical(job):
            continue
        try:
            measure_wal_lag(context, job)
            measured += 1
        except ReplicaError as error:
            logger.warning("cannot measure the WAL lag of job '%s': %s", name, error)
    return measured


def wal_status(context: Context, job_name: str) -> dict[str, Any]:
    """Return `replica wal-status`'s document: the lag of every destination (measured now and recorded) and the
    chain of each. Raises UsageError, StoreError or StorageError like measure_wal_lag and check_wal_chain."""
    job, _ = context.job(job_name)
    lags = measure_wal_lag(context, job)
    chain = check_wal_chain(context, job)
    return {
        "job": job.name,
        "measured_at": lags[0].measured_at.isoformat() if lags else None,
        "source_insert_lsn": format_lsn(lags[0].insert_lsn) if lags else None,
        "destinations": [
            {
                "destination": lag.destination,
                "lag_seconds": lag.seconds,
                "lag_is_lower_bound": lag.lower_bound,
                "behind_bytes": lag.behind_bytes,
                "newest_segment": lag.newest.name if lag.newest else None,
                "newest_stored_at": lag.newest.stored_at.isoformat() if lag.newest else None,
                "summary": lag.describe(),
                "chain": document,
            }
            for lag, document in zip(lags, chain_documents(chain.verdicts), strict=True)
        ],
        "chain_complete": chain.passed,
    }
