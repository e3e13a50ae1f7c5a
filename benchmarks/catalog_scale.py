"""Benchmark (issue 7, scenario 7): `replica status` and `replica runs --json --job X` on a big catalog.

    .venv/bin/python benchmarks/catalog_scale.py [--jobs 10000] [--catalog-runs 1000000]
        [--catalog sqlite|postgresql|both] [--runs 3] [--smoke] [--keep DIR]

Writes JOBS job files (directory stores, two destinations each, as `daemon_scheduling.py` does) and a catalog
holding CATALOG_RUNS runs spread over them, as replica's daemon would have left it after a week or two of every
job backing up every 4 hours: per cycle a backup to the primary, its copy to the offsite destination, a
verification of the primary every other cycle and of the offsite every fourth, a prune of both every sixth
(retention keeps 14 snapshots per destination, the others are marked pruned), a trigger skipped now and then;
about 2% of backups, 1% of copies and 1.5% of verifications fail, some are interrupted or abandoned, a few jobs
have a backup running right now (this process is its live "daemon") and a few one left `running` by a dead pid.
The snapshots rows (with a directory fingerprint) and the check results a verification writes come with them.
Rows go in through the catalog's own tables (opened and migrated by `open_catalog`): SQLAlchemy Core executemany
in batches on SQLite, COPY on PostgreSQL (then VACUUM ANALYZE, as autovacuum would). The verification log's events are
not generated: neither command reads them.

Then the real CLI is timed (start-up included) through the probe on a bench without S3: its endpoint is a closed
port, so a command that tried to reach S3 would fail. There is no raw pipeline: the table shows replica's median
against an absolute target of 1 s per command. PostgreSQL: a database `replica_bench_catalog` on
127.0.0.1:5432 (trust auth for `postgres`), created and dropped by the script.

`--keep DIR` keeps each bench in DIR/sqlite and DIR/postgresql (and the database) and reuses them on the next run
with the same shape, as long as the catalog still holds the rows counted after filling it (a run without --keep drops
the database): filling takes minutes. A reused catalog ages: its newest runs drift into the past, and the
backups that stood for "running now" belong to a process that has ended (they show as abandoned).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import multiprocessing
import os
import random
import shutil
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from harness import Bench, Row, catalog_bench, compare, format_table, standard_arguments
from sqlalchemy import insert, text
from sqlalchemy.exc import SQLAlchemyError

from replica.catalog.database import open_catalog
from replica.catalog.models import CheckResult, Run, Snapshot

POSTGRESQL_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
POSTGRESQL_DATABASE = "replica_bench_catalog"
POSTGRESQL_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{POSTGRESQL_DATABASE}"
# Written in a kept bench (--keep) once its catalog is filled: the shape it was filled with, and the rows it then held.
FILLED_MARKER = "filled.json"
TARGET_SECONDS = 1.0
CYCLE = timedelta(hours=4)
KEEP_SNAPSHOTS = 14  # per destination, as the retention of these jobs would keep
BATCH_RUNS = 50_000
DESTINATIONS = ("primary", "offsite")
STORED_NAME = "/srv/data"
SAMPLE_FILES = 8
CHECK_NAMES = ("repository", "restore", "integrity", "fingerprint")
RUN_COLUMNS = tuple(column.name for column in Run.__table__.columns)
SNAPSHOT_COLUMNS = tuple(column.name for column in Snapshot.__table__.columns)
CHECK_COLUMNS = tuple(column.name for column in CheckResult.__table__.columns)


def job_name(number: int) -> str:
    """Return the name of job `number` (sorted names follow the numbers)."""
    return f"job-{number:05d}"


def write_jobs(instance: Bench, jobs: int) -> None:
    """Write `jobs` job files like daemon_scheduling.py's: a directory store, a primary and an offsite."""
    for number in range(jobs):
        name = job_name(number)
        instance.write_job(
            name,
            {"kind": "directory", "path": STORED_NAME},
            [("primary", "bench-primary"), ("offsite", "bench-offsite")],
        )


