"""Writing and reading catalog records. Each write commits at once: a crash never hides a started run."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from replica.catalog.actor import current_actor, current_slot
from replica.catalog.breaches import Breaches
from replica.catalog.events import EventDraft, EventLog
from replica.catalog.facts import LatestRecords
from replica.catalog.latest import read_latest
from replica.catalog.models import CheckResult, Report, Run, Snapshot
from replica.catalog.reconciliation import Reconciliation
from replica.catalog.run_events import run_event
from replica.catalog.summaries import cached_latest
from replica.catalog.tokens import Tokens
from replica.catalog.wal_lags import WalLags
from replica.errors import FALLBACK_STATE
from replica.urls import redact_text

if TYPE_CHECKING:
    from replica.audit.keys import Signer  # cryptography costs ~50 ms at start-up; only signing needs it
    from replica.catalog.leaders import Leaders
    from replica.catalog.work_slots import WorkSlots

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
# Stopped on purpose (SIGTERM, Ctrl-C): the work was cut short, the store is not to blame.
INTERRUPTED = "interrupted"
# Found `running` after its process died (kill -9, power loss); set by the sweep of the daemon and run-due.
ABANDONED = "abandoned"
# Never started: another run held the job. Kept so that a coalesced trigger leaves a trace with its reason.
SKIPPED = "skipped"
# Runs that really ran to an outcome; schedules count from these (an interrupted run is due again at once).
COMPLETED_STATUSES = (SUCCEEDED, FAILED)
# Runs stopped before their outcome: the work is due again.
CUT_SHORT_STATUSES = (INTERRUPTED, ABANDONED)
# Runs that started (every status but skipped).
STARTED_STATUSES = (RUNNING, SUCCEEDED, FAILED, INTERRUPTED, ABANDONED)
ERROR_COLUMN_CHARACTERS = 500


def utc_now() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def first_line(error: str) -> str:
    """Return the first non-blank line of an error message, credentials in it redacted, cut to what the error column
    holds (every run's error is recorded through here: the runs table and the verification log never hold one)."""
    line = next((line.strip() for line in error.splitlines() if line.strip()), error)
    return redact_text(line)[:ERROR_COLUMN_CHARACTERS]


# Runs started by this process and not yet ended. A `running` row naming our own pid but not listed here was left
# by an earlier process with the same pid (a container restarted as pid 1): abandoned, not ours.
_runs_of_this_process: set[int] = set()


@dataclass(frozen=True)
class CheckOutcome:
    """One named check: passed or not, critical or not, with figures in `detail`."""

    name: str
    passed: bool
    critical: bool
    detail: str
    duration_seconds: float = 0.0


class Catalog:
    """Typed access to the catalog tables through one session factory."""

    def __init__(self, sessions: sessionmaker[Session], signer: Signer | None = None) -> None:
        self._sessions = sessions
        self._events = EventLog(sessions, signer)

    @property
    def sessions(self) -> sessionmaker[Session]:
        """Return the session factory, for the catalog's other tables (locks, breaches)."""
        return self._sessions

    @property
    def breaches(self) -> Breaches:
        """Return the objective breaches recorded by the watchdog."""
        return Breaches(self._sessions, self._events)

    @property
    def reconciliation(self) -> Reconciliation:
        """Return what startup reconciliation reads and writes (adopted snapshots, their events)."""
        return Reconciliation(self._sessions, self._events)

    @property
    def leaders(self) -> Leaders:
        """Return the record of the daemon that leads the scheduling."""
        from replica.catalog.leaders import Leaders  # deferred: it imports this module

        return Leaders(self._sessions)

    @property
    def work_slots(self) -> WorkSlots:
        """Return the claims of distributed workers on the scheduled slots of work."""
        from replica.catalog.work_slots import WorkSlots  # deferred: it imports this module

        return WorkSlots(self._sessions)

    @property
    def wal_lags(self) -> WalLags:
        """Return the last measured replication lag of the physical jobs' WAL archives."""
        return WalLags(self._sessions)

    @property
    def tokens(self) -> Tokens:
        """Return the tokens of the web console and HTTP API."""
        return Tokens(self._sessions, self._events)

    @property
    def events(self) -> EventLog:
        """Return the verification log."""
        return self._events

    def start_run(
        self,
        job: str,
        kind: str,
        *,
        phase: str,
        destination: str | None = None,
        parent_run_id: int | None = None,
        snapshot_id: str | None = None,
        details: dict[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> int:
        """Insert a run as `running` (started now, or at `started_at`) and return its id."""
        with self._sessions.begin() as session:
            run = Run(
                job=job,
                kind=kind,
                destination=destination,
                status=RUNNING,
                phase=phase,
                started_at=started_at or utc_now(),
                host=socket.gethostname(),
                pid=os.getpid(),
                actor=current_actor(),
                parent_run_id=parent_run_id,
                snapshot_id=snapshot_id,
                details=details or {},
                slot=current_slot(),
            )
            session.add(run)
            session.flush()
            _runs_of_this_process.add(run.id)
            return run.id

    def set_phase(self, run_id: int, phase: str, **details: Any) -> None:
        """Record that a run entered `phase`, merging `details` into its figures."""
        with self._sessions.begin() as session:
            run = session.get_one(Run, run_id)
            run.phase = phase
            if details:
                run.details = {**run.details, **details}

    def finish_run(
        self,
        run_id: int,
        *,
        succeeded: bool,
        error: str | None = None,
        snapshot_id: str | None = None,
        status: str | None = None,
        failure: str | None = None,
        **details: Any,
    ) -> None:
        """End a run as `succeeded` or `failed` (or the given `status`, such as `interrupted`), keeping the phase
        it ended in, the first line of the error and, for a run that did not succeed, its failure state (`failed`
        when none is given)."""
        with self._sessions.begin() as session:
            run = session.get_one(Run, run_id)
            _runs_of_this_process.discard(run_id)
            now = utc_now()
            run.status = status or (SUCCEEDED if succeeded else FAILED)
            run.finished_at = now
            if error:
                run.error = first_line(error)
            if run.status != SUCCEEDED:
                run.failure = failure or FALLBACK_STATE
            if snapshot_id:
                run.snapshot_id = snapshot_id
            if details:
                run.details = {**run.details, **details}
            self._events.append_in(session, [run_event(session, run, now)], recorded_at=now)

    def record_skipped(self, job: str, kind: str, reason: str) -> int:
        """Record a run that did not start because another run held the job; return its id."""
        now = utc_now()
        with self._sessions.begin() as session:
            run = Run(
                job=job,
                kind=kind,
                status=SKIPPED,
                phase="not started",
                error=first_line(reason),
                failure="busy",
                started_at=now,
                finished_at=now,
                host=socket.gethostname(),
                pid=os.getpid(),
                actor=current_actor(),
                details={},
                slot=current_slot(),
            )
            session.add(run)
            session.flush()
            self._events.append_in(session, [run_event(session, run, now)], recorded_at=now)
            return run.id

    def mark_abandoned(self, *, host: str, is_alive: Callable[[int], bool]) -> list[Run]:
        """End every `running` run of `host` whose process is gone as `abandoned`; return those runs."""
        with self._sessions.begin() as session:
            candidates = session.scalars(select(Run).where(Run.status == RUNNING, Run.host == host)).all()
            dead = [
                run
                for run in candidates
                if not is_alive(run.pid) or (run.pid == os.getpid() and run.id not in _runs_of_this_process)
            ]
            self._end_runs(
                session,
                dead,
                ABANDONED,
                lambda run: f"process {run.pid} on {host} died while the run was in phase '{run.phase}'",
            )
            return list(dead)

    def abandon_slot_runs(self, job: str, slot: datetime, reason: str) -> list[Run]:
        """End as `abandoned` every run of `job` still `running` that was started for `slot` (by a worker that
        died, whatever its host: the caller holds the job's lock, so no live process runs them); return them."""
        with self._sessions.begin() as session:
            runs = session.scalars(
                select(Run).where(Run.job == job, Run.slot == slot, Run.status == RUNNING).order_by(Run.id)
            ).all()
            for run in runs:
                _runs_of_this_process.discard(run.id)
            self._end_runs(session, runs, ABANDONED, lambda _: first_line(reason))
            return list(runs)

    def interrupt_running(self, *, host: str, pid: int, reason: str) -> list[Run]:
        """End every run still `running` in process `pid` on `host` as `interrupted`; return those runs.

        The daemon's last act on shutdown: whatever its threads could not record themselves is never left
        `running`.
        """
        with self._sessions.begin() as session:
            runs = session.scalars(select(Run).where(Run.status == RUNNING, Run.host == host, Run.pid == pid)).all()
            self._end_runs(session, runs, INTERRUPTED, lambda _: first_line(reason))
            return list(runs)

    def _end_runs(self, session: Session, runs: Sequence[Run], status: str, error: Callable[[Run], str]) -> None:
        """End `runs` now in `status` (also their failure state: `abandoned` or `interrupted`), each with its
        `error`, and append their events to the verification log in the caller's transaction."""
        now = utc_now()
        for run in runs:
            run.status = status
            run.finished_at = now
            run.error = error(run)
            run.failure = status
        self._events.append_in(session, [run_event(session, run, now) for run in runs], recorded_at=now)

    def last_started(self, job: str, kind: str, statuses: Sequence[str]) -> datetime | None:
        """Return when the newest run of a job and kind with one of `statuses` started, or None."""
        query = (
            select(Run.started_at)
            .where(Run.job == job, Run.kind == kind, Run.status.in_(statuses))
            .order_by(Run.id.desc())
            .limit(1)
        )
        with self._sessions() as session:
            return session.scalars(query).first()

    def last_completed_by_work(self, job: str | None = None) -> dict[tuple[str, str], datetime | None]:
        """Return, per (job, kind), when its newest run that reached an outcome (succeeded or failed) started, or
        None when a later run of that kind was cut short (interrupted, abandoned): such work is due again at once.

        A copy belongs to its backup: an interrupted copy makes the backup due again, so that every destination
        gets the recovery point. One query for all jobs (the daemon places thousands at start and on reloads).
        """
        query = (
            select(Run.job, Run.kind, Run.status, func.max(Run.started_at))
            .where(Run.status.in_((*COMPLETED_STATUSES, *CUT_SHORT_STATUSES)))
            .group_by(Run.job, Run.kind, Run.status)
        )
        if job is not None:
            query = query.where(Run.job == job)
        completed: dict[tuple[str, str], datetime] = {}
        cut_short: dict[tuple[str, str], datetime] = {}
        with self._sessions() as session:
            rows = session.execute(query).all()
        for job_name, kind, status, started in rows:
            if status in CUT_SHORT_STATUSES:
                key = (job_name, "backup" if kind == "copy" else kind)
                cut_short[key] = max(started, cut_short.get(key, started))
            elif kind != "copy":
                key = (job_name, kind)
                completed[key] = max(started, completed.get(key, started))
        return {
            key: None
            if key in cut_short and (key not in completed or cut_short[key] > completed[key])
            else completed[key]
            for key in {*completed, *cut_short}
        }

    def mark_pruned(self, snapshot_row_ids: Sequence[int], prune_run_id: int) -> None:
        """Record that retention removed these snapshots from their repository (rows stay as evidence)."""
        now = utc_now()
        with self._sessions.begin() as session:
            for row_id in snapshot_row_ids:
                snapshot = session.get_one(Snapshot, row_id)
                snapshot.pruned_at, snapshot.prune_run_id = now, prune_run_id

    def add_snapshot(
        self,
        *,
        job: str,
        destination: str,
        snapshot_id: str,
        original_id: str,
        backup_run_id: int,
        taken_at: datetime,
        bytes_processed: int,
        bytes_added: int,
        stored_name: str,
        fingerprint: dict[str, Any],
    ) -> None:
        """Record a recovery point in one destination."""
        with self._sessions.begin() as session:
            session.add(
                Snapshot(
                    job=job,
                    destination=destination,
                    snapshot_id=snapshot_id,
                    original_id=original_id,
                    backup_run_id=backup_run_id,
                    taken_at=taken_at,
                    bytes_processed=bytes_processed,
                    bytes_added=bytes_added,
                    stored_name=stored_name,
                    fingerprint=fingerprint,
                    usable=True,
                    created_at=utc_now(),
                )
            )

    def add_checks(self, run_id: int, checks: Iterable[CheckOutcome]) -> None:
        """Record the named checks of a run."""
        with self._sessions.begin() as session:
            for check in checks:
                session.add(
                    CheckResult(
                        run_id=run_id,
                        name=check.name,
                        passed=check.passed,
                        critical=check.critical,
                        detail=check.detail,
                        duration_seconds=check.duration_seconds,
                    )
                )

    def add_report(
        self, *, job: str, run_id: int, title: str, markdown_path: str, json_path: str, body: dict[str, Any]
    ) -> int:
        """Record a data-loss report and return its id."""
        with self._sessions.begin() as session:
            report = Report(
                job=job,
                run_id=run_id,
                created_at=utc_now(),
                title=title,
                markdown_path=markdown_path,
                json_path=json_path,
                body=body,
            )
            session.add(report)
            session.flush()
            self._events.append_in(
                session,
                [
                    EventDraft(
                        kind="report",
                        outcome="written",
                        actor=current_actor(),
                        job=job,
                        run_id=run_id,
                        figures={"report_id": report.id, "report_kind": str(body.get("kind", "data-loss"))},
                        detail=title,
                    )
                ],
                recorded_at=report.created_at,
            )
            return report.id

    def update_report_paths(
        self, report_id: int, *, markdown_path: str, json_path: str, body: dict[str, Any], html_path: str | None = None
    ) -> None:
        """Store where a report was written (known only after its id is)."""
        with self._sessions.begin() as session:
            report = session.get_one(Report, report_id)
            report.markdown_path, report.json_path, report.body = markdown_path, json_path, body
            report.html_path = html_path

    # Reading -----------------------------------------------------------------------------------------------------

    def runs(self, *, job: str | None = None, kind: str | None = None, limit: int = 50) -> Sequence[Run]:
        """Return the newest runs first, optionally of one job and kind."""
        query = select(Run).order_by(Run.id.desc()).limit(limit)
        if job:
            query = query.where(Run.job == job)
        if kind:
            query = query.where(Run.kind == kind)
        with self._sessions() as session:
            return session.scalars(query).all()

    def latest_records(self, jobs: Sequence[str]) -> dict[str, LatestRecords]:
        """Return, per job, its last backup, latest verifications, newest verified points and running runs (see
        `replica.catalog.latest`): from the per-job summaries of `replica.catalog.summaries`, recomputing (and
        storing) only the jobs whose runs, snapshots or checks changed since their facts were cached."""
        return cached_latest(self._sessions, jobs)

    def compute_latest_records(self, jobs: Sequence[str]) -> dict[str, LatestRecords]:
        """Return what `latest_records` returns, computed from the runs and snapshots (a few grouped queries per
        chunk of jobs), without reading or writing the cached summaries."""
        with self._sessions() as session:
            return read_latest(session.connection(), jobs)

    def run(self, run_id: int) -> Run | None:
        """Return one run, or None."""
        with self._sessions() as session:
            return session.get(Run, run_id)

    def snapshots(
        self, job: str, destination: str | None = None, *, include_pruned: bool = False
    ) -> Sequence[Snapshot]:
        """Return a job's recorded snapshots, newest recovery point first; pruned ones only when asked."""
        query = select(Snapshot).where(Snapshot.job == job).order_by(Snapshot.taken_at.desc(), Snapshot.id.desc())
        if destination:
            query = query.where(Snapshot.destination == destination)
        if not include_pruned:
            query = query.where(Snapshot.pruned_at.is_(None))
        with self._sessions() as session:
            return session.scalars(query).all()

    def checks(self, run_id: int) -> Sequence[CheckResult]:
        """Return the checks of a run in the order they ran."""
        with self._sessions() as session:
            return session.scalars(
                select(CheckResult).where(CheckResult.run_id == run_id).order_by(CheckResult.id)
            ).all()

    def reports(self, job: str | None = None) -> Sequence[Report]:
        """Return reports, newest first."""
        query = select(Report).order_by(Report.id.desc())
        if job:
            query = query.where(Report.job == job)
        with self._sessions() as session:
            return session.scalars(query).all()

    def report(self, report_id: int) -> Report | None:
        """Return one report, or None."""
        with self._sessions() as session:
            return session.get(Report, report_id)
