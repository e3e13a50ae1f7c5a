"""Benchmark (issue 7, scenarios 1 and 2): PostgreSQL backup and verify of a pgbench database vs the raw tools.

    flock /tmp/replica-bench.lock .venv/bin/python benchmarks/postgresql.py [--runs 3] [--scale 70] [--keep]
    .venv/bin/python benchmarks/postgresql.py --smoke

The store is a pgbench database (`pgbench -i -s 70`: ~1 GB on disk, a ~20 MB `pg_dump -Fc`) on the PostgreSQL at
--host/--port as --user, created when missing and dropped at the end unless --keep (a database of another scale
under the same name is re-created). The job protects it to two destinations on SeaweedFS.

Raw equivalents, written out below (same repositories, same stored name, restic started the same way):
- backup, primary phase: `pg_dump -Fc DB | restic backup --stdin --stdin-filename pgbench.pgdump`, against
  replica's backup run as the catalog records it (probe, dump, fingerprint in the same exported snapshot, sidecar,
  catalog rows; start-up and the copy excluded). replica dumps at `--compress=1` (its default), so the same
  pipeline at that level is timed too (untimed for the whole command): what replica adds to the pipeline it runs;
  and once more with the fingerprint's queries run by psql beside it: what replica adds besides its fingerprint.
  Each level's dump is stored once before the measured runs, so every measured backup deduplicates alike;
- backup, copy phase: `restic copy` of that snapshot to the second repository, against replica's copy run;
- backup, whole command: the pipeline, then the copy, against the whole `replica backup` (start-up included);
- verify: `restic check --no-lock --read-data-subset=10%` (replica's default policy reads 10%), `createdb -T
  template0`, `restic dump --no-lock latest /pgbench.pgdump | pg_restore -d NEW --no-owner --no-privileges
  --exit-on-error`, `dropdb`, against the whole `replica verify` (which also checks integrity and compares the
  fingerprint). dropdb is timed on both sides: replica drops its scratch database inside the command;
- verify, restore and data checks: replica's measured RTO (createdb, dump | pg_restore, integrity, fingerprint,
  from the catalog) against the raw createdb + dump | pg_restore alone (restic check and dropdb left out of both);
  "restore alone" takes replica's data checks (`data_checks_seconds`) out of its RTO.
Both verifications read the same snapshot: a last replica backup makes it the newest one.
"""

from __future__ import annotations

import collections
import shlex
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from harness import Bench, Row, Sample, bench, compare, format_table, newest_runs, run_seconds, standard_arguments
from psycopg import sql

from replica.stores.postgresql_fingerprint import digest_queries

JOB = "pgbench"
STORED_NAME = f"/{JOB}.pgdump"
PRIMARY_BUCKET = "bench-pg-primary"
OFFSITE_BUCKET = "bench-pg-offsite"
ACCOUNTS_PER_SCALE = 100_000
BACKUP_TARGET = 1.05
VERIFY_TARGET = 1.10
SMOKE_SCALE = 1
REPLICA_COMPRESSION = 1  # the store's default dump_compression


