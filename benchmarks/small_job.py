"""Benchmark (issue 7, scenario 5): end-to-end latency of a tiny job, and the restic processes replica starts.

    .venv/bin/python benchmarks/small_job.py [--runs 5] [--rows 1000] [--smoke]

A tiny SQLite store (one table of ROWS rows) protected to two destinations on SeaweedFS. Each restic process
that opens a repository pays ~0.5 s of key derivation before it does anything, so for small jobs the count of
restic processes per action is what decides replica's latency: the table reports it beside the raw pipeline's.

Raw equivalents, written out below:
- backup: `sqlite3 SRC ".backup COPY"`, `restic backup --stdin < COPY`, `restic copy` of that snapshot to the
  second repository (a replica backup always copies to every destination);
- verify: `restic check --no-lock --read-data-subset=10%`, `restic dump SNAPSHOT NAME > FILE`,
  `sqlite3 FILE "PRAGMA integrity_check"` (replica also compares a per-table fingerprint, which costs
  milliseconds at this size).
"""

from __future__ import annotations

import functools
import os
import shlex
import sqlite3
import sys
import time
from pathlib import Path

from harness import Bench, Row, Sample, bench, compare, format_table, standard_arguments

from replica.actions.backup import run_backup
from replica.actions.context import Context
from replica.actions.verify import run_verify
from replica.settings import load_settings

JOB = "tiny"
PRIMARY_BUCKET = "bench-small-primary"
OFFSITE_BUCKET = "bench-small-offsite"
# restic processes the raw pipelines need (the minimum replica can reach without giving up a step).
RAW_PROCESSES = {"backup": 2, "verify": 2}


def create_store(path: Path, rows: int) -> None:
    """Write a SQLite file with one table of `rows` rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount REAL)")
        connection.executemany(
            "INSERT INTO orders (customer, amount) VALUES (?, ?)",
            ((f"customer-{number % 97}", number * 1.25) for number in range(rows)),
        )
    connection.close()


def raw_backup(instance: Bench, store: Path) -> Sample:
    """Run the raw backup pipeline: online copy, restic backup of it, restic copy of the new snapshot."""
    primary = instance.restic_environment(PRIMARY_BUCKET, JOB)
    offsite = instance.restic_environment(OFFSITE_BUCKET, JOB)
    copy = instance.root / "raw-copy.sqlite3"
    # restic 0.14's copy writes into -r/RESTIC_REPOSITORY and reads from RESTIC_FROM_REPOSITORY.
    script = f"""
        rm -f {copy}
        sqlite3 {shlex.quote(str(store))} ".backup {copy}"
        snapshot=$(restic backup --json --host bench --stdin --stdin-filename {JOB}.sqlite3 < {copy} \\
            | grep '"message_type":"summary"' | sed 's/.*"snapshot_id":"\\([0-9a-f]*\\)".*/\\1/')
        RESTIC_FROM_REPOSITORY=$RESTIC_REPOSITORY RESTIC_FROM_PASSWORD_FILE=$RESTIC_PASSWORD_FILE \\
            RESTIC_REPOSITORY={offsite["RESTIC_REPOSITORY"]} restic copy "$snapshot" > /dev/null
        rm -f {copy}
    """
    return instance.shell(script, primary)


def raw_verify(instance: Bench) -> Sample:
    """Run the raw verification: check 10% of the data, dump the newest snapshot, run SQLite's integrity check."""
    primary = instance.restic_environment(PRIMARY_BUCKET, JOB)
    restored = instance.root / "raw-restored.sqlite3"
    script = f"""
        rm -f {restored}
        restic check --no-lock --read-data-subset=10% > /dev/null
        restic dump latest {JOB}.sqlite3 > {restored}
        test "$(sqlite3 {restored} 'PRAGMA integrity_check')" = ok
        rm -f {restored}
    """
    return instance.shell(script, primary)


def in_process(context: Context, action: str) -> Sample:
    """Run one action in this (warm) process, as the daemon does: no start-up, boto3 client already built."""
    started = time.perf_counter()
    if action == "backup":
        outcome = run_backup(context, JOB)
        assert outcome.succeeded, outcome
    else:
        verified = run_verify(context, JOB)
        assert verified.passed, verified.checks
    return Sample(seconds=time.perf_counter() - started)


def main() -> int:
    parser = standard_arguments(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows in the tiny store")
    arguments = parser.parse_args()
    runs = 1 if arguments.smoke else arguments.runs
    rows = 100 if arguments.smoke else arguments.rows
    with bench() as instance:
        store = instance.root / "data" / "shop.sqlite3"
        create_store(store, rows)
        instance.write_job(
            JOB, {"kind": "sqlite", "path": str(store)}, [("primary", PRIMARY_BUCKET), ("offsite", OFFSITE_BUCKET)]
        )
        instance.replica("init", JOB)
        instance.replica("backup", JOB)  # a first snapshot, so the raw verify finds one before replica's runs
        table: list[Row] = []
        processes: dict[str, tuple[str, ...]] = {}
        for action, replica_run, raw_run in (
            ("backup", lambda: instance.replica("backup", JOB), lambda: raw_backup(instance, store)),
            ("verify", lambda: instance.replica("verify", JOB), lambda: raw_verify(instance)),
        ):
            row = compare(f"{action} ({rows} rows)", replica_run, raw_run, runs=runs)
            processes[action] = instance.replica(action, JOB).restic_commands
            table.append(
                Row(
                    **{
                        **row.__dict__,
                        "note": f"restic: replica {' + '.join(processes[action])}; "
                        f"raw {RAW_PROCESSES[action]} processes",
                    }
                )
            )
        status = compare("status (1 job)", lambda: instance.replica("status"), None, runs=runs)
        table.append(status)
        # What the daemon pays per run: the same actions in one warm process (imports and S3 client paid once).
        os.environ.update(instance.replica_environment())
        context = Context(load_settings(), progress=lambda message: None)
        in_process(context, "backup")
        for action, raw_run in (
            ("backup", lambda: raw_backup(instance, store)),
            ("verify", lambda: raw_verify(instance)),
        ):
            row = compare(
                f"{action}, in a warm process (daemon)",
                functools.partial(in_process, context, action),
                raw_run,
                runs=runs,
            )
            table.append(Row(**{**row.__dict__, "note": "run_" + action + "() called in process, no start-up"}))
    print(format_table("Small job: end-to-end latency and restic processes per action", table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
