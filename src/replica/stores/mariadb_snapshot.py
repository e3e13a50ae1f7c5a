"""MariaDB fingerprints and the consistent snapshot shared with mariadb-dump (see `replica.stores.mariadb`)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import pymysql

from replica.errors import StoreError
from replica.stores.base import (
    Fingerprint,
)

GLOBAL_LOCK_WAIT_SECONDS = 10
SNAPSHOT_WAIT_SECONDS = 30.0
SNAPSHOT_POLL_SECONDS = 0.02
# INNODB_TRX is refreshed only for a reader coming after 100 ms without any read (trx_i_s_cache): wait a little more.
TRANSACTIONS_CACHE_SECONDS = 0.11
# Session settings that make the digest's text identical on the source and on a restore (TIMESTAMP is shown in the
# session time zone; mariadb-dump writes it in UTC).
STABLE_TEXT_SETTINGS = ("SET SESSION time_zone = '+00:00'", "SET SESSION max_statement_time = 0")
# Views are the only thing left out: their rows belong to the tables they read.
TABLES_QUERY = (
    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
    "AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE') ORDER BY TABLE_NAME"
)
COLUMNS_QUERY = (
    "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
    "ORDER BY TABLE_NAME, ORDINAL_POSITION"
)

# Sessions opened after the lock (ids only grow) by our user.
NEW_SESSIONS_QUERY = (
    "SELECT ID, DB FROM information_schema.PROCESSLIST WHERE ID > %s AND ID <> CONNECTION_ID() AND USER = %s"
)
# Of those, the ones holding an explicit REPEATABLE READ transaction.
SNAPSHOT_HOLDERS_QUERY = (
    "SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id IN ({}) "
    "AND trx_autocommit_non_locking = 0 AND trx_isolation_level = 'REPEATABLE READ'"
)

Connection = Any  # pymysql.connections.Connection (PyMySQL ships no type information)


def quote(name: str) -> str:
    """Return `name` as a MariaDB identifier in backquotes."""
    return "`" + name.replace("`", "``") + "`"


def read_layout(cursor: Any, database: str) -> dict[str, list[str]]:
    """Return {table: columns in ordinal order} of every table of `database` except views."""
    cursor.execute(TABLES_QUERY, (database,))
    layout: dict[str, list[str]] = {str(row[0]): [] for row in cursor.fetchall()}
    cursor.execute(COLUMNS_QUERY, (database,))
    for table, column in cursor.fetchall():
        if str(table) in layout:
            layout[str(table)].append(str(column))
    return layout


def digest_query(database: str, table: str, columns: list[str]) -> str:
    """Return the query of a table's row count and order-independent content digest.

    Every value is read as its bytes (no collation can clash) and written as `length:bytes`, NULL as `N`, so that
    neither NULLs nor separators inside values can make two different rows look alike. The digest is the sum of
    the first 60 bits of each row's MD5.
    """
    values = [f"CAST({quote(column)} AS BINARY)" for column in columns]
    encoded = ", ".join(f"COALESCE(CONCAT(LENGTH({value}), ':', {value}), 'N')" for value in values)
    return (
        f"SELECT COUNT(*), COALESCE(SUM(CAST(CONV(SUBSTRING(MD5(CONCAT({encoded})), 1, 15), 16, 10) AS UNSIGNED)), 0)"
        f" FROM {quote(database)}.{quote(table)}"
    )


def fingerprint_tables(cursor: Any, database: str, layout: dict[str, list[str]]) -> Fingerprint:
    """Return {tables: {table: {rows, digest}}} read through `cursor` (inside its transaction, if any)."""
    tables: dict[str, dict[str, Any]] = {}
    for table, columns in layout.items():
        cursor.execute(digest_query(database, table, columns))
        rows, digest = cursor.fetchone()
        tables[table] = {"rows": int(rows), "digest": str(int(digest))}
    return {"tables": tables}


def first_line_of(error: BaseException) -> str:
    """Return a PyMySQL error as one line: the server's message and its code."""
    arguments: tuple[Any, ...] = getattr(error, "args", ())
    text = f"{arguments[1]} (error {arguments[0]})" if len(arguments) >= 2 else str(error) or type(error).__name__
    return " ".join(text.split())