# The history of one job ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cycle:
    """What happens to a job in one cycle (drawn before any row is written, so run counts are known)."""

    backup: str  # succeeded | failed | interrupted | abandoned | running | dead (running, its pid gone)
    copy: str | None
    verifies: tuple[tuple[str, str], ...]  # (destination, outcome)
    prune: bool
    skipped: int

    @property
    def runs(self) -> int:
        """Return how many runs this cycle writes."""
        if self.backup == "skipped-only":
            return self.skipped
        return 1 + (self.copy is not None) + len(self.verifies) + 2 * self.prune + self.skipped


def _outcome(rng: random.Random, failed: float) -> str:
    return "failed" if rng.random() < failed else "succeeded"


def draw_history(rng: random.Random, number: int, budget: int, live: bool) -> list[Cycle]:
    """Return a job's cycles, oldest first, whose runs (plus its two init runs) add up to exactly `budget`."""
    cycles: list[Cycle] = []
    left = budget - 2
    index = 0
    while left > 0:
        newest = index == 0
        draw = rng.random()
        if newest and live:
            # This process stands for the daemon running the backup now; a dead pid makes an abandoned run.
            backup = "running" if number % 2 else "dead"
        elif draw < 0.02:
            backup = "failed"
        elif draw < 0.023:
            backup = "interrupted"
        elif draw < 0.024:
            backup = "abandoned"
        else:
            backup = "succeeded"
        copy = _outcome(rng, 0.01) if backup == "succeeded" else None
        verifies: list[tuple[str, str]] = []
        if backup not in ("running", "dead"):  # the newest cycle of a live job: its backup is still running
            if (index + number) % 2 == 0:
                verifies.append(("primary", _outcome(rng, 0.015)))
            if (index + number) % 4 == 0:
                verifies.append(("offsite", _outcome(rng, 0.015)))
        busy = backup in ("running", "dead")
        prune = (index + number) % 6 == 5 and not newest
        cycle = Cycle(backup, copy, tuple(verifies), prune, int(not busy and rng.random() < 0.02))
        if cycle.runs > left:  # the oldest cycle: skipped triggers fill the budget exactly
            cycle = Cycle("skipped-only", None, (), False, left)
        cycles.append(cycle)
        left -= cycle.runs
        index += 1
    cycles.reverse()
    return cycles


@dataclass
class JobState:
    """A job's catalog as the generation goes: its unpruned snapshot rows per destination, newest last."""

    number: int
    name: str
    offset: timedelta
    cycles: list[Cycle]
    first_slot: int
    snapshots: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {d: [] for d in DESTINATIONS})
    counter: int = 0


