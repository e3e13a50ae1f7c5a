"""The newest records of many jobs at once, for `replica status` and the watchdog.

A few grouped queries per chunk of jobs replace reading every run of every job: each looks up, per job or per job
and destination, the one row it needs through an index (correlated subqueries with `ORDER BY id DESC LIMIT 1`,
which SQLite and PostgreSQL both answer with a short index walk). The facts are the ones `replica status` has
always shown, computed from all of a job's runs:

- the last backup that reached an outcome, and whether a copy of it failed;
- per destination, the newest finished verification of a snapshot;
- the RTO of the newest successful verification that measured one;
- per destination, the newest verified recovery point: the newest usable, unpruned snapshot whose latest finished
  verification succeeded (with that verification);
- the runs still marked `running`;
- per destination, the Object Lock state recorded by its newest succeeded backup, copy or prune;
- per destination, the RTO fit of its newest successful verifications (replica.policy.forecast): it depends on the
  history only, so it is cached with the other facts and compared with the objective and the time when read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Text, bindparam, case, cast, func, select, true
from sqlalchemy.sql.expression import ColumnElement, ScalarSelect, TableValuedAlias

# The plain types of the facts live apart, without SQLAlchemy (status reads cached facts without it).
from replica.catalog.facts import FAILED, RUNNING, SUCCEEDED, LatestRecords, RunFacts, VerifiedPointFacts
from replica.catalog.models import Run, Snapshot
from replica.policy.forecast import FIT_SAMPLES, RtoSample, SizeSample, fit_rto

# Each store's restore within a drill, recorded under the store's job (see replica.actions.drill).
DRILL_RESTORE_KIND = "drill_restore"
# `replica wal-verify`: the WAL chain of every destination of a physical job checked for gaps.
WAL_VERIFY_KIND = "wal_verify"
# The kinds of run that measure an RTO: a verification, and each store's restore within a drill.
RTO_SAMPLE_KINDS = ("verify", DRILL_RESTORE_KIND)
# The details of a verified point's verification that status reads (the canary's recovery point): only these are
# kept, so that the cached facts (replica.catalog.summaries) stay small whatever figures a verification records.
POINT_DETAIL_KEYS = ("canary_at",)
# The runs that write to a destination; each records the bucket's Object Lock state when its probe passed.
OBJECT_LOCK_KINDS = ("backup", "copy", "prune")
# Jobs per round of queries: bounds the bind parameters of the id lookups (SQLite allows 32,766 per statement).
JOBS_PER_QUERY = 2_000

_RUNS = Run.__table__
_SNAPSHOTS = Snapshot.__table__


def read_latest(connection: Connection, jobs: Sequence[str]) -> dict[str, LatestRecords]:
    """Return the latest records of each of `jobs` (every job gets an entry, empty when it has no runs)."""
    if connection.dialect.name == "postgresql":
        # Thousands of correlated subqueries cross PostgreSQL's JIT cost threshold, and compiling them takes longer
        # (~0.7 s) than running them; SET LOCAL ends with this transaction.
        connection.exec_driver_sql("SET LOCAL jit = off")
    result: dict[str, LatestRecords] = {}
    for start in range(0, len(jobs), JOBS_PER_QUERY):
        result.update(_read_chunk(connection, list(jobs[start : start + JOBS_PER_QUERY])))
    return result


def job_names_table(dialect: str) -> TableValuedAlias:
    """Return the job names given as one JSON array parameter (`names`) as a table with a `value` column.

    One parameter whatever the number of jobs: the statement is compiled once and cached, where a VALUES list of
    thousands of parameters would cost SQLAlchemy tens of milliseconds to compile each time.
    """
    parameter = bindparam("names", type_=Text)
    if dialect == "postgresql":
        return func.json_array_elements_text(cast(parameter, JSON)).table_valued("value", name="names")
    return func.json_each(parameter).table_valued("value", name="names")


def _newest(*conditions: ColumnElement[bool]) -> ScalarSelect[int]:
    """Return the id of the newest run meeting `conditions` (a correlated scalar subquery)."""
    return select(_RUNS.c.id).where(*conditions).order_by(_RUNS.c.id.desc()).limit(1).scalar_subquery()


def _materialized(connection: Connection) -> bool:
    """Return True when the database takes `WITH name AS MATERIALIZED` (PostgreSQL 12+, SQLite 3.35+).

    Without it a database may inline the ids of the first step into every join of the second, running each
    correlated subquery twice.
    """
    if connection.dialect.name == "sqlite":
        return bool(connection.dialect.dbapi.sqlite_version_info >= (3, 35))  # type: ignore[union-attr]
    return connection.dialect.name == "postgresql"


def _read_chunk(connection: Connection, jobs: list[str]) -> dict[str, LatestRecords]:
    names = job_names_table(connection.dialect.name)
    materialized = _materialized(connection)
    parameters = {"names": json.dumps(jobs)}
    records = {name: LatestRecords() for name in jobs}
    for row in connection.execute(_per_job(names.c.value, materialized), parameters):
        latest = records[row.job]
        if row.backup_id is not None:
            latest.last_backup = RunFacts(
                row.backup_id, row.backup_destination, row.backup_status, row.backup_snapshot_id,
                row.backup_finished_at, row.backup_error, failure=row.backup_failure, actor=row.backup_actor,
            )  # fmt: skip
            latest.last_backup_copy_failed = bool(row.copy_failed)
        if row.rto_details is not None:
            latest.last_rto_seconds = float(row.rto_details["rto_seconds"])
        if row.blank_id is not None:
            latest.latest_verifications[""] = RunFacts(
                row.blank_id, None, row.blank_status, row.blank_snapshot_id, row.blank_finished_at, None
            )
    for row in connection.execute(_per_destination(names.c.value, materialized), parameters):
        latest = records[row.job]
        if row.verification_id is not None:
            run = RunFacts(
                row.verification_id, row.destination, row.verification_status, row.verification_snapshot_id,
                row.verification_finished_at, None, failure=row.verification_failure,
                actor=row.verification_actor,
            )  # fmt: skip
            key = row.destination or ""
            if key not in latest.latest_verifications or run.id > latest.latest_verifications[key].id:
                latest.latest_verifications[key] = run
        if row.point_id is not None:
            verification = RunFacts(
                row.point_verification_id, row.destination, SUCCEEDED, row.point_snapshot_id,
                row.point_verification_finished_at, None, _point_details(row.point_verification_details),
            )  # fmt: skip
            latest.newest_points[row.destination] = VerifiedPointFacts(
                row.destination, row.point_snapshot_id, row.point_taken_at, row.point_id, verification
            )
    for kind in OBJECT_LOCK_KINDS:
        for row in connection.execute(_newest_object_locks(names.c.value, kind), parameters):
            state = (row.details or {}).get("object_lock")
            known = records[row.job].object_locks.get(row.destination)
            if state is not None and (known is None or row.id > known.id):
                records[row.job].object_locks[row.destination] = RunFacts(
                    row.id, row.destination, SUCCEEDED, None, row.finished_at, None, {"object_lock": state}
                )
    _add_rto_fits(connection, names, parameters, records)
    running = select(_RUNS.c.job, _RUNS.c.host, _RUNS.c.pid).where(
        _RUNS.c.status == RUNNING, _RUNS.c.job.in_(select(names.c.value))
    )
    for name, host, pid in connection.execute(running, parameters):
        records[name].running.append((host, pid))
    return records


def _point_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """Return the part of a verification's details that status reads (POINT_DETAIL_KEYS)."""
    return {key: details[key] for key in POINT_DETAIL_KEYS if key in details} if details else {}