class Server:
    """The PostgreSQL the benchmark uses: connection settings and argv of the client tools."""

    def __init__(self, host: str, port: int, user: str) -> None:
        self.host, self.port, self.user = host, port, user

    def connect(self, database: str) -> psycopg.Connection[Any]:
        """Return an autocommit connection to `database`."""
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname=database, autocommit=True, connect_timeout=10
        )

    def client(self, program: str) -> str:
        """Return `program` with the connection options, quoted for a shell script."""
        never_prompt = [] if program == "pgbench" else ["--no-password"]
        return shlex.join(
            [program, "--host", self.host, "--port", str(self.port), "--username", self.user, *never_prompt]
        )

    def scale_of(self, database: str) -> int | None:
        """Return the pgbench scale of `database` (None when it does not exist or is not a complete pgbench)."""
        with self.connect("postgres") as connection:
            if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
                return None
        try:
            with self.connect(database) as connection:
                row = connection.execute(
                    "SELECT (SELECT count(*) FROM pgbench_branches), (SELECT count(*) FROM pgbench_accounts)"
                ).fetchone()
        except psycopg.Error:
            return None
        assert row is not None
        branches, accounts = int(row[0]), int(row[1])
        return branches if accounts == branches * ACCOUNTS_PER_SCALE else None

    def drop(self, database: str) -> None:
        """Drop `database` if it exists."""
        with self.connect("postgres") as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))

    def ensure_pgbench(self, database: str, scale: int) -> None:
        """Create `database` with `pgbench -i -s scale` unless it already holds exactly that."""
        if self.scale_of(database) == scale:
            return
        self.drop(database)
        print(f"  creating {database} with pgbench -i -s {scale}", file=sys.stderr)
        script = f"{self.client('createdb')} {shlex.quote(database)} && {self.client('pgbench')} -i -q -s {scale} "
        script += shlex.quote(database)
        completed = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=3600, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"cannot create {database}: {completed.stderr.strip()}")
        with self.connect(database) as connection:
            connection.execute("VACUUM ANALYZE")

    def size_mib(self, database: str) -> float:
        """Return the on-disk size of `database` in MiB."""
        with self.connect(database) as connection:
            row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None
        return int(row[0]) / 2**20


Noted = dict[str, list[float]]
"""Phase times noted during measured runs, by phase name (`primary`, `copy`, `restore`)."""


def note_stamps(stamps: Path, noted: Noted, phases: tuple[str, ...]) -> None:
    """Note the intervals between the shell's timestamps in `stamps` (one more stamp than phases)."""
    times = [float(line) for line in stamps.read_text().split()]
    for phase, started, finished in zip(phases, times[:-1], times[1:], strict=True):
        noted[phase].append(finished - started)


def dump_pipeline(server: Server, database: str, level: int | None) -> str:
    """Return the shell pipeline `pg_dump -Fc [--compress=level] | restic backup --stdin` that echoes the snapshot id
    (level None: pg_dump's default, 6)."""
    compress = "" if level is None else f" --compress={level}"
    return f"""{server.client("pg_dump")} --format=custom{compress} {shlex.quote(database)} \\
            | restic backup --json --host bench --stdin --stdin-filename {STORED_NAME.lstrip("/")} \\
            | grep '"message_type":"summary"' | sed 's/.*"snapshot_id":"\\([0-9a-f]*\\)".*/\\1/'"""


def warm_up_raw(instance: Bench, server: Server, database: str) -> None:
    """Store the default-level dump once untimed: measured raw backups then deduplicate as replica's do."""
    instance.shell(
        dump_pipeline(server, database, None) + " > /dev/null", instance.restic_environment(PRIMARY_BUCKET, JOB)
    )


def digest_script(server: Server, database: str) -> str:
    """Return a psql call that reads every pgbench table with the fingerprint's queries, as replica's backup does
    (in one repeatable-read transaction, its own session settings aside)."""
    with server.connect(database) as connection:
        queries = [table.query.as_string(connection) for table in digest_queries(connection)]
    statements = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", *queries, "COMMIT"]
    return f"{server.client('psql')} --dbname {shlex.quote(database)} -Atq -c {shlex.quote('; '.join(statements))}"


