"""Appending to and reading the verification log (the `events` table), a hash chain of everything replica did.

Appends are serialised by updating the one row of `event_log_lock` first, in the same transaction as the insert:
SQLite then holds its write lock and PostgreSQL a row lock until commit, so every event links to the true previous
one even with several threads, processes or hosts appending. An event is appended in the transaction of the
record it is about (a run's outcome, a breach), so the catalog never holds an outcome without its event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from replica.audit.chain import (
    EVENT_FIELDS,
    GENESIS_HASH,
    ChainedEvent,
    ChainProblem,
    ChainSummary,
    SignatureCheck,
    canonical_figures,
    check_chain,
    check_newest_signature,
    event_hash,
    hash_problem,
)
from replica.catalog.event_scan import COLUMNS as SCAN_COLUMNS
from replica.catalog.event_scan import check_ranges, worker_count
from replica.catalog.models import Event, EventLogLock

if TYPE_CHECKING:  # cryptography costs ~50 ms at start-up; only signing needs it
    from replica.audit.keys import Signer

EventSelect = Select[*tuple[Any, ...]]
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
STREAM_BATCH_ROWS = 20_000
# The columns of a stored event, in the order replica.audit.chain expects its tuples.
EVENT_COLUMNS = tuple(getattr(Event, name) for name in EVENT_FIELDS)


def format_time(moment: datetime) -> str:
    """Return the text an event stores (and hashes) for a time: UTC, microseconds, `Z`."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """Return the time an event's `recorded_at` text stands for."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True)
class EventDraft:
    """What happened, before it is chained: the caller never chooses sequence numbers or hashes."""

    kind: str  # backup | copy | verify | restore | prune | init | breach | report | config | notification | ...
    outcome: str  # succeeded | failed | interrupted | abandoned | skipped | opened | cleared | sent | changed ...
    actor: str
    job: str | None = None
    destination: str | None = None
    snapshot: str | None = None
    run_id: int | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


def to_event(row: Sequence[Any]) -> ChainedEvent:
    """Return the event of a row in EVENT_COLUMNS order."""
    return ChainedEvent(*row)