@dataclass
class Batches:
    """Rows waiting to be written, in the order foreign keys need: runs, then snapshots and checks."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)


class History:
    """Generates the rows of every job's history in time order, ids increasing as replica would assign them."""

    def __init__(self, jobs: int, total_runs: int, now: datetime, daemon_pid: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.host = socket.gethostname()
        self.actor = f"daemon@{self.host}"
        self.daemon_pid = daemon_pid  # alive while the commands are measured
        self.dead_pid = _dead_pid()
        base, extra = divmod(total_runs, jobs)
        budgets = [base + (1 if number < extra else 0) for number in range(jobs)]
        # Older and newer jobs: budgets vary around the mean (pairs keep the total exact).
        for number in range(0, jobs - 1, 2):
            shift = self.rng.randint(0, max(base // 2 - 3, 0))
            budgets[number] += shift
            budgets[number + 1] -= shift
        histories = [draw_history(self.rng, n, max(budgets[n], 3), n % 97 == 3) for n in range(jobs)]
        self.slots = max(len(cycles) for cycles in histories)
        margin = timedelta(minutes=45)  # the newest cycle's runs all end before `now`
        self.jobs = [
            JobState(
                n,
                job_name(n),
                timedelta(seconds=self.rng.uniform(0, (CYCLE - margin).total_seconds())),
                cycles,
                self.slots - len(cycles),
            )
            for n, cycles in enumerate(histories)
        ]
        self.jobs.sort(key=lambda state: state.offset)
        self.next_id = {"runs": 1, "snapshots": 1, "check_results": 1}
        self.runs_written = 0

    def _id(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] += 1
        return value

    def batches(self) -> Iterator[Batches]:
        """Yield batches of rows, oldest first; the last one holds the snapshots never pruned."""
        batch = Batches()
        for slot in range(self.slots):
            for state in self.jobs:
                index = slot - state.first_slot
                if index < 0:
                    continue
                start = self.now - (self.slots - slot) * CYCLE + state.offset
                if index == 0:
                    for destination in DESTINATIONS:
                        self._init(batch, state, destination, start - timedelta(minutes=5))
                self._cycle(batch, state, state.cycles[index], start)
                if len(batch.runs) >= BATCH_RUNS:
                    yield batch
                    batch = Batches()
        for state in self.jobs:
            for rows in state.snapshots.values():
                batch.snapshots.extend(rows)
        yield batch

    # One cycle ---------------------------------------------------------------------------------------------------

    def _run(
        self,
        batch: Batches,
        state: JobState,
        kind: str,
        destination: str | None,
        status: str,
        phase: str,
        started: datetime,
        seconds: float,
        **fields: Any,
    ) -> dict[str, Any]:
        running = status == "running"
        row = {
            "id": self._id("runs"),
            "job": state.name,
            "kind": kind,
            "destination": destination,
            "status": status,
            "phase": phase,
            "error": fields.pop("error", None),
            "started_at": started,
            "finished_at": None if running else started + timedelta(seconds=seconds),
            "host": self.host,
            "pid": fields.pop("pid", self.daemon_pid),
            "actor": self.actor,
            "parent_run_id": fields.pop("parent_run_id", None),
            "snapshot_id": fields.pop("snapshot_id", None),
            "details": fields.pop("details", {}),
        }
        assert not fields, fields
        batch.runs.append(row)
        self.runs_written += 1
        return row

    def _init(self, batch: Batches, state: JobState, destination: str, started: datetime) -> None:
        self._run(batch, state, "init", destination, "succeeded", "init", started, 2.8, details={"created": True})

    def _cycle(self, batch: Batches, state: JobState, cycle: Cycle, start: datetime) -> None:
        rng = self.rng
        moment = start
        if cycle.backup == "skipped-only":
            for number in range(cycle.skipped):
                self._skipped(batch, state, "verify", moment + timedelta(minutes=number))
            return
        backup = self._backup(batch, state, cycle.backup, moment)
        if backup["finished_at"] is None:
            return
        moment = backup["finished_at"] + timedelta(seconds=1)
        if cycle.copy is not None:
            copy = self._copy(batch, state, backup, cycle.copy, moment)
            moment = copy["finished_at"] + timedelta(seconds=2)
        for destination, outcome in cycle.verifies:
            verify = self._verify(batch, state, destination, outcome, moment)
            moment = verify["finished_at"] + timedelta(seconds=2)
        if cycle.skipped:
            self._skipped(batch, state, "verify", start + timedelta(seconds=rng.uniform(5, 30)))
        if cycle.prune:
            for destination in DESTINATIONS:
                prune = self._prune(batch, state, destination, moment)
                moment = prune["finished_at"] + timedelta(seconds=1)

    def _skipped(self, batch: Batches, state: JobState, kind: str, moment: datetime) -> None:
        reason = f"job '{state.name}' is busy: the previous backup is still running (trigger coalesced)"
        self._run(batch, state, kind, None, "skipped", "not started", moment, 0.0, error=reason)

    def _backup(self, batch: Batches, state: JobState, outcome: str, moment: datetime) -> dict[str, Any]:
        rng = self.rng
        seconds = rng.uniform(40, 400)
        if outcome in ("running", "dead"):
            pid = self.daemon_pid if outcome == "running" else self.dead_pid
            return self._run(batch, state, "backup", "primary", "running", "backup", moment, 0, pid=pid)
        if outcome == "failed":
            error = "restic backup failed (exit 1): Fatal: unable to save snapshot: connection reset by peer"
            return self._run(batch, state, "backup", "primary", "failed", "backup", moment, seconds, error=error)
        if outcome == "interrupted":
            return self._run(
                batch, state, "backup", "primary", "interrupted", "backup", moment, seconds, error="interrupted"
            )
        if outcome == "abandoned":
            error = f"process {self.dead_pid} on {self.host} died while the run was in phase 'backup'"
            return self._run(batch, state, "backup", "primary", "abandoned", "backup", moment, seconds, error=error)
        state.counter += 1
        snapshot_id = _short_id(state.number, state.counter)
        processed = rng.randint(200_000_000, 2_000_000_000)
        added = rng.randint(1_000_000, processed // 20)
        details = {"bytes_processed": processed, "bytes_added": added, "restic_seconds": round(seconds * 0.9, 6)}
        row = self._run(
            batch,
            state,
            "backup",
            "primary",
            "succeeded",
            "record",
            moment,
            seconds,
            snapshot_id=snapshot_id,
            details=details,
        )
        fingerprint = {
            "files": SAMPLE_FILES,
            "bytes": processed,
            "sample": {f"data/file-{n}.bin": f"{rng.getrandbits(256):064x}" for n in range(SAMPLE_FILES)},
        }
        self._snapshot(state, "primary", snapshot_id, snapshot_id, row, processed, added, fingerprint)
        return row

    def _copy(
        self, batch: Batches, state: JobState, backup: dict[str, Any], outcome: str, moment: datetime
    ) -> dict[str, Any]:
        seconds = self.rng.uniform(20, 200)
        if outcome == "failed":
            error = "restic copy failed (exit 1): Fatal: unable to open repository: connection refused"
            return self._run(
                batch,
                state,
                "copy",
                "offsite",
                "failed",
                "copy",
                moment,
                seconds,
                error=error,
                parent_run_id=backup["id"],
            )
        state.counter += 1
        snapshot_id = _short_id(state.number, state.counter)
        original = backup["snapshot_id"]
        row = self._run(
            batch,
            state,
            "copy",
            "offsite",
            "succeeded",
            "record",
            moment,
            seconds,
            parent_run_id=backup["id"],
            snapshot_id=snapshot_id,
            details={"original_snapshot_id": original},
        )
        primary = state.snapshots["primary"][-1]
        self._snapshot(state, "offsite", snapshot_id, original, backup, 0, 0, primary["fingerprint"], row)
        return row

    def _snapshot(
        self,
        state: JobState,
        destination: str,
        snapshot_id: str,
        original_id: str,
        backup: dict[str, Any],
        processed: int,
        added: int,
        fingerprint: dict[str, Any],
        recorded_by: dict[str, Any] | None = None,
    ) -> None:
        state.snapshots[destination].append(
            {
                "id": self._id("snapshots"),
                "job": state.name,
                "destination": destination,
                "snapshot_id": snapshot_id,
                "original_id": original_id,
                "backup_run_id": backup["id"],
                "taken_at": backup["started_at"] + timedelta(seconds=2),
                "bytes_processed": processed,
                "bytes_added": added,
                "stored_name": STORED_NAME,
                "fingerprint": fingerprint,
                "usable": True,
                "created_at": (recorded_by or backup)["finished_at"] - timedelta(milliseconds=5),
                "pruned_at": None,
                "prune_run_id": None,
            }
        )

    def _verify(
        self, batch: Batches, state: JobState, destination: str, outcome: str, moment: datetime
    ) -> dict[str, Any]:
        if not state.snapshots[destination]:
            # What run-due and the daemon record when the verification cannot start (scheduled.py).
            error = (
                f"job '{state.name}' has no recorded snapshot in destination '{destination}'; "
                f"run 'replica backup {state.name}' first"
            )
            return self._run(batch, state, "verify", None, "failed", "start", moment, 0.01, error=error)
        rng = self.rng
        snapshot = state.snapshots[destination][-1]
        seconds = rng.uniform(60, 600)
        rto = round(seconds * 0.6, 6)
        passed = outcome == "succeeded"
        details = {"rto_seconds": rto if passed else None, "checks_total": 4, "checks_failed": 0 if passed else 1}
        run = self._run(
            batch,
            state,
            "verify",
            destination,
            outcome,
            "check-data",
            moment,
            seconds,
            snapshot_id=snapshot["snapshot_id"],
            details=details,
            error=None if passed else "critical checks failed: fingerprint",
        )
        size = snapshot["fingerprint"]["bytes"]
        details_of_checks = (
            "structure and 10% of pack data read back without errors",
            f"snapshot {snapshot['snapshot_id']} restored in {rto:.1f}s",
            f"{SAMPLE_FILES} files restored and readable",
            f"{SAMPLE_FILES} files, {size} bytes and {SAMPLE_FILES} sampled digests match the backup"
            if passed
            else f"sampled content: 1 of {SAMPLE_FILES} files differ, e.g. data/file-3.bin",
        )
        for number, (name, detail) in enumerate(zip(CHECK_NAMES, details_of_checks, strict=True)):
            batch.checks.append(
                {
                    "id": self._id("check_results"),
                    "run_id": run["id"],
                    "name": name,
                    "passed": passed or number < 3,
                    "critical": True,
                    "detail": detail,
                    "duration_seconds": seconds * 0.3 if number == 0 else (rto if number == 1 else 0.0),
                }
            )
        return run

    def _prune(self, batch: Batches, state: JobState, destination: str, moment: datetime) -> dict[str, Any]:
        rows = state.snapshots[destination]
        removed, kept = rows[:-KEEP_SNAPSHOTS], rows[-KEEP_SNAPSHOTS:]
        removed_ids = [row["snapshot_id"] for row in removed]
        details = {"kept": len(kept), "removed": len(removed), "removed_ids": removed_ids}
        phase = "forget" if removed else "decide"
        run = self._run(
            batch, state, "prune", destination, "succeeded", phase, moment, self.rng.uniform(10, 60), details=details
        )
        for row in removed:
            row["pruned_at"], row["prune_run_id"] = run["finished_at"], run["id"]
        batch.snapshots.extend(removed)
        state.snapshots[destination] = kept
        return run


def _short_id(job_number: int, counter: int) -> str:
    """Return a restic-like short id, unique within a job (an odd multiplier is a bijection modulo 2**32)."""
    return f"{((job_number * 1_000_003 + counter) * 2_654_435_761) % 2**32:08x}"


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


# Writing the rows ------------------------------------------------------------------------------------------------


def fill_sqlite(url: str, history: History) -> None:
    """Write the history through the catalog's tables with SQLAlchemy Core executemany."""
    engine = open_catalog(url).kw["bind"]
    tables: tuple[tuple[Any, str], ...] = (
        (Run.__table__, "runs"),
        (Snapshot.__table__, "snapshots"),
        (CheckResult.__table__, "checks"),
    )
    for batch in history.batches():
        with engine.begin() as connection:
            for table, name in tables:
                rows = getattr(batch, name)
                if rows:
                    connection.execute(insert(table), rows)
        _progress(history)
    engine.dispose()


def fill_postgresql(url: str, history: History) -> None:
    """Write the history with COPY into the tables `open_catalog` created, then advance their id sequences."""
    engine = open_catalog(url).kw["bind"]
    engine.dispose()
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={POSTGRESQL_DATABASE}") as connection:
        for batch in history.batches():
            with connection.cursor() as cursor:
                _copy(cursor, "runs", RUN_COLUMNS, batch.runs, ("details",))
                _copy(cursor, "snapshots", SNAPSHOT_COLUMNS, batch.snapshots, ("fingerprint",))
                _copy(cursor, "check_results", CHECK_COLUMNS, batch.checks, ())
            connection.commit()
            _progress(history)
        for table in ("runs", "snapshots", "check_results"):
            connection.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE")  # what autovacuum does within minutes of such a load


def _copy(
    cursor: psycopg.Cursor[Any],
    table: str,
    columns: Sequence[str],
    rows: Sequence[dict[str, Any]],
    json_columns: Sequence[str],
) -> None:
    if not rows:
        return
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            values = dict(row)
            for name in json_columns:
                values[name] = json.dumps(values[name])  # what SQLAlchemy's JSON type stores
            # A column the history does not set (`failure`, `slot`) takes its default, None, as in fill_sqlite.
            copy.write_row([values.get(name) for name in columns])


def _progress(history: History) -> None:
    print(f"  catalog: {history.runs_written:,} runs written", file=sys.stderr, end="\r")


def fill_in_child(backend: str, url: str, jobs: int, total_runs: int) -> None:
    """Generate and write the catalog in a child process, which then exits.

    The generator holds ~1 GB at 10,000 jobs. Kept in this process, it would show as the peak RSS of every measured
    command: Linux carries a parent's high-water mark into a child that `exec`s from a vfork (getrusage).
    """
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_fill, args=(backend, url, jobs, total_runs, os.getpid()))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"filling the {backend} catalog failed (exit {child.exitcode})")


def _fill(backend: str, url: str, jobs: int, total_runs: int, daemon_pid: int) -> None:
    history = History(jobs, total_runs, datetime.now(UTC), daemon_pid)
    (fill_sqlite if backend == "sqlite" else fill_postgresql)(url, history)


def create_postgresql_database() -> None:
    """(Re)create the bench database (its catalog URL: POSTGRESQL_URL)."""
    with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{POSTGRESQL_DATABASE}"')
        admin.execute(f'CREATE DATABASE "{POSTGRESQL_DATABASE}"')


def drop_postgresql_database() -> None:
    """Drop the bench database."""
    with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{POSTGRESQL_DATABASE}" WITH (FORCE)')


def bench_catalog_url(backend: str, root: Path) -> str:
    """Return the URL of the catalog of the bench in `root`: a SQLite file in it, or the one PostgreSQL database."""
    return f"sqlite:///{root / 'state' / 'catalog.sqlite3'}" if backend == "sqlite" else POSTGRESQL_URL


def catalog_counts(url: str) -> dict[str, int]:
    """Return the row counts of the catalog at `url`. Raises SQLAlchemyError when it cannot be read."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.connect() as connection:
        counts = {
            table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("runs", "snapshots", "check_results")
        }
        counts["unpruned snapshots"] = int(
            connection.execute(text("SELECT count(*) FROM snapshots WHERE pruned_at IS NULL")).scalar_one()
        )
    engine.dispose()
    return counts


def measure(instance: Bench, backend: str, arguments: Any, job: str) -> list[Row]:
    """Time the commands on the bench's catalog; return their rows (target: 1 s each)."""
    commands = {
        "status": ("status",),
        "status --json": ("status", "--json"),
        f"runs --json --job {job}": ("runs", "--json", "--job", job),
    }
    rows = []
    for label, command in commands.items():
        # The first run warms the page cache (and any cache of replica's): reported apart, steady state measured.
        first = instance.replica(*command)
        row = compare(f"{backend}: {label}", functools.partial(instance.replica, *command), None, runs=arguments.runs)
        rows.append(dataclasses.replace(row, target_seconds=TARGET_SECONDS, note=f"first run {first.seconds:.2f} s"))
    return rows


def mark_filled(keep: Path, shape: dict[str, int], counts: dict[str, int]) -> None:
    """Record in the kept bench `keep` that its catalog was filled with `shape` and then held `counts` rows."""
    (keep / FILLED_MARKER).write_text(json.dumps({"shape": shape, "counts": counts}))


def kept_bench_is_filled(keep: Path, shape: dict[str, int], url: str) -> bool:
    """Return True when the bench kept in `keep` was filled with `shape` and its catalog at `url` still holds the
    rows it held then.

    Its marker alone does not tell: the PostgreSQL database has one fixed name, which a run without --keep drops
    (after filling it with its own shape) whatever a kept bench's marker says.
    """
    try:
        filled = json.loads((keep / FILLED_MARKER).read_text())
    except (OSError, ValueError):
        return False  # never filled, or a fill cut short
    if not isinstance(filled, dict) or filled.get("shape") != shape:
        return False  # another shape, or a marker of an older script (the shape alone)
    try:
        return catalog_counts(url) == filled.get("counts")
    except SQLAlchemyError:
        return False  # the database dropped, or its tables


def fill_bench(instance: Bench, backend: str, url: str, arguments: Any) -> tuple[str, dict[str, int]]:
    """Write the job files and fill the catalog at `url` (a PostgreSQL one created afresh); return what was done
    and the catalog's row counts.

    Raises RuntimeError when the filling fails.
    """
    started = time.perf_counter()
    write_jobs(instance, arguments.jobs)
    written = time.perf_counter() - started
    if backend == "postgresql":
        create_postgresql_database()
    started = time.perf_counter()
    fill_in_child(backend, url, arguments.jobs, arguments.catalog_runs)
    filled = time.perf_counter() - started
    counts = catalog_counts(url)
    assert counts["runs"] == arguments.catalog_runs, counts
    note = (
        f"{backend}: {arguments.jobs:,} job files written in {written:.1f} s; catalog filled in "
        f"{filled:.1f} s: " + ", ".join(f"{count:,} {name}" for name, count in counts.items())
    )
    return note, counts


def main() -> int:
    parser = standard_arguments(__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--catalog-runs", type=int, default=1_000_000, help="runs in the catalog, over every job")
    parser.add_argument("--catalog", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the bench (job files, SQLite catalog, the PostgreSQL database) in DIR and reuse what an earlier "
        "run with the same --jobs and --catalog-runs left there, instead of filling it again",
    )
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.jobs, arguments.catalog_runs, arguments.runs = 50, 5_000, 1
    backends = ["sqlite", "postgresql"] if arguments.catalog == "both" else [arguments.catalog]
    job = job_name(arguments.jobs // 2)
    rows: list[Row] = []
    notes: list[str] = []
    for backend in backends:
        keep = arguments.keep / backend if arguments.keep else None
        shape = {"jobs": arguments.jobs, "catalog_runs": arguments.catalog_runs}
        reuse = keep is not None and kept_bench_is_filled(keep, shape, bench_catalog_url(backend, keep))
        if keep is not None and not reuse:
            shutil.rmtree(keep, ignore_errors=True)  # not filled as asked, or its catalog gone since: filled afresh
        with catalog_bench(keep=keep) as instance:
            url = bench_catalog_url(backend, instance.root)
            instance.extra_environment["REPLICA_CATALOG_URL"] = url
            try:
                if reuse:
                    notes.append(f"{backend}: the catalog and job files kept in {keep} from an earlier run")
                else:
                    note, counts = fill_bench(instance, backend, url, arguments)
                    notes.append(note)
                    if keep is not None:
                        mark_filled(keep, shape, counts)
                print(f"\n  {notes[-1]}", file=sys.stderr)
                rows += measure(instance, backend, arguments, job)
            finally:
                if backend == "postgresql" and keep is None:
                    drop_postgresql_database()
    print(format_table(f"Catalog scale: {arguments.jobs:,} jobs, {arguments.catalog_runs:,} runs", rows))
    print()
    print("\n".join(f"- {note}" for note in notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
