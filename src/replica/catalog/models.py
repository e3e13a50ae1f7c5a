"""Tables of the catalog. Never holds a secret: no passwords, keys or URLs with credentials.

The migrations create the schema; the indexes named here mirror theirs. Partial indexes name only their SQLite
predicate: naming `postgresql_where` too would import SQLAlchemy's PostgreSQL dialect in every command (~60 ms),
and the migrations give both databases the same predicate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the catalog tables."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, dict[str, Any]: JSON}


class Run(Base):
    """One unit of work: inserted as `running` before it starts, ended `succeeded` or `failed`."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_job_kind_id", "job", "kind", "id"),
        Index("ix_runs_job_kind_destination_status", "job", "kind", "destination", "status", "id", "snapshot_id"),
        Index("ix_runs_job_kind_destination_snapshot", "job", "kind", "destination", "snapshot_id", "id", "status"),
        Index("ix_runs_parent_run_id", "parent_run_id"),
        Index("ix_runs_job_kind_slot", "job", "kind", "slot"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # init | backup | copy | verify | restore
    destination: Mapped[str | None] = mapped_column(String(64))
    # running | succeeded | failed | interrupted | abandoned | skipped (see catalog.records for each meaning)
    status: Mapped[str] = mapped_column(String(16), index=True)
    phase: Mapped[str] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    # Why a run that did not succeed ended so, one of replica.errors.FAILURE_STATES; NULL for succeeded runs.
    failure: Mapped[str | None] = mapped_column(String(32), default=None)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(255))
    parent_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    snapshot_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The scheduled fire time this run was started for, when a distributed worker ran it (see WorkSlot).
    slot: Mapped[datetime | None] = mapped_column(default=None)


