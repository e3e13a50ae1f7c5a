"""`replica restore JOB --at TIME --to DIRECTORY` for a physical PostgreSQL job: point-in-time restore.

The newest base backup that ended before TIME is unpacked into a fresh data directory (owned by the job's
`server_user`, mode 0700), recovery is configured to fetch WAL with `replica wal-fetch` from the same destination and
to stop before the first transaction committed at or after TIME (`recovery_target_inclusive = off`: every
transaction committed before TIME is there, none committed at or after it), then to promote (`recovery_target_action
= promote`, a new timeline: the restored cluster can never be confused with the source's history, and its WAL would
not overwrite the source's segments in an archive). A scratch server runs the recovery, is stopped cleanly once
promoted, and the data directory is handed over with archiving off (`archive_mode = 'off'` and `archive_command = ''`
last in postgresql.auto.conf, over any archiving the source set with ALTER SYSTEM) and the command that starts it.

Without --at every archived WAL file is replayed (the newest state the archive holds), and the restore fails when the
replay ended before the newest segment archived on its destination when recovery began (a gap PostgreSQL promoted
at). The job's lock is held throughout (a prune cannot remove the WAL being replayed). Recorded as a `restore` run
with the measured RTO (download, unpack, recovery).
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from replica.actions.context import Context
from replica.actions.locking import hold_job
from replica.actions.restore import outcome_line
from replica.actions.restoring import SnapshotRef, restore_snapshot
from replica.actions.runs import recorded_run
from replica.actions.wal import wal_archive
from replica.actions.wal_chain import on_path, timeline_history
from replica.catalog.records import CheckOutcome, utc_now
from replica.config.models import PostgresqlStoreConfig
from replica.errors import NotFound, StoreError, TargetNotEmpty
from replica.stores.base import Target
from replica.wal.lag import NewestSegment, newest_segment
from replica.wal.segments import Segment, format_lsn, parse_lsn

RECOVERY_STOP = re.compile(r"recovery stopping [^|]*|last completed transaction was at log time [^|]*")


def is_physical(context: Context, job_name: str) -> bool:
    """Return True when the job protects a PostgreSQL cluster in physical mode."""
    job, _ = context.job(job_name)
    return isinstance(job.store, PostgresqlStoreConfig) and job.store.mode == "physical"


@dataclass
class PointInTimePlan:
    """What a point-in-time restore will do (all a dry run does is compute this)."""

    job: str
    destination: str
    snapshot_id: str
    stored_name: str
    fingerprint: dict[str, Any]
    target: Target
    target_time: datetime | None
    target_has_data: bool
    force: bool
    server_user: str

    @property
    def refused(self) -> bool:
        """Return True when the target holds data and --force was not given."""
        return self.target_has_data and not self.force

    def describe(self) -> list[str]:
        """Return the plan as lines for people."""
        point = (
            f"every transaction committed before {describe_utc(self.target_time)}"
            if self.target_time is not None
            else "every archived WAL file (the newest state the archive holds)"
        )
        lines = [
            f"job:         {self.job}",
            f"destination: {self.destination}",
            f"base backup: {self.snapshot_id} (WAL {self.fingerprint.get('start_lsn')} to "
            f"{self.fingerprint.get('end_lsn')} on timeline {self.fingerprint.get('timeline')}, ended "
            f"{self.fingerprint.get('end_time')})",
            f"recover to:  {point}, then promote",
            f"target:      {self.target.description} (owned by {self.server_user}, mode 0700)",
        ]
        created = "the data directory will be created"
        return [*lines, outcome_line(refused=self.refused, has_data=self.target_has_data, created=created)]


@dataclass
class PointInTimeOutcome:
    """A finished point-in-time restore."""

    plan: PointInTimePlan
    run_id: int
    duration_seconds: float
    replaced: str | None
    recovery: str
    start_command: str
    checks: list[CheckOutcome] = field(default_factory=list)


def describe_utc(moment: datetime) -> str:
    """Return `moment` in UTC, with the time as given beside it when that was in another zone (what a DBA typed
    is checked against what the restore will use)."""
    utc = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    given = moment.isoformat()
    return utc if moment.utcoffset() == timedelta(0) else f"{utc} (given as {given})"


def _ended_before(fingerprint: dict[str, Any], at: datetime | None) -> bool:
    if fingerprint.get("mode") != "physical" or "end_time" not in fingerprint:
        return False
    return at is None or datetime.fromisoformat(str(fingerprint["end_time"])) <= at


def plan_point_in_time(
    context: Context,
    job_name: str,
    to: str,
    *,
    at: datetime | None,
    snapshot_id: str | None = None,
    destination_name: str | None = None,
    force: bool = False,
) -> PointInTimePlan:
    """Return the plan of a point-in-time restore. Raises NotFound when no base backup ended before `at`."""
    job, policy = context.job(job_name)
    assert isinstance(job.store, PostgresqlStoreConfig)
    destination = context.destination(job, destination_name)
    rows = [row for row in context.catalog.snapshots(job.name, destination.name) if row.usable]
    if snapshot_id is not None:
        wanted = snapshot_id
        rows = [row for row in rows if row.snapshot_id.startswith(wanted) or row.original_id.startswith(wanted)]
    candidates = [row for row in rows if _ended_before(row.fingerprint, at)]
    if not candidates:
        when = f" that ended before {at.isoformat()}" if at is not None else ""
        raise NotFound(f"job '{job.name}' has no base backup{when} in '{destination.name}'")
    chosen = max(candidates, key=lambda row: str(row.fingerprint["end_time"]))
    store = context.store(job, policy)
    target = store.named_target(to)
    return PointInTimePlan(
        job.name,
        destination.name,
        chosen.snapshot_id,
        chosen.stored_name,
        dict(chosen.fingerprint),
        target,
        at,
        store.target_has_data(target),
        force,
        job.store.server_user,
    )


def run_point_in_time(context: Context, plan: PointInTimePlan) -> PointInTimeOutcome:
    """Carry out a plan holding the job's lock: unpack the base backup, recover to the target time, stop the server,
    hand over.

    Raises TargetNotEmpty when the plan is refused, JobBusy when another run holds the job, StoreError when the base
    backup cannot be unpacked or recovery fails or (without a target time) ends before the newest WAL file archived
    on the destination (the new data directory is then removed; data moved aside by --force stays where it was
    moved), StorageError when that destination's archive cannot be listed.
    """
    if plan.refused:
        raise TargetNotEmpty(f"{plan.target.description} already holds data; refusing to overwrite it without --force")
    # Under the job's lock for the whole restore: a prune of the job (its WAL retention) waits until the replay
    # no longer needs the base backup's WAL.
    with hold_job(context, plan.job, "restore"):
        return _run_point_in_time(context, plan)


def _run_point_in_time(context: Context, plan: PointInTimePlan) -> PointInTimeOutcome:
    from replica.stores.postgresql_physical import PhysicalPostgresqlStore, strip_recovery_settings

    job, policy = context.job(plan.job)
    destination = context.destination(job, plan.destination)
    store = context.store(job, policy)
    assert isinstance(store, PhysicalPostgresqlStore) and plan.target.path is not None
    repository = context.repository(job, destination)
    path = plan.target.path
    details = {
        "target": plan.target.description,
        "force": plan.force,
        "point_in_time": plan.target_time.isoformat() if plan.target_time else "latest",
    }
    with recorded_run(
        context.catalog,
        job.name,
        "restore",
        destination=destination.name,
        snapshot_id=plan.snapshot_id,
        phase="probe",
        details=details,
    ) as run:
        context.probe(destination)
        started = time.monotonic()
        replaced = None
        if store.target_has_data(plan.target):
            if not plan.force:
                raise TargetNotEmpty(f"{plan.target.description} received data; refusing to replace it without --force")
            aside = path.with_name(f"{path.name}.replaced-{utc_now().strftime('%Y%m%dT%H%M%S')}")
            path.rename(aside)
            replaced = str(aside)
            context.progress(f"      the previous content was moved to {aside}")
        run.phase("restore")
        context.progress(f"[1/3] unpacking base backup {plan.snapshot_id} from '{destination.name}' into {path}")
        store.prepare_data_dir(path)
        # From a copy, that copy's WAL alone: it must restore with the primary down, and must not borrow from it.
        store.restoring_from(destination.name, only=destination.name != job.destinations[0].name)
        checks: list[CheckOutcome] = []
        try:
            restored = restore_snapshot(
                context,
                store,
                repository,
                SnapshotRef(plan.snapshot_id, plan.stored_name),
                plan.target,
                shared_lock=True,
            ).check
            checks.append(restored)
            if not restored.passed:
                raise StoreError(restored.detail)
            run.phase("recover")
            when = describe_utc(plan.target_time) if plan.target_time else "the end of the WAL archive"
            context.progress(f"[2/3] recovering with WAL from '{destination.name}' to {when}")
            recovery_started = time.monotonic()
            # Listed before the recovery starts: what a live source archives during it need not be replayed.
            newest = _newest_archived(context, plan) if plan.target_time is None else None
            server = store.recover(path, plan.fingerprint, plan.target_time)
            said = RECOVERY_STOP.findall(server.log_tail(200))
            recovery = said[-1].strip() if said else "every archived WAL file replayed"
            if plan.target_time is None:
                replayed = store.replayed_lsn(path)
                shortfall = replay_shortfall(replayed, newest, _segment_bytes(plan), plan.destination)
                if shortfall is not None:
                    raise StoreError(shortfall)
                recovery = f"every archived WAL file replayed (to {format_lsn(replayed)})"
            # A data directory handed over must have been shut down cleanly: a failed stop fails the restore.
            store.stop_server(path, strict=True)
            checks.append(CheckOutcome("recovery", True, True, recovery, round(time.monotonic() - recovery_started, 3)))
            context.progress(f"      {recovery}")
        except BaseException as error:
            store.stop_server(path)
            shutil.rmtree(path, ignore_errors=True)
            if isinstance(error, StoreError):
                if checks and checks[-1].passed:
                    checks.append(CheckOutcome("recovery", False, True, str(error)))
                context.catalog.add_checks(run.run_id, checks)
            raise
        context.catalog.add_checks(run.run_id, checks)
        run.phase("hand-over")
        auto = path / "postgresql.auto.conf"
        auto.write_text(strip_recovery_settings(auto.read_text()))
        duration = time.monotonic() - started
        run.details.update(rto_seconds=duration, replaced=replaced, recovered_to=recovery)
    from replica.stores.postgresql_server import server_bin_dir

    bin_dir = server_bin_dir(store.config.bin_dir, plan.fingerprint.get("server_version_num"))
    start = shlex.join(["runuser", "-u", plan.server_user, "--", str(bin_dir / "pg_ctl"), "-D", str(path), "start"])
    context.progress(f"[3/3] recovered and promoted, server stopped cleanly; start it with: {start}")
    return PointInTimeOutcome(plan, run.run_id, duration, replaced, recovery, start, checks)


def _segment_bytes(plan: PointInTimePlan) -> int:
    return int(plan.fingerprint["wal_segment_size"])


def _newest_archived(context: Context, plan: PointInTimePlan) -> NewestSegment | None:
    """Return the newest WAL segment archived on the plan's destination from its base backup on. Raises
    StorageError when that archive cannot be listed."""
    job, _ = context.job(plan.job)
    archive = wal_archive(context, job, context.destination(job, plan.destination))
    segment_bytes = _segment_bytes(plan)
    start = parse_lsn(str(plan.fingerprint["start_lsn"]))
    # Names sort by timeline first: listing after the backup's first segment still lists every later timeline.
    first = Segment(int(plan.fingerprint["timeline"]), max(start // segment_bytes - 1, 0)).name(segment_bytes)
    listed = [(stored.name, stored.stored_at) for stored in archive.stored(first)]
    # The recovery follows the newest timeline (recovery_target_timeline = 'latest'): an abandoned timeline's
    # segments numbered past its switch are never replayed, and must not make the replay look short.
    history = timeline_history(archive, [name for name, _ in listed])
    return newest_segment(listed, segment_bytes, on_path(history, segment_bytes))


def replay_shortfall(replayed: int, newest: NewestSegment | None, segment_bytes: int, destination: str) -> str | None:
    """Return why a recovery without a target time that replayed WAL up to LSN `replayed` stopped short of `newest`,
    the newest segment archived on `destination` when it began (a file in between could not be fetched from any
    destination, and PostgreSQL promoted at the gap); None when it replayed into that segment or past it."""
    if newest is None or (replayed - 1) // segment_bytes >= newest.segment.number:
        return None
    return (
        f"recovery ended at {format_lsn(replayed)}, before {newest.name}, the newest WAL file archived on "
        f"'{destination}': a WAL file in between could not be fetched from any destination; nothing was handed over "
        "(`replica wal-verify JOB` lists the gaps)"
    )


def describe_start(path: Path) -> str:
    """Return the hand-over note printed after a restore."""
    return (
        f"{path} is a promoted cluster on a new timeline with archiving off (archive_mode = 'off', archive_command = "
        "'' last in postgresql.auto.conf); review postgresql.conf, pg_hba.conf "
        "and the port before starting it, and enable archiving (to another job) when it becomes a primary"
    )