class EventLog:
    """The verification log of one catalog, signing new events when the operator configured a key."""

    def __init__(self, sessions: sessionmaker[Session], signer: Signer | None = None) -> None:
        self._sessions = sessions
        self._signer = signer

    @property
    def signer(self) -> Signer | None:
        """Return the key new events are signed with, or None."""
        return self._signer

    def append(self, draft: EventDraft, *, recorded_at: datetime | None = None) -> ChainedEvent:
        """Append one event in a transaction of its own and return it as stored."""
        with self._sessions.begin() as session:
            return self.append_in(session, [draft], recorded_at=recorded_at)[0]

    def append_in(
        self, session: Session, drafts: Sequence[EventDraft], *, recorded_at: datetime | None = None
    ) -> list[ChainedEvent]:
        """Append events within the caller's transaction (committed with it) and return them as stored."""
        if not drafts:
            return []
        self.lock(session)
        return self.append_locked(session, drafts, recorded_at=recorded_at)

    @staticmethod
    def lock(session: Session) -> None:
        """Take the log's append lock in the caller's transaction (held until it ends): appends made in it, and
        reads of the log made after this, see every event committed before and none committed concurrently."""
        session.execute(
            update(EventLogLock).where(EventLogLock.id == 1).values(appended_at=format_time(datetime.now(UTC)))
        )

    def append_locked(
        self, session: Session, drafts: Sequence[EventDraft], *, recorded_at: datetime | None = None
    ) -> list[ChainedEvent]:
        """Append events in a transaction that already holds `lock` (decide-then-append without a race)."""
        stamp = format_time(recorded_at or datetime.now(UTC))
        return self._chain_after_head(session, [(draft, stamp) for draft in drafts])

    def append_many(self, drafts: Iterable[tuple[EventDraft, datetime]], *, batch_rows: int = 10_000) -> int:
        """Append many events with their own times, `batch_rows` per transaction (imports and benchmarks); return
        how many."""
        count = 0
        batch: list[tuple[EventDraft, str]] = []
        for draft, moment in drafts:
            batch.append((draft, format_time(moment)))
            if len(batch) >= batch_rows:
                count += len(self._append_batch(batch))
                batch = []
        if batch:
            count += len(self._append_batch(batch))
        return count

    def _append_batch(self, batch: Sequence[tuple[EventDraft, str]]) -> list[ChainedEvent]:
        with self._sessions.begin() as session:
            self.lock(session)
            return self._chain_after_head(session, batch)

    def _chain_after_head(self, session: Session, stamped: Sequence[tuple[EventDraft, str]]) -> list[ChainedEvent]:
        """Chain the drafts (each with its time) after the newest stored event and insert them; return them."""
        if not stamped:
            return []
        head = session.execute(
            select(Event.seq, Event.hash, Event.signature).order_by(Event.seq.desc()).limit(1)
        ).first()
        seq, previous_hash, previous_signature = (head[0], head[1], head[2]) if head else (0, GENESIS_HASH, None)
        chained = []
        for draft, stamp in stamped:
            seq += 1
            event = self._chain(draft, seq, stamp, previous_hash, previous_signature)
            chained.append(event)
            previous_hash, previous_signature = event.hash, event.signature
        session.execute(insert(Event), [event.__dict__ for event in chained])
        return chained

    def _chain(
        self, draft: EventDraft, seq: int, stamp: str, previous_hash: str, previous_signature: str | None
    ) -> ChainedEvent:
        unsigned = ChainedEvent(
            seq=seq,
            recorded_at=stamp,
            kind=draft.kind,
            job=draft.job,
            destination=draft.destination,
            snapshot=draft.snapshot,
            run_id=draft.run_id,
            actor=draft.actor,
            outcome=draft.outcome,
            figures=canonical_figures(draft.figures),
            detail=draft.detail,
            previous_hash=previous_hash,
            hash="",
            key_id=self._signer.key_id if self._signer else None,
        )
        digest = event_hash(unsigned, previous_signature)
        signature = self._signer.sign(digest) if self._signer else None
        return ChainedEvent(**{**unsigned.__dict__, "hash": digest, "signature": signature})

    # Reading -----------------------------------------------------------------------------------------------------

    def head_seq(self) -> int:
        """Return the sequence number of the newest event (0 for an empty log)."""
        with self._sessions() as session:
            return int(session.scalar(select(func.coalesce(func.max(Event.seq), 0))) or 0)

    def head(self) -> ChainedEvent | None:
        """Return the newest event, or None when the log is empty."""
        with self._sessions() as session:
            row = session.execute(select(*EVENT_COLUMNS).order_by(Event.seq.desc()).limit(1)).first()
        return to_event(row) if row else None

    def event(self, seq: int) -> ChainedEvent | None:
        """Return the event with sequence number `seq`, or None."""
        with self._sessions() as session:
            row = session.execute(select(*EVENT_COLUMNS).where(Event.seq == seq)).first()
        return to_event(row) if row else None

    def events(
        self,
        *,
        job: str | None = None,
        kinds: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        run_ids: Sequence[int] = (),
        newest: int | None = None,
        after_seq: int | None = None,
    ) -> list[ChainedEvent]:
        """Return the matching events oldest first (only the `newest` N, only those after `after_seq`, when given)."""
        query = self._filtered(job=job, kinds=kinds, since=since, until=until, run_ids=run_ids)
        if after_seq is not None:
            query = query.where(Event.seq > after_seq)
        if newest:
            query = query.order_by(None).order_by(Event.seq.desc()).limit(newest)
        with self._sessions() as session:
            rows = session.execute(query).all()
        events = [to_event(row) for row in rows]
        return sorted(events, key=lambda event: event.seq)

    def stream(
        self, *, job: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[ChainedEvent]:
        """Yield the matching events oldest first, a batch at a time (memory stays flat for millions)."""
        query = self._filtered(job=job, kinds=(), since=since, until=until, run_ids=())
        for row in self._rows(query.order_by(Event.seq)):
            yield to_event(row)

    def check(self, *, check_signature: SignatureCheck | None = None, require_signatures: bool = False) -> ChainSummary:
        """Check the whole log (see replica.audit.chain.check_chain) and return what was found."""
        head_seq = self.head_seq()
        workers = worker_count(head_seq)
        database = self._sqlite_file()
        if workers == 1 or database is None:
            return check_chain(self._scan(), check_signature=check_signature, require_signatures=require_signatures)
        summary = check_ranges(database, head_seq, workers, require_signatures)
        if check_signature is not None:
            if summary.problem is not None and "does not match its hash" in summary.problem.reason:
                summary.problem = self._diagnose(summary.problem.seq, check_signature)
            check_newest_signature(summary, check_signature)
        return summary

    def _sqlite_file(self) -> Path | None:
        """Return the catalog's file when it is a SQLite file (what the parallel check can open), else None."""
        bind = self._sessions.kw.get("bind")
        url = getattr(bind, "url", None)
        if url is None or url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return Path(url.database)

    def _diagnose(self, seq: int, check_signature: SignatureCheck) -> ChainProblem:
        """Return the problem of event `seq` whose hash does not match, naming the previous event when it is that
        event's signature that was edited (as the serial check does)."""
        previous = self.event(seq - 1)
        if previous is None:
            return ChainProblem(seq, "content does not match its hash (edited?)")
        return hash_problem(seq, previous.key_id, previous.hash, previous.signature, check_signature)

    def _scan(self) -> Iterator[tuple[Any, ...]]:
        """Yield every event oldest first as plain tuples, straight from the driver's cursor.

        `audit verify` reads millions of events; SQLAlchemy's result rows would cost as much again as hashing
        them. PostgreSQL gets a server-side cursor so that memory stays flat.
        """
        with self._sessions() as session:
            connection = session.connection()
            driver = connection.connection.driver_connection
            assert driver is not None  # a checked-out connection always has one
            postgresql = connection.dialect.name == "postgresql"
            cursor = driver.cursor(name="replica_event_scan") if postgresql else driver.cursor()
            try:
                cursor.execute(f"SELECT {SCAN_COLUMNS} FROM events ORDER BY seq")
                while batch := cursor.fetchmany(STREAM_BATCH_ROWS):
                    yield from batch
            finally:
                cursor.close()

    def _rows(self, query: EventSelect) -> Iterator[Any]:
        with self._sessions() as session:
            result = session.execute(query.execution_options(yield_per=STREAM_BATCH_ROWS))
            yield from result

    @staticmethod
    def _filtered(
        *,
        job: str | None,
        kinds: Sequence[str],
        since: datetime | None,
        until: datetime | None,
        run_ids: Sequence[int],
    ) -> EventSelect:
        query = select(*EVENT_COLUMNS).order_by(Event.seq)
        if job:
            query = query.where(Event.job == job)
        if kinds:
            query = query.where(Event.kind.in_(kinds))
        if since:
            query = query.where(Event.recorded_at >= format_time(since))
        if until:
            query = query.where(Event.recorded_at <= format_time(until))
        if run_ids:
            query = query.where(Event.run_id.in_(run_ids))
        return query
