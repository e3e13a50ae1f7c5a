"""The `mariadb` store: `mariadb-dump --single-transaction` streamed into restic, restored with `mariadb` into a
scratch database.

Consistency. MariaDB cannot hand a snapshot to another session the way `pg_dump --snapshot` can, so replica does
what `mariadb-dump --master-data` does inside one session, across two: it takes `FLUSH TABLES WITH READ LOCK`,
opens its own `START TRANSACTION WITH CONSISTENT SNAPSHOT`, and releases the lock only once mariadb-dump's session
has opened its snapshot too. No commit can happen in between, so both snapshots see the same data and the
fingerprint describes exactly what the dump holds. mariadb-dump's session is recognised as a connection opened
after the lock, of the same user, whose default database is ours (mariadb-dump connects without one and selects it
only after `START TRANSACTION WITH CONSISTENT SNAPSHOT`, see `main` in client/mysqldump.c) and which holds an
explicit REPEATABLE READ transaction in INNODB_TRX (a client merely waiting to write has none). An application
connecting as the same user to the same database and opening a transaction in those milliseconds could be taken
for it; the fingerprint would then differ from the dump and the verification fail loudly: use a dedicated backup
user. PROCESSLIST is polled; INNODB_TRX, a cache refreshed only when nobody read it for 100 ms, is read only to
confirm a candidate. A dump that ends unseen is noticed when `verify_producer` reports its end (its snapshot was
necessarily taken under the lock). Writes therefore wait from `prepare_backup` until the dump is seen or has ended,
at most SNAPSHOT_WAIT_SECONDS, and the lock is released when the context closes, whatever happened.
Privileges: SELECT, SHOW VIEW, TRIGGER, RELOAD (the lock), PROCESS (INNODB_TRX); CREATE, DROP, ALTER and the like
on the scratch databases.

Limits (those of `mariadb-dump --single-transaction`): only InnoDB tables are read in the snapshot (Aria/MyISAM
tables changed during the dump make the verification fail loudly); DDL during the dump is not isolated. Events are
not dumped: that needs the EVENT privilege, and a restored event would fire inside the scratch database and change
the data being verified.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pymysql

from replica.catalog.records import CheckOutcome
from replica.config.models import MariadbStoreConfig, VerificationConfig
from replica.errors import StoreError, UsageError, last_meaningful_line
from replica.execute import Command, Completed, build_environment
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
from replica.stores.mariadb_objects import create_like, holds_objects, move_objects
from replica.stores.mariadb_snapshot import (
    STABLE_TEXT_SETTINGS,
    Connection,
    LockedSnapshot,
    fingerprint_tables,
    first_line_of,
    quote,
    read_layout,
)
from replica.stores.tables import MAX_LISTED_PROBLEMS, compare_tables

CONNECT_TIMEOUT_SECONDS = 10
_WAIT_SECONDS = 60
WRITE_LOCK_WAIT_SECONDS = 60
DATABASE_NAME_LIMIT = 64
CANARIES_KEPT = 100
# Room for a row of a large BLOB written as hex (--hex-blob doubles it); the server's own limit still applies.
MAX_ALLOWED_PACKET = "1G"
SYSTEM_DATABASES = frozenset({"mysql", "information_schema", "performance_schema", "sys"})


class MariadbStore(Store):
    """One MariaDB database."""

    kind = "mariadb"

    def __init__(self, config: MariadbStoreConfig) -> None:
        self.config = config

    def describe(self) -> str:
        return self._describe_database(self.config.database)

    def _describe_database(self, name: str) -> str:
        return f"mariadb database '{name}' on {self.config.host}:{self.config.port}"

    # Connections and processes ---------------------------------------------------------------------------------

    def _password(self) -> str | None:
        return store_password(self.config, self.describe())

    def _environment(self) -> dict[str, str]:
        password = self._password()
        return {"MYSQL_PWD": password} if password else {}

    def _timeout(self) -> float:
        return timedelta.total_seconds(self.config.dump_timeout)

    def _connect(self, database: str | None, *, about: str | None = None, autocommit: bool = True) -> Connection:
        """Return a PyMySQL connection (to `database`, or to the server when None). Raises StoreError."""
        try:
            return pymysql.connect(
                host=self.config.host,
                port=self.config.port,
                user=self.config.user,
                password=self._password() or "",
                database=database,
                charset="utf8mb4",
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=self._timeout(),
                write_timeout=self._timeout(),
                autocommit=autocommit,
            )
        except pymysql.Error as error:
            what = self._describe_database(about or database or self.config.database)
            raise source_error(f"{what}: cannot connect: {first_line_of(error)}", str(error)) from None

    def _client_argv(self, program: str) -> list[str]:
        # --no-defaults: no option file can change what is dumped or restored (it must come first).
        return [
            program,
            "--no-defaults",
            "--host",
            self.config.host,
            "--port",
            str(self.config.port),
            "--user",
            self.config.user,
            "--protocol=TCP",
            "--default-character-set=utf8mb4",
            f"--max-allowed-packet={MAX_ALLOWED_PACKET}",
        ]

    # Backup ----------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def prepare_backup(self, scratch: Path, job_name: str) -> Iterator[PreparedBackup]:
        # Checked before locking: a dump that cannot start would leave writes blocked until the wait expires.
        if shutil.which("mariadb-dump", path=build_environment({})["PATH"]) is None:
            raise StoreError(f"{self.describe()}: mariadb-dump is not installed (not found on PATH)")
        session = LockedSnapshot(
            self._connect(self.config.database, autocommit=False),
            describe=self.describe(),
            user=self.config.user,
            database=self.config.database,
        )
        try:
            try:
                session.open()
            except pymysql.Error as error:
                raise StoreError(
                    f"{self.describe()}: cannot open a consistent snapshot: {first_line_of(error)}"
                ) from None
            producer = Command(
                argv=(
                    *self._client_argv("mariadb-dump"),
                    "--single-transaction",
                    "--quick",
                    "--routines",
                    "--triggers",
                    "--skip-events",
                    "--hex-blob",
                    "--no-tablespaces",
                    "--skip-dump-date",
                    "--",
                    self.config.database,
                ),
                environment=self._environment(),
                timeout_seconds=self._timeout(),
                stall_seconds=self.stall_seconds,
            )
            yield PreparedBackup(
                source=BackupSource(stored_name=f"/{job_name}.sql", producer=producer),
                fingerprint=session.fingerprint,
                verify_producer=lambda completed: self._verify_dump(session, completed),
            )
        finally:
            session.close()

    def _verify_dump(self, session: LockedSnapshot, completed: Completed) -> None:
        """Raise StoreError unless mariadb-dump exited 0 within its deadline.

        The exit status is the completeness test: mariadb-dump exits non-zero on every server or write error
        (`die`, `check_io`, the final `fflush`) and dies of SIGPIPE when restic stops reading, so 0 means every
        byte reached the pipe. Its "-- Dump completed" footer proves nothing (its error path writes it too), and
        the stream goes to restic, so replica never buffers it to look.
        """
        session.producer_finished()
        if not completed.succeeded:
            reason = completed.stop_reason or f"exited {completed.exit_code}"
            errors = [line for line in completed.stderr_tail.splitlines() if "error" in line.lower()]
            detail = errors[-1].strip() if errors else last_meaningful_line(completed.stderr_tail)
            raise source_error(f"mariadb-dump of {self.describe()} {reason}: {detail}")

    # Targets ---------------------------------------------------------------------------------------------------

    def _database_exists(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
        return cursor.fetchone() is not None

    def _server_cursor(self, about: str, action: str) -> contextlib.AbstractContextManager[Any]:
        return _cursor_of(self._connect(None, about=about), self._describe_database(about), action)

    def _drop_database(self, name: str) -> None:
        if name == self.config.database:
            raise StoreError(f"{self.describe()}: refusing to drop the live database")
        with self._server_cursor(name, "cannot drop the database") as cursor:
            cursor.execute(f"SET SESSION lock_wait_timeout = {WRITE_LOCK_WAIT_SECONDS}")
            cursor.execute(f"DROP DATABASE IF EXISTS {quote(name)}")

    def _create_database(self, name: str) -> None:
        with self._server_cursor(name, "cannot create the database") as cursor:
            cursor.execute(f"CREATE DATABASE {quote(name)} CHARACTER SET utf8mb4")

    def _database_target(self, name: str) -> contextlib.AbstractContextManager[Target]:
        target = Target(description=self._describe_database(name), database=name)
        return temporary_database(target, lambda: self._create_database(name), lambda: self._drop_database(name))

    def scratch_target(self, scratch: Path, label: str) -> contextlib.AbstractContextManager[Target]:
        return self._database_target(database_name("replica_verify", label, DATABASE_NAME_LIMIT))

    def named_target(self, to: str) -> Target:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_$-]{0,63}", to):
            raise UsageError(f"restore target '{to}' is not a valid database name")
        if to.lower() == self.config.database.lower():
            raise UsageError(f"restore target '{to}' is the live database; choose another name")
        if to.lower() in SYSTEM_DATABASES:
            raise UsageError(f"restore target '{to}' is a system database; choose another name")
        return Target(description=self._describe_database(to), database=to)

    def target_has_data(self, target: Target) -> bool:
        assert target.database is not None
        with self._server_cursor(target.database, "cannot look it up") as cursor:
            return self._database_exists(cursor, target.database)

    def staging_target(self, final: Target, label: str) -> contextlib.AbstractContextManager[Target]:
        assert final.database is not None
        return self._database_target(database_name(f"{final.database}_restore", label, DATABASE_NAME_LIMIT))

    def restore_method(self, target: Target, stored_name: str) -> RestoreMethod:
        assert target.database is not None
        consumer = Command(
            argv=(*self._client_argv("mariadb"), f"--database={target.database}", "--binary-mode", "--batch"),
            environment=self._environment(),
            timeout_seconds=self._timeout(),
            # No stall limit: while the server builds an index the client waits without a byte of I/O.
            stall_seconds=None,
        )
        return RestoreMethod(kind="command", consumer=consumer)

    def restored_location(self, target: Target, stored_name: str) -> Target:
        return target

    def check_restored(
        self, target: Target, expected: Fingerprint, verification: VerificationConfig
    ) -> list[CheckOutcome]:
        assert target.database is not None
        expected_tables = sorted(expected.get("tables", {}))
        try:
            with _cursor_of(self._connect(target.database), target.description) as cursor:
                for statement in STABLE_TEXT_SETTINGS:
                    cursor.execute(statement)
                layout = read_layout(cursor, target.database)
                problems = [f"table {name}: missing from the restore" for name in expected_tables if name not in layout]
                for table in layout:
                    problems += _check_table(cursor, target.database, table)
                found = fingerprint_tables(cursor, target.database, layout)
        except StoreError as error:
            return [
                CheckOutcome("integrity", False, True, f"restored database unusable: {error}"),
                CheckOutcome("fingerprint", False, True, "not compared: the database cannot be read"),
            ]
        if problems:
            shown = "; ".join(problems[:MAX_LISTED_PROBLEMS])
            more = f" (and {len(problems) - MAX_LISTED_PROBLEMS} more)" if len(problems) > MAX_LISTED_PROBLEMS else ""
            integrity = CheckOutcome("integrity", False, True, shown + more)
        else:
            integrity = CheckOutcome(
                "integrity",
                True,
                True,
                f"restore completed; {len(layout)} tables pass CHECK TABLE and read in full "
                f"(backup had {len(expected_tables)})",
            )
        return [integrity, compare_tables(expected, found, verification)]

    def restored_values(self, location: Target, kind: str, query: str) -> set[str]:
        if kind != "sql":
            return super().restored_values(location, kind, query)
        assert location.database is not None
        with _cursor_of(self._connect(location.database), location.description, "query failed") as cursor:
            # From a plan file, checked to be one SELECT when loaded (PyMySQL sends no second statement either). A
            # DDL statement would commit a read-only transaction and run anyway; a read-only session refuses it.
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
            cursor.execute("START TRANSACTION READ ONLY")
            cursor.execute(query)
            return first_column(cursor.fetchall())

    # Canary ----------------------------------------------------------------------------------------------------

    def write_canary(self, canary: Canary) -> None:
        table = quote(CANARY_NAME)
        written_at = canary.written_at
        if written_at.tzinfo is not None:
            written_at = written_at.astimezone(UTC).replace(tzinfo=None)
        with _cursor_of(self._connect(self.config.database), self.describe(), "cannot write canary") as cursor:
            cursor.execute(f"SET SESSION lock_wait_timeout = {WRITE_LOCK_WAIT_SECONDS}")
            # A primary key: some servers (Galera, sql_require_primary_key) refuse tables without one.
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (run_id BIGINT NOT NULL, written_at DATETIME(6) NOT NULL, "
                "PRIMARY KEY (written_at, run_id)) ENGINE=InnoDB"
            )
            cursor.execute(
                f"INSERT INTO {table} (run_id, written_at) VALUES (%s, %s) ON DUPLICATE KEY UPDATE run_id = run_id",
                (canary.run_id, written_at),
            )
            cursor.execute(
                f"SELECT written_at FROM {table} ORDER BY written_at DESC LIMIT 1 OFFSET %s", (CANARIES_KEPT - 1,)
            )
            oldest_kept = cursor.fetchone()
            if oldest_kept is not None:
                cursor.execute(f"DELETE FROM {table} WHERE written_at < %s", (oldest_kept[0],))

    def read_canary(self, location: Target) -> Canary | None:
        assert location.database is not None
        try:
            with _cursor_of(self._connect(location.database), location.description) as cursor:
                cursor.execute(f"SELECT run_id, written_at FROM {quote(CANARY_NAME)} ORDER BY written_at DESC LIMIT 1")
                row = cursor.fetchone()
        except StoreError:
            return None
        return Canary(int(row[0]), row[1].replace(tzinfo=UTC)) if row else None

    # Promotion -------------------------------------------------------------------------------------------------

    def promote(self, staged: Target, final: Target, replaced_suffix: str) -> str | None:
        """Move the staged database's objects into `final`; MariaDB has no RENAME DATABASE.

        An existing final database keeps its name but its objects move into `<final>_replaced_..._xxxxxx` first,
        nothing is dropped but the emptied staging database. Raises StoreError.
        """
        assert staged.database is not None and final.database is not None
        aside = None
        with self._server_cursor(final.database, "cannot put the restored data in place") as cursor:
            if self._database_exists(cursor, final.database):
                if holds_objects(cursor, final.database):
                    aside = database_name(final.database, replaced_suffix.strip(".-_"), DATABASE_NAME_LIMIT)
                    create_like(cursor, aside, final.database)
                    move_objects(cursor, final.database, aside)
            else:
                create_like(cursor, final.database, staged.database)
            move_objects(cursor, staged.database, final.database)
            if holds_objects(cursor, staged.database):
                raise StoreError(f"{staged.description}: objects remain after the move; it is kept")
            cursor.execute(f"DROP DATABASE {quote(staged.database)}")
        return f"database '{aside}'" if aside else None


@contextlib.contextmanager
def _cursor_of(connection: Connection, what: str, action: str = "failed") -> Iterator[Any]:
    """Yield a cursor of `connection`, close both afterwards, turn server errors into one-line StoreErrors."""
    try:
        with connection.cursor() as cursor:
            yield cursor
    except pymysql.Error as error:
        raise StoreError(f"{what}: {action}: {first_line_of(error)}") from None
    finally:
        with contextlib.suppress(pymysql.Error):
            connection.close()


def _check_table(cursor: Any, database: str, table: str) -> list[str]:
    """Return the problems CHECK TABLE reports for one table (engines that cannot check, e.g. sequences, pass)."""
    cursor.execute(f"CHECK TABLE {quote(database)}.{quote(table)}")
    results = [(str(row[2]).lower(), str(row[3])) for row in cursor.fetchall()]
    passed = any(
        (kind == "status" and text == "OK") or (kind == "note" and "doesn't support check" in text)
        for kind, text in results
    )
    errors = [text for kind, text in results if kind == "error"]
    if passed and not errors:
        return []
    return [f"CHECK TABLE {table}: {(errors or [text for _, text in results] or ['no result'])[-1]}"]