class Snapshot(Base):
    """A recovery point in one destination, with the fingerprint of the data taken when it was made."""

    __tablename__ = "snapshots"
    __table_args__ = (
        UniqueConstraint("job", "destination", "snapshot_id"),
        Index("ix_snapshots_job_snapshot_id", "job", "snapshot_id"),
        Index(
            "ix_snapshots_unpruned_newest",
            *("job", "destination", "taken_at", "id", "snapshot_id", "usable", "pruned_at"),
            sqlite_where=text("pruned_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(64), index=True)
    destination: Mapped[str] = mapped_column(String(64))
    snapshot_id: Mapped[str] = mapped_column(String(64))
    original_id: Mapped[str] = mapped_column(String(64), index=True)  # the primary's id; equal on the primary
    backup_run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    taken_at: Mapped[datetime]  # when the data was read: the recovery point
    bytes_processed: Mapped[int] = mapped_column(Integer, default=0)
    bytes_added: Mapped[int] = mapped_column(Integer, default=0)
    stored_name: Mapped[str] = mapped_column(String(255))  # file name inside the snapshot (or the tree root)
    fingerprint: Mapped[dict[str, Any]] = mapped_column(default=dict)
    usable: Mapped[bool] = mapped_column(Boolean, default=True)
    # Why a snapshot is not usable (adopted by startup reconciliation after a crash, see actions.reconcile).
    unusable_reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    # Set when retention removed the snapshot from its repository; the row stays as evidence.
    pruned_at: Mapped[datetime | None] = mapped_column(default=None)
    prune_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), default=None)


class CheckResult(Base):
    """One named check of a verification or restore, with its figures."""

    __tablename__ = "check_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    passed: Mapped[bool] = mapped_column(Boolean)
    critical: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(Text)
    duration_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class Report(Base):
    """A data-loss report written after a failed verification."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(64), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[datetime]
    title: Mapped[str] = mapped_column(Text)
    markdown_path: Mapped[str] = mapped_column(Text)
    json_path: Mapped[str] = mapped_column(Text)
    html_path: Mapped[str | None] = mapped_column(Text, default=None)
    body: Mapped[dict[str, Any]] = mapped_column(default=dict)


class JobLock(Base):
    """The one run a job may have at a time, across threads, processes and hosts sharing the catalog.

    A row exists while a run holds the job. A holder that died is detected (same host: its pid is gone; another
    host: its heartbeat is stale) and its lock taken over, never waited on forever.
    """

    __tablename__ = "job_locks"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(String(64))  # random per acquisition: release and takeover compare it
    kind: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]


class Breach(Base):
    """An objective of a job found exceeded by the watchdog: opened once, cleared once, never deleted."""

    __tablename__ = "breaches"
    __table_args__ = (
        Index(
            "ux_breaches_open",
            "job",
            "objective",
            unique=True,
            sqlite_where=text("cleared_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(64), index=True)
    objective: Mapped[str] = mapped_column(String(16))  # rpo | rto
    opened_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None] = mapped_column(default=None)
    measured_seconds: Mapped[float | None] = mapped_column(Float)
    objective_seconds: Mapped[float] = mapped_column(Float)
    detail: Mapped[str] = mapped_column(Text)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), default=None)
    cleared_detail: Mapped[str | None] = mapped_column(Text, default=None)


class Event(Base):
    """One entry of the verification log: appended once, never updated or deleted (triggers refuse both).

    Every column but `id`-like bookkeeping is covered by `hash` (see `replica.audit.chain`), which also covers the
    previous event's hash and signature: the events form a chain that `replica audit verify` checks. Times are
    stored as the exact ISO-8601 text that was hashed, so no database round trip can change a hashed value.
    """

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    recorded_at: Mapped[str] = mapped_column(String(32), index=True)  # 2026-11-27T04:00:00.123456Z
    kind: Mapped[str] = mapped_column(String(32), index=True)
    job: Mapped[str | None] = mapped_column(String(64), index=True)
    destination: Mapped[str | None] = mapped_column(String(64))
    snapshot: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(32))
    figures: Mapped[str] = mapped_column(Text)  # canonical JSON text, hashed as stored
    detail: Mapped[str] = mapped_column(Text)
    previous_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str | None] = mapped_column(String(16))
    signature: Mapped[str | None] = mapped_column(String(128))


class EventLogLock(Base):
    """One row, updated first by every append: serialises appenders across threads, processes and hosts, so
    that each event links to the true previous one (SQLite takes its write lock, PostgreSQL a row lock)."""

    __tablename__ = "event_log_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appended_at: Mapped[str | None] = mapped_column(String(32))


class JobRevision(Base):
    """How many times a job's runs, snapshots or check results changed: bumped by database triggers (migration
    0005) in the writing transaction, so a job whose revision did not move has the same history."""

    __tablename__ = "job_revisions"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)


class JobStatusCache(Base):
    """The status facts of a job computed at one revision of it (see `replica.catalog.summaries`)."""

    __tablename__ = "job_status_cache"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    facts: Mapped[str] = mapped_column(Text)  # JSON text, decoded only by `replica.catalog.summaries`


class ApiToken(Base):
    """A token of the web console and HTTP API. Only its SHA-256 is stored: the token itself is printed once, when
    created, and a leaked catalog does not let anyone in. Revoked, never deleted (the log names it as an actor)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # auditor | operator
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class WalLag(Base):
    """The replication lag of a physical job's WAL archive in one destination, as last measured (one row per job
    and destination, replaced by each measurement): what `status`, the metrics and the watchdog read."""

    __tablename__ = "wal_lags"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    destination: Mapped[str] = mapped_column(String(64), primary_key=True)
    measured_at: Mapped[datetime]
    lag_seconds: Mapped[float | None] = mapped_column(Float, default=None)  # None: nothing archived, no base backup
    # True: no recorded source position is old enough to bound the lag; it is at least lag_seconds.
    lag_is_lower_bound: Mapped[bool] = mapped_column(Boolean, default=False)
    newest_segment: Mapped[str | None] = mapped_column(String(64), default=None)
    newest_stored_at: Mapped[datetime | None] = mapped_column(default=None)
    insert_lsn: Mapped[str] = mapped_column(String(32))  # the source's position the lag was measured against


class WalPositionSample(Base):
    """The source's insert LSN of a physical job as read at `measured_at` (the newest ~1,000 per job are kept): the
    lag of a destination is the time since the source had written no more than that destination holds."""

    __tablename__ = "wal_positions"
    __table_args__ = (Index("ix_wal_positions_job_measured_at", "job", "measured_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    measured_at: Mapped[datetime]
    insert_lsn: Mapped[str] = mapped_column(String(32))


class WorkSlot(Base):
    """One scheduled fire time of one job's kind of work, as sent to the workers: claimed by the worker that runs
    it, so that the slot runs once however often its task is delivered (a redelivery after a worker died, a second
    dispatch across a leader handover).

    `state`: `running` (claimed; `attempts` counts the claims), `done` (ran: `run_id`), `covered` (a run that
    started after the slot's time covers it), `given-up` (a second claimant died too; not tried again).
    """

    __tablename__ = "work_slots"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    slot: Mapped[datetime] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(255))  # who claimed it last (`worker:NAME`)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(Integer, default=None)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    claimed_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SchedulerLeader(Base):
    """The daemon that schedules now (one row, `name` = `scheduler`), written by the leader when it takes the lead
    and refreshed on each watchdog tick; the lead itself is held by an engine lock (see replica.daemon.leadership),
    this row only says who holds it."""

    __tablename__ = "scheduler_leaders"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    daemon: Mapped[str] = mapped_column(String(255))  # `daemon@host:pid`
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    executor: Mapped[str] = mapped_column(String(16))  # local | celery
    since: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