def _per_job(job: ColumnElement[str], materialized: bool) -> Any:
    """Return the query of each job's last finished backup (with whether a copy of it failed), the details of its
    newest successful verification that measured an RTO, and its newest finished verification recorded without a
    destination (none in practice; counted as status always counted them)."""
    finished = _RUNS.c.status.in_((SUCCEEDED, FAILED))
    ids = select(
        job.label("job"),
        _newest(_RUNS.c.job == job, _RUNS.c.kind == "backup", finished).label("backup_id"),
        _newest(
            _RUNS.c.job == job,
            _RUNS.c.kind == "verify",
            _RUNS.c.status == SUCCEEDED,
            _RUNS.c.details["rto_seconds"].as_float().is_not(None),
        ).label("rto_id"),
        # max(), not ORDER BY id: SQLite then seeks the (job, kind, destination, status) index instead of walking
        # every verification of the job.
        select(func.max(_RUNS.c.id))
        .where(
            _RUNS.c.job == job,
            _RUNS.c.kind == "verify",
            _RUNS.c.destination.is_(None),
            finished,
            _RUNS.c.snapshot_id != "",
        )
        .scalar_subquery()
        .label("blank_id"),
    ).cte("ids")
    if materialized:
        ids = ids.prefix_with("MATERIALIZED")
    backup, rto, blank, copy = (_RUNS.alias(name) for name in ("backup", "rto", "blank", "copy"))
    copy_failed = (
        select(copy.c.id)
        .where(copy.c.parent_run_id == ids.c.backup_id, copy.c.kind == "copy", copy.c.status == FAILED)
        .exists()
    )
    return (
        select(
            ids.c.job,
            ids.c.backup_id,
            backup.c.destination.label("backup_destination"),
            backup.c.status.label("backup_status"),
            backup.c.snapshot_id.label("backup_snapshot_id"),
            backup.c.finished_at.label("backup_finished_at"),
            backup.c.error.label("backup_error"),
            backup.c.failure.label("backup_failure"),
            backup.c.actor.label("backup_actor"),
            copy_failed.label("copy_failed"),
            rto.c.details.label("rto_details"),
            ids.c.blank_id,
            blank.c.status.label("blank_status"),
            blank.c.snapshot_id.label("blank_snapshot_id"),
            blank.c.finished_at.label("blank_finished_at"),
        )
        .select_from(ids)
        .outerjoin(backup, backup.c.id == ids.c.backup_id)
        .outerjoin(rto, rto.c.id == ids.c.rto_id)
        .outerjoin(blank, blank.c.id == ids.c.blank_id)
    )


