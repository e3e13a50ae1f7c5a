"""The `postgresql` store: `pg_dump -Fc` streamed into restic, restored with `pg_restore` into a scratch database.

The fingerprint (row count and an order-independent content digest per table, `postgresql_fingerprint.py`) is
computed in the same snapshot as the dump: replica opens a repeatable-read transaction, exports its snapshot, and
runs `pg_dump --snapshot` while it reads every table in that transaction. A verified restore is therefore compared
exactly.

The dump is compressed at zlib level 1 unless the job says otherwise (`dump_compression`): on a 1 GB pgbench
database that dump is 2% larger than at pg_dump's default level 6 and costs half of pg_dump's CPU, which the
fingerprint's reads want on the same cores.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from replica.catalog.records import CheckOutcome
from replica.config.models import PostgresqlStoreConfig, VerificationConfig
from replica.errors import StoreError, UsageError, last_meaningful_line
from replica.execute import Command, Completed
from replica.secrets import store_password
from replica.stores.base import (
    CANARY_NAME,
    BackupSource,
    Canary,
    Fingerprint,
    PreparedBackup,
    RestoreMethod,
    Store,
    Target,
    first_column,
    source_error,
)
from replica.stores.databases import database_name, temporary_database
from replica.stores.postgresql_fingerprint import fingerprint_connection
from replica.stores.tables import compare_tables

CONNECT_TIMEOUT_SECONDS = 10
PROTECTED_DATABASES = frozenset({"postgres", "template0", "template1"})
LOCK_WAIT_MILLISECONDS = 5 * 60 * 1000
MAINTENANCE_DATABASE = "postgres"
DATABASE_NAME_LIMIT = 63
CANARIES_KEPT = 100


class PostgresqlStore(Store):
    """One PostgreSQL database."""

    kind = "postgresql"

    def __init__(self, config: PostgresqlStoreConfig) -> None:
        self.config = config

    def describe(self) -> str:
        return f"postgresql database '{self.config.database}' on {self.config.host}:{self.config.port}"

    # Connections and processes ---------------------------------------------------------------------------------

    def _password(self) -> str | None:
        return store_password(self.config, self.describe())

    def _environment(self) -> dict[str, str]:
        password = self._password()
        return {"PGPASSWORD": password} if password else {}

    def _connect(self, database: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                host=self.config.host,
                port=self.config.port,
                user=self.config.user,
                dbname=database,
                password=self._password(),
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                autocommit=autocommit,
                application_name="replica",
            )
        except psycopg.Error as error:
            # libpq's "connection to server at ... failed: Connection refused" is followed by a hint line.
            lines = [line.strip() for line in str(error).strip().splitlines()]
            failed = [line for line in lines if "failed:" in line]
            reason = (failed or lines or [type(error).__name__])[-1]
            raise source_error(
                f"postgresql database '{database}' on {self.config.host}:{self.config.port}: cannot connect: {reason}",
                str(error),
            ) from None

    def _server_argv(self, program: str) -> list[str]:
        """Return `program` with the options that reach the server as the job's role (the password by PGPASSWORD)."""
        return [
            program,
            "--host",
            self.config.host,
            "--port",
            str(self.config.port),
            "--username",
            self.config.user,
            "--no-password",
        ]

    def _client_argv(self, program: str, database: str) -> list[str]:
        return [*self._server_argv(program), "--dbname", database]

    def _timeout(self) -> float:
        return timedelta.total_seconds(self.config.dump_timeout)

    # Backup ----------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def prepare_backup(self, scratch: Path, job_name: str) -> Iterator[PreparedBackup]:
        connection = self._connect(self.config.database)
        try:
            connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # Deadlines for the fingerprint's reads: a table held by an ACCESS EXCLUSIVE lock (a long ALTER TABLE)
            # must fail the backup in minutes, not hang it; pg_dump gets the same lock deadline below.
            connection.execute(f"SET LOCAL lock_timeout = {LOCK_WAIT_MILLISECONDS}")
            connection.execute(f"SET LOCAL statement_timeout = {int(self._timeout() * 1000)}")
            row = connection.execute("SELECT pg_export_snapshot()").fetchone()
            assert row is not None
            snapshot_name = str(row[0])
            producer = Command(
                argv=(
                    *self._client_argv("pg_dump", self.config.database),
                    "--format=custom",
                    f"--compress={self.config.dump_compression}",
                    f"--snapshot={snapshot_name}",
                    "--no-sync",
                    f"--lock-wait-timeout={LOCK_WAIT_MILLISECONDS}",
                ),
                environment=self._environment(),
                timeout_seconds=self._timeout(),
                stall_seconds=self.stall_seconds,
            )
            # The exporting transaction stays open until the context closes, i.e. after pg_dump has finished.
            yield PreparedBackup(
                source=BackupSource(stored_name=f"/{job_name}.pgdump", producer=producer),
                fingerprint=lambda: fingerprint_connection(connection),
                verify_producer=self._verify_dump,
            )
        except BaseException:
            # A backup that failed (restic, the destination's probe) does not wait for the fingerprint's table scan
            # to end: its statement deadline is the dump's, hours.
            with contextlib.suppress(psycopg.Error):
                connection.cancel_safe(timeout=CONNECT_TIMEOUT_SECONDS)
            raise
        finally:
            with contextlib.suppress(psycopg.Error):
                connection.rollback()
            connection.close()

    def _verify_dump(self, completed: Completed) -> None:
        if not completed.succeeded:
            reason = completed.stop_reason or f"exited {completed.exit_code}"
            errors = [line for line in completed.stderr_tail.splitlines() if "error:" in line]
            detail = errors[-1].strip() if errors else last_meaningful_line(completed.stderr_tail)
            raise source_error(f"pg_dump of {self.describe()} {reason}: {detail}")

    # Targets ---------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _maintenance(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        """Yield an autocommit connection to the maintenance database; errors become one-line StoreErrors."""
        with self._connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            try:
                yield connection
            except psycopg.Error as error:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise StoreError(
                    f"postgresql on {self.config.host}:{self.config.port}: cannot {action}: {reason}"
                ) from None

    def _database_exists(self, name: str) -> bool:
        with self._maintenance(f"look up database '{name}'") as connection:
            row = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            return row is not None

    def _create_database(self, name: str) -> None:
        with self._maintenance(f"create database '{name}'") as connection:
            connection.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))

    def _drop_database(self, name: str) -> None:
        with self._maintenance(f"drop database '{name}'") as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _database_target(self, name: str) -> contextlib.AbstractContextManager[Target]:
        target = Target(
            description=f"postgresql database '{name}' on {self.config.host}:{self.config.port}", database=name
        )
        return temporary_database(target, lambda: self._create_database(name), lambda: self._drop_database(name))

    def scratch_target(self, scratch: Path, label: str) -> contextlib.AbstractContextManager[Target]:
        return self._database_target(database_name("replica_verify", label, DATABASE_NAME_LIMIT))

    def named_target(self, to: str) -> Target:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$-]{0,62}", to):
            raise UsageError(f"restore target '{to}' is not a valid database name")
        if to == self.config.database:
            raise UsageError(f"restore target '{to}' is the live database; choose another name")
        if to in PROTECTED_DATABASES:
            raise UsageError(f"restore target '{to}' is a system database; choose another name")
        return Target(description=f"postgresql database '{to}' on {self.config.host}:{self.config.port}", database=to)

    def target_has_data(self, target: Target) -> bool:
        assert target.database is not None
        return self._database_exists(target.database)

    def staging_target(self, final: Target, label: str) -> contextlib.AbstractContextManager[Target]:
        assert final.database is not None
        return self._database_target(database_name(f"{final.database}_restore", label, DATABASE_NAME_LIMIT))

    def restore_method(self, target: Target, stored_name: str) -> RestoreMethod:
        assert target.database is not None
        consumer = Command(
            argv=(
                *self._client_argv("pg_restore", target.database),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
            ),
            environment=self._environment(),
            timeout_seconds=self._timeout(),
            # No stall limit: building an index or validating a constraint, the server works for as long as it
            # takes while pg_restore waits without a byte of I/O.
            stall_seconds=None,
        )
        return RestoreMethod(kind="command", consumer=consumer)

    def restored_location(self, target: Target, stored_name: str) -> Target:
        return target

    def check_restored(
        self, target: Target, expected: Fingerprint, verification: VerificationConfig
    ) -> list[CheckOutcome]:
        assert target.database is not None
        try:
            with self._connect(target.database) as connection:
                found = self._restored_fingerprint(connection, expected)
        except (StoreError, psycopg.Error) as error:
            return [
                CheckOutcome("integrity", False, True, f"restored database unusable: {error}"),
                CheckOutcome("fingerprint", False, True, "not compared: the database cannot be read"),
            ]
        expected_count = len(expected.get("tables", {}))
        found_count = len(found["tables"])
        integrity = CheckOutcome(
            "integrity",
            found_count >= expected_count,
            True,
            f"pg_restore completed; {found_count} tables readable in full (backup had {expected_count})",
        )
        return [integrity, compare_tables(expected, found, verification)]

    def _restored_fingerprint(self, connection: psycopg.Connection[Any], expected: Fingerprint | None) -> Fingerprint:
        """Return the fingerprint of a restored database read through `connection`, digested the way `expected`
        was (None: the current way). Each table's read that hangs fails at the dump's deadline rather than holding
        the verification. Raises psycopg.Error."""
        connection.execute(f"SET statement_timeout = {int(self._timeout() * 1000)}")
        return fingerprint_connection(connection, expected)

    def restored_values(self, location: Target, kind: str, query: str) -> set[str]:
        if kind != "sql":
            return super().restored_values(location, kind, query)
        assert location.database is not None
        with self._connect(location.database) as connection:
            # From a plan file: a read-only session, and one statement only (the extended protocol refuses two, so
            # no `COMMIT; ...` can end the read-only transaction).
            connection.read_only = True
            try:
                return first_column(connection.execute(query, prepare=True).fetchall())
            except psycopg.Error as error:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise StoreError(f"{location.description}: query failed: {reason}") from None

    def write_canary(self, canary: Canary) -> None:
        table = sql.Identifier("public", CANARY_NAME)
        with self._connect(self.config.database, autocommit=True) as connection:
            try:
                connection.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (run_id bigint NOT NULL, written_at timestamptz NOT NULL)"
                    ).format(table)
                )
                connection.execute(
                    sql.SQL("INSERT INTO {} (run_id, written_at) VALUES (%s, %s)").format(table),
                    (canary.run_id, canary.written_at),
                )
                connection.execute(
                    sql.SQL(
                        "DELETE FROM {} WHERE written_at < (SELECT min(written_at) FROM "
                        "(SELECT written_at FROM {} ORDER BY written_at DESC LIMIT %s) AS kept)"
                    ).format(table, table),
                    (CANARIES_KEPT,),
                )
            except psycopg.Error as error:
                raise StoreError(f"{self.describe()}: cannot write canary: {str(error).strip()}") from None

    def read_canary(self, location: Target) -> Canary | None:
        assert location.database is not None
        try:
            with self._connect(location.database) as connection:
                row = connection.execute(
                    sql.SQL("SELECT run_id, written_at FROM {} ORDER BY written_at DESC LIMIT 1").format(
                        sql.Identifier("public", CANARY_NAME)
                    )
                ).fetchone()
        except (StoreError, psycopg.Error):
            return None
        return Canary(int(row[0]), row[1]) if row else None

    def promote(self, staged: Target, final: Target, replaced_suffix: str) -> str | None:
        assert staged.database is not None and final.database is not None
        aside = None
        with self._maintenance(f"put database '{final.database}' in place") as connection:
            if self._database_exists(final.database):
                aside = database_name(final.database, replaced_suffix.strip(".-_"), DATABASE_NAME_LIMIT)
                connection.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(final.database), sql.Identifier(aside)
                    )
                )
            connection.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(staged.database), sql.Identifier(final.database)
                )
            )
        return f"database '{aside}'" if aside else None