def raw_backup(instance: Bench, server: Server, database: str, noted: Noted) -> Sample:
    """Run pg_dump -Fc | restic backup, then restic copy of its snapshot; note both phases' own times.

    Then, untimed for the whole-command figure, the pipeline once more at replica's compression level (noted as
    phase `same_level`): replica against the very pipeline it runs; and that pipeline with the fingerprint's
    queries beside it (phase `with_digest`): what replica adds on top of its fingerprint's reads.
    """
    primary = instance.restic_environment(PRIMARY_BUCKET, JOB)
    offsite = instance.restic_environment(OFFSITE_BUCKET, JOB)
    stamps = instance.root / "raw-stamps"
    # restic 0.14's copy writes into RESTIC_REPOSITORY and reads from RESTIC_FROM_REPOSITORY.
    script = f"""
        echo $EPOCHREALTIME > {stamps}
        snapshot=$({dump_pipeline(server, database, None)})
        echo $EPOCHREALTIME >> {stamps}
        test -n "$snapshot"
        RESTIC_FROM_REPOSITORY=$RESTIC_REPOSITORY RESTIC_FROM_PASSWORD_FILE=$RESTIC_PASSWORD_FILE \\
            RESTIC_REPOSITORY={offsite["RESTIC_REPOSITORY"]} restic copy "$snapshot" > /dev/null
        echo $EPOCHREALTIME >> {stamps}
        snapshot=$({dump_pipeline(server, database, REPLICA_COMPRESSION)})
        echo $EPOCHREALTIME >> {stamps}
        test -n "$snapshot"
        {digest_script(server, database)} > /dev/null &
        digest=$!
        snapshot=$({dump_pipeline(server, database, REPLICA_COMPRESSION)})
        wait $digest
        echo $EPOCHREALTIME >> {stamps}
        test -n "$snapshot"
    """
    instance.shell(script, primary)
    times = [float(line) for line in stamps.read_text().split()]
    note_stamps(stamps, noted, ("primary", "copy", "same_level", "with_digest"))
    return Sample(seconds=times[2] - times[0])


def raw_verify(instance: Bench, server: Server, noted: Noted) -> Sample:
    """Run restic check (10%), createdb, restic dump | pg_restore, dropdb; note createdb + restore's own time."""
    primary = instance.restic_environment(PRIMARY_BUCKET, JOB)
    scratch = "replica_bench_raw_verify"
    stamps = instance.root / "raw-stamps"
    script = f"""
        {server.client("dropdb")} --if-exists {scratch}
        restic check --no-lock --read-data-subset=10% > /dev/null
        echo $EPOCHREALTIME > {stamps}
        {server.client("createdb")} -T template0 {scratch}
        restic dump --no-lock latest {STORED_NAME} \\
            | {server.client("pg_restore")} --dbname {scratch} --no-owner --no-privileges --exit-on-error
        echo $EPOCHREALTIME >> {stamps}
        {server.client("dropdb")} {scratch}
    """
    sample = instance.shell(script, primary)
    note_stamps(stamps, noted, ("restore",))
    return sample


def replica_backup(instance: Bench, noted: Noted) -> Sample:
    """Run `replica backup`; note its backup run (the primary phase) and copy run from the catalog, untimed."""
    sample = instance.replica("backup", JOB)
    runs = newest_runs(instance, JOB)
    noted["primary"].append(run_seconds(runs["backup"]))
    noted["copy"].append(run_seconds(runs["copy"]))
    return sample


def replica_verify(instance: Bench, noted: Noted) -> Sample:
    """Run `replica verify`; note its measured RTO (restore and data checks) from the catalog, untimed."""
    sample = instance.replica("verify", JOB)
    details = newest_runs(instance, JOB)["verify"]["details"]
    noted["restore"].append(float(details["rto_seconds"]))
    noted["restore_only"].append(float(details["rto_seconds"]) - float(details["data_checks_seconds"]))
    return sample


def phase_row(
    scenario: str, replica: list[float], raw: list[float], whole: Row, note: str, target: float | None
) -> Row:
    """Return a row of the medians of a phase's times on each side, noted during the runs of `whole`."""
    return Row(
        scenario=scenario,
        replica_seconds=statistics.median(replica),
        raw_seconds=statistics.median(raw),
        rss_mib=whole.rss_mib,
        restic_processes=None,
        runs=whole.runs,
        note=note,
        target=target,
    )