def _per_destination(job: ColumnElement[str], materialized: bool) -> Any:
    """Return the query of each job's verified destinations: the newest finished verification of a snapshot, and
    the newest verified point with its latest verification.

    The destinations are those of the job's verifications (a verified point needs one), listed with a loose index
    scan (one index seek per destination, however many runs there are): the job's files may name fewer.
    """
    destinations = _destinations_of(job, "verify")
    group_job, group_destination = destinations.c.job, destinations.c.destination

    def newest_with(status: str) -> ScalarSelect[int]:
        return _newest(
            _RUNS.c.job == group_job,
            _RUNS.c.kind == "verify",
            _RUNS.c.destination == group_destination,
            _RUNS.c.status == status,
            _RUNS.c.snapshot_id != "",
        )

    # The id of the newest verified point's verification: its snapshot is then found by the unique (job,
    # destination, snapshot id), and every join of the outer query is on a plain column.
    point_verification_id = (
        select(_latest_verification_of(_SNAPSHOTS, "id"))
        .where(
            _SNAPSHOTS.c.job == group_job,
            _SNAPSHOTS.c.destination == group_destination,
            _SNAPSHOTS.c.pruned_at.is_(None),
            _SNAPSHOTS.c.usable == true(),
            _latest_verification_of(_SNAPSHOTS, "status") == SUCCEEDED,
        )
        .order_by(_SNAPSHOTS.c.taken_at.desc(), _SNAPSHOTS.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    ids = (
        select(
            group_job.label("job"),
            group_destination.label("destination"),
            newest_with(SUCCEEDED).label("succeeded_id"),
            newest_with(FAILED).label("failed_id"),
            point_verification_id.label("point_verification_id"),
        )
        .where(group_destination.is_not(None))
        .cte("ids")
    )
    if materialized:
        ids = ids.prefix_with("MATERIALIZED")
    newest = case(
        (func.coalesce(ids.c.succeeded_id, 0) > func.coalesce(ids.c.failed_id, 0), ids.c.succeeded_id),
        else_=ids.c.failed_id,
    )
    verification, snapshot, point_verification = (
        _RUNS.alias("verification"),
        _SNAPSHOTS.alias("point"),
        _RUNS.alias("point_verification"),
    )
    return (
        select(
            ids.c.job,
            ids.c.destination,
            verification.c.id.label("verification_id"),
            verification.c.status.label("verification_status"),
            verification.c.snapshot_id.label("verification_snapshot_id"),
            verification.c.finished_at.label("verification_finished_at"),
            verification.c.failure.label("verification_failure"),
            verification.c.actor.label("verification_actor"),
            snapshot.c.id.label("point_id"),
            snapshot.c.snapshot_id.label("point_snapshot_id"),
            snapshot.c.taken_at.label("point_taken_at"),
            point_verification.c.id.label("point_verification_id"),
            point_verification.c.finished_at.label("point_verification_finished_at"),
            point_verification.c.details.label("point_verification_details"),
        )
        .select_from(ids)
        .outerjoin(verification, verification.c.id == newest)
        .outerjoin(point_verification, point_verification.c.id == ids.c.point_verification_id)
        .outerjoin(snapshot, _is_snapshot(snapshot, ids.c.job, ids.c.destination, point_verification.c.snapshot_id))
    )


def _is_snapshot(snapshots: Any, job: Any, destination: Any, snapshot_id: Any) -> ColumnElement[bool]:
    """Return the join condition of the snapshot row of `snapshots` that is (job, destination, snapshot id)."""
    same: ColumnElement[bool] = (
        (snapshots.c.job == job) & (snapshots.c.destination == destination) & (snapshots.c.snapshot_id == snapshot_id)
    )
    return same


def _destinations_of(job: ColumnElement[str], kind: str) -> Any:
    """Return a CTE of (job, destination): every destination of the job's runs of `kind`, listed with a loose
    index scan (one index seek per destination, however many runs there are), ending with a NULL destination."""
    first = select(func.min(_RUNS.c.destination)).where(_RUNS.c.job == job, _RUNS.c.kind == kind)
    destinations = select(job.label("job"), first.scalar_subquery().label("destination")).cte(
        "destinations", recursive=True
    )
    previous = destinations.alias("previous")
    following = select(func.min(_RUNS.c.destination)).where(
        _RUNS.c.job == previous.c.job, _RUNS.c.kind == kind, _RUNS.c.destination > previous.c.destination
    )
    return destinations.union_all(
        select(previous.c.job, following.scalar_subquery()).where(previous.c.destination.is_not(None))
    )


def _newest_object_locks(job: ColumnElement[str], kind: str) -> Any:
    """Return the query of each job's newest succeeded run of `kind` per destination that recorded the bucket's
    Object Lock state (id, finished_at, details). Every such run since replica records it did, so the index walk
    stops at the newest run (a prune that removed nothing did not probe: the walk passes over it)."""
    destinations = _destinations_of(job, kind)
    group_job, group_destination = destinations.c.job, destinations.c.destination
    newest = _newest(
        _RUNS.c.job == group_job,
        _RUNS.c.kind == kind,
        _RUNS.c.destination == group_destination,
        _RUNS.c.status == SUCCEEDED,
        # as_string: JSON_EXTRACT (SQLite) and ->> (PostgreSQL) give NULL for a missing key, the object otherwise.
        _RUNS.c.details["object_lock"].as_string().is_not(None),
    )
    ids = (
        select(group_job.label("job"), group_destination.label("destination"), newest.label("run_id"))
        .where(group_destination.is_not(None))
        .cte("write_ids")
    )
    run = _RUNS.alias("write")
    return select(ids.c.job, ids.c.destination, run.c.id, run.c.finished_at, run.c.details).join(
        run, run.c.id == ids.c.run_id
    )


def _latest_verification_of(snapshots: Any, column: str) -> ScalarSelect[Any]:
    """Return `column` of the newest finished verification of the snapshot row of `snapshots` (correlated)."""
    runs = _RUNS.alias("latest_verification")
    return (
        select(runs.c[column])
        .where(
            runs.c.job == snapshots.c.job,
            runs.c.kind == "verify",
            runs.c.destination == snapshots.c.destination,
            runs.c.snapshot_id == snapshots.c.snapshot_id,
            runs.c.status.in_((SUCCEEDED, FAILED)),
        )
        .order_by(runs.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _add_rto_fits(
    connection: Connection,
    names: TableValuedAlias,
    parameters: dict[str, str],
    records: dict[str, LatestRecords],
) -> None:
    """Fit each job's RTO forecast per destination from its newest FIT_SAMPLES successful verifications (those that
    measured an RTO): the restored size is the original snapshot's `bytes_processed` (a copy records none); the size
    history is that of the verified snapshots, which span more time than as many of the newest backups would."""
    rto_samples: dict[tuple[str, str], list[RtoSample]] = {}
    sizes: dict[str, dict[str, SizeSample]] = {}  # job -> original snapshot id -> its size when taken
    lateral = connection.dialect.name == "postgresql"
    # Verifications and the stores' restores of drills measure the same thing: restore start to data proven usable.
    rows = [
        row
        for kind in RTO_SAMPLE_KINDS
        for row in connection.execute(_rto_samples_query(names.c.value, kind, lateral), parameters)
    ]
    for row in rows:
        rto = row.rto_seconds
        if rto is None or row.finished_at is None:
            continue
        rto_samples.setdefault((row.job, row.destination), []).append(
            RtoSample(row.finished_at, float(row.bytes_processed), float(rto))
        )
        sizes.setdefault(row.job, {})[row.original_id] = SizeSample(row.taken_at, float(row.bytes_processed))
    for (job, destination), samples in rto_samples.items():
        # The newest FIT_SAMPLES of both kinds together.
        samples = sorted(samples, key=lambda sample: sample.measured_at)[-FIT_SAMPLES:]
        fit = fit_rto(samples, list(sizes[job].values()))
        if fit is not None:
            records[job].rto_fits[destination] = fit


def _rto_samples_query(job: ColumnElement[str], kind: str, lateral: bool) -> Any:
    """Return the query of the newest FIT_SAMPLES successful runs of `kind` of a snapshot per job and destination,
    with the run's measured RTO and finish time, the snapshot's time and the original snapshot's id and size.

    Each destination's runs are read newest first from the index on (job, kind, destination, status, id), and the
    walk stops after FIT_SAMPLES: a job with years of daily verifications costs as much as one with a month. That
    needs `JOIN LATERAL` on PostgreSQL (`lateral`), which cannot use an index for a correlated `id IN (... LIMIT n)`
    (it filtered every pair of runs and destinations); SQLite has no LATERAL and walks the index for the IN.
    """
    destinations = _destinations_of(job, kind)
    samples = (
        select(_RUNS.c.id, _RUNS.c.job, _RUNS.c.destination, _RUNS.c.snapshot_id, _RUNS.c.finished_at, _RUNS.c.details)
        .where(
            _RUNS.c.job == destinations.c.job,
            _RUNS.c.kind == kind,
            _RUNS.c.destination == destinations.c.destination,
            _RUNS.c.status == SUCCEEDED,
            _RUNS.c.snapshot_id != "",
        )
        .order_by(_RUNS.c.id.desc())
        .limit(FIT_SAMPLES)
    )
    run: Any
    if lateral:
        run = samples.lateral("sample")
        joined = destinations.join(run, true())
    else:
        run = _RUNS.alias("sample")
        newest_ids = samples.with_only_columns(_RUNS.c.id).correlate(destinations)
        joined = destinations.join(run, run.c.id.in_(newest_ids))
    snapshot, original = _SNAPSHOTS.alias("verified"), _SNAPSHOTS.alias("original")
    return (
        select(
            run.c.job,
            run.c.destination,
            run.c.finished_at,
            # Only the figure, extracted by the database: decoding 20,000 destinations' details in Python would
            # double the cost of a cold `status`.
            run.c.details["rto_seconds"].as_float().label("rto_seconds"),
            snapshot.c.taken_at,
            original.c.snapshot_id.label("original_id"),
            original.c.bytes_processed,
        )
        .select_from(joined)
        .join(snapshot, _is_snapshot(snapshot, run.c.job, run.c.destination, run.c.snapshot_id))
        .join(
            original,
            (original.c.original_id == snapshot.c.original_id)
            & (original.c.snapshot_id == snapshot.c.original_id)
            & (original.c.job == snapshot.c.job),
        )
        .where(destinations.c.destination.is_not(None))
    )
