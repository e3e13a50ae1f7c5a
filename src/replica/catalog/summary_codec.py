"""The text of a job's cached status facts (`job_status_cache.facts`): compact JSON lists, written by
`replica.catalog.summaries` and decoded without a schema library or SQLAlchemy (status decodes thousands per call,
through SQLAlchemy or through the plain reader of `replica.catalog.summary_reader`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from replica.catalog.facts import SUCCEEDED, LatestRecords, RunFacts, VerifiedPointFacts
from replica.policy.forecast import RtoFit

# Stored first in every cached document: a replica that encodes facts differently recomputes instead of misreading.
FACTS_FORMAT = 5  # 2: failure states; 3: the destinations' Object Lock states; 4: RTO fits; 5: who ran a run


def split_cached(
    rows: Iterable[tuple[str, int | None, int | None, str | None]],
    result: dict[str, LatestRecords],
    stale: dict[str, int],
) -> None:
    """Fill `result` with the still valid cached facts of the (job, revision, cached revision, facts) `rows`; put
    the other jobs in `stale` with their revision (those never written to have no revision row: revision 0)."""
    current: list[tuple[str, int, str]] = []
    for name, revision, cached_revision, facts in rows:
        revision = revision or 0
        if facts is not None and cached_revision == revision:
            current.append((name, revision, facts))
        else:
            stale[name] = revision
    for (name, revision, _), records in zip(current, decode_many([facts for *_, facts in current]), strict=True):
        if records is None:
            stale[name] = revision
        else:
            result[name] = records


def decode_many(texts: list[str]) -> list[LatestRecords | None]:
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