def main() -> int:
    parser = standard_arguments(__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70: ~1 GB on disk)")
    parser.add_argument("--database", default="replica_bench_pg", help="database to create and back up")
    parser.add_argument("--keep", action="store_true", help="keep the database for the next run")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    arguments = parser.parse_args()
    runs = 1 if arguments.smoke else arguments.runs
    scale = SMOKE_SCALE if arguments.smoke else arguments.scale
    database = f"{arguments.database}_smoke" if arguments.smoke else arguments.database
    server = Server(arguments.host, arguments.port, arguments.user)
    server.ensure_pgbench(database, scale)
    try:
        size = f"{server.size_mib(database):.0f} MB pgbench, scale {scale}"
        with bench() as instance:
            store = {
                "kind": "postgresql",
                "host": server.host,
                "port": server.port,
                "user": server.user,
                "database": database,
            }
            instance.write_job(JOB, store, [("primary", PRIMARY_BUCKET), ("offsite", OFFSITE_BUCKET)])
            instance.replica("init", JOB)
            if not arguments.smoke:
                # The first backup adds every byte; the measured ones deduplicate (the raw side's likewise).
                instance.replica("backup", JOB)
                warm_up_raw(instance, server, database)
            replica_noted: Noted = collections.defaultdict(list)
            raw_noted: Noted = collections.defaultdict(list)
            backup = compare(
                f"backup, whole command ({size})",
                lambda: replica_backup(instance, replica_noted),
                lambda: raw_backup(instance, server, database, raw_noted),
                runs=runs,
                target=BACKUP_TARGET,
                note="replica backup (start-up, backup run, copy run) vs pg_dump -Fc into restic backup; restic copy",
            )
            primary = phase_row(
                "backup, primary phase",
                replica_noted["primary"],
                raw_noted["primary"],
                backup,
                "replica's backup run (probe, dump, fingerprint, sidecar, catalog) vs pg_dump -Fc into restic",
                BACKUP_TARGET,
            )
            same_level = phase_row(
                f"backup, primary phase vs the same pipeline (--compress={REPLICA_COMPRESSION})",
                replica_noted["primary"],
                raw_noted["same_level"],
                backup,
                "what replica adds to the pipeline it runs: the fingerprint, the probe, the sidecar, the catalog",
                None,
            )
            with_digest = phase_row(
                "backup, primary phase vs the same pipeline with the fingerprint's queries beside it",
                replica_noted["primary"],
                raw_noted["with_digest"],
                backup,
                "what replica adds besides its fingerprint's reads: the probe, the sidecar, the catalog",
                None,
            )
            copy = phase_row(
                "backup, copy phase",
                replica_noted["copy"],
                raw_noted["copy"],
                backup,
                "replica's copy run (probe, restic copy, sidecar, catalog) vs restic copy",
                None,
            )
            instance.replica("backup", JOB)  # replica's snapshot is now the newest: both sides verify it
            verify = compare(
                "verify, whole command",
                lambda: replica_verify(instance, replica_noted),
                lambda: raw_verify(instance, server, raw_noted),
                runs=runs,
                target=VERIFY_TARGET,
                note="replica verify vs restic check 10%, createdb, restic dump into pg_restore, dropdb",
            )
            restore = phase_row(
                "verify, restore + data checks",
                replica_noted["restore"],
                raw_noted["restore"],
                verify,
                "replica's RTO (createdb, restore, integrity, fingerprint) vs createdb, restic dump into pg_restore",
                VERIFY_TARGET,
            )
            restore_only = phase_row(
                "verify, restore alone",
                replica_noted["restore_only"],
                raw_noted["restore"],
                verify,
                "replica's RTO minus its data checks (integrity, fingerprint) vs createdb, restic dump into pg_restore",
                None,
            )
    finally:
        if not arguments.keep:
            server.drop(database)
    print(
        format_table(
            "PostgreSQL: backup and verify vs pg_dump | restic and restic dump | pg_restore",
            [primary, same_level, with_digest, copy, backup, restore, restore_only, verify],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