class LockedSnapshot:
    """The session that holds the global read lock until mariadb-dump has its snapshot, then fingerprints.

    The fingerprint runs in the action's thread pool while the main thread runs the dump, so the connection is
    used by one thread at a time (`_guard`), and closing wakes a fingerprint that is still waiting.
    """

    def __init__(self, connection: Connection, *, describe: str, user: str, database: str) -> None:
        self._connection = connection
        self._describe = describe
        self._user = user
        self._database = database
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._producer_finished = False
        self._closing = False
        self._locked = False
        self._baseline_id = 0
        self._transactions_read_at = 0.0
        self._layout: dict[str, list[str]] = {}

    def open(self) -> None:
        """Take the global read lock, open the snapshot, read the table layout while DDL is blocked."""
        with self._guard, self._connection.cursor() as cursor:
            for statement in STABLE_TEXT_SETTINGS:
                cursor.execute(statement)
            # Fails now (no PROCESS privilege) rather than while holding the lock; then lets INNODB_TRX's cache
            # expire before the lock, so that the first look at mariadb-dump's session is fresh.
            cursor.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX")
            cursor.fetchall()
            self._transactions_read_at = time.monotonic()
            time.sleep(TRANSACTIONS_CACHE_SECONDS)
            # FLUSH TABLES WITH READ LOCK waits behind running writes while new writes queue behind it: bounded.
            cursor.execute(f"SET SESSION lock_wait_timeout = {GLOBAL_LOCK_WAIT_SECONDS}")
            cursor.execute("FLUSH TABLES WITH READ LOCK")
            self._locked = True
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            self._layout = read_layout(cursor, self._database)
            # Connection ids only grow: mariadb-dump's will be above every id visible now.
            cursor.execute("SELECT COALESCE(MAX(ID), 0) FROM information_schema.PROCESSLIST")
            self._baseline_id = int(cursor.fetchone()[0])

    def producer_finished(self) -> None:
        """Note that mariadb-dump has ended: if it succeeded, its snapshot was opened while the lock held."""
        self._producer_finished = True
        self._wake.set()

    def fingerprint(self) -> Fingerprint:
        """Wait for mariadb-dump's snapshot, release the lock, return the fingerprint of this snapshot.

        Raises StoreError when mariadb-dump does not open its snapshot in time or the server fails.
        """
        with self._guard:
            try:
                if self._locked:
                    try:
                        self._wait_for_dump_snapshot()
                    finally:
                        self._unlock()
                with self._connection.cursor() as cursor:
                    return fingerprint_tables(cursor, self._database, self._layout)
            except pymysql.Error as error:
                raise StoreError(f"{self._describe}: cannot compute the fingerprint: {first_line_of(error)}") from None

    def close(self) -> None:
        """Release the lock (whatever happened, the server is never left read-locked) and close the session."""
        self._closing = True
        self._wake.set()
        with self._guard:
            try:
                if self._locked:
                    with contextlib.suppress(pymysql.Error):
                        self._unlock()
                with contextlib.suppress(pymysql.Error):
                    self._connection.rollback()
            finally:
                # Closing the session releases the lock on the server too, should UNLOCK TABLES have failed.
                with contextlib.suppress(pymysql.Error):
                    self._connection.close()

    def _unlock(self) -> None:
        with self._connection.cursor() as cursor:
            cursor.execute("UNLOCK TABLES")  # after FTWRL this keeps the transaction (and its snapshot) open
        self._locked = False

    def _wait_for_dump_snapshot(self) -> None:
        deadline = time.monotonic() + SNAPSHOT_WAIT_SECONDS
        while not self._producer_finished:
            candidates = self._sessions_in_our_database()
            if candidates and self._hold_snapshots(candidates):
                return
            if self._closing:
                raise StoreError(f"{self._describe}: the backup ended before mariadb-dump opened its snapshot")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StoreError(
                    f"{self._describe}: mariadb-dump did not open its snapshot within {SNAPSHOT_WAIT_SECONDS:.0f}s "
                    "(writes were blocked meanwhile; the lock is released)"
                )
            self._wake.wait(min(SNAPSHOT_POLL_SECONDS, remaining))

    def _sessions_in_our_database(self) -> list[int]:
        with self._connection.cursor() as cursor:
            cursor.execute(NEW_SESSIONS_QUERY, (self._baseline_id, self._user))
            return [int(session) for session, database in cursor.fetchall() if database == self._database]

    def _hold_snapshots(self, sessions: list[int]) -> bool:
        idle = time.monotonic() - self._transactions_read_at
        if idle < TRANSACTIONS_CACHE_SECONDS:
            time.sleep(TRANSACTIONS_CACHE_SECONDS - idle)
        with self._connection.cursor() as cursor:
            cursor.execute(SNAPSHOT_HOLDERS_QUERY.format(", ".join(str(session) for session in sessions)))
            holders = cursor.fetchall()
        self._transactions_read_at = time.monotonic()
        return bool(holders)
