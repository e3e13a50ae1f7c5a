"""The `sqlite` store: a consistent copy by SQLite's online backup API, never the live file.

Fingerprint: per table, the row count and an order-independent digest of its rows, taken from the very copy that
restic stores. After restore: `PRAGMA integrity_check`, then the same fingerprint compared table by table.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from replica.catalog.records import CheckOutcome
from replica.config.models import SqliteStoreConfig, VerificationConfig
from replica.errors import SourceUnreachable, StoreError, UsageError
from replica.execute import Command
from replica.stores.base import (
    CANARY_NAME,
    BackupSource,
    Canary,
    Fingerprint,
    PreparedBackup,
    Target,
    first_column,
)
from replica.stores.paths import SingleFileStore, named_path, temporary_directory
from replica.stores.tables import compare_tables

DIGEST_MODULUS = 1 << 64
CANARIES_KEPT = 100
CANARY_LOCK_TIMEOUT_SECONDS = 30


def read_only_uri(path: Path) -> str:
    """Return a read-only SQLite URI for `path`, percent-encoded: a '#' or '?' in a plain `file:` URI would cut
    the path short and make SQLite create (and back up) a different, empty file."""
    return f"{path.absolute().as_uri()}?mode=ro"


def _row_digest(row: tuple[Any, ...]) -> int:
    encoded = json.dumps([value.hex() if isinstance(value, bytes) else value for value in row], default=str)
    return int.from_bytes(hashlib.sha256(encoded.encode()).digest()[:8], "big")


def fingerprint_database(path: Path) -> Fingerprint:
    """Return {tables: {name: {rows, digest}}} of the SQLite file at `path`, opened read-only."""
    connection = sqlite3.connect(read_only_uri(path), uri=True)
    try:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        tables: dict[str, dict[str, Any]] = {}
        for name in names:
            quoted = '"' + name.replace('"', '""') + '"'
            count, total = 0, 0
            for row in connection.execute(f"SELECT * FROM {quoted}"):
                count += 1
                total = (total + _row_digest(row)) % DIGEST_MODULUS
            tables[name] = {"rows": count, "digest": f"{total:016x}"}
        return {"tables": tables}
    finally:
        connection.close()


def integrity_check(path: Path) -> CheckOutcome:
    """Return the `integrity` check: `PRAGMA integrity_check` must answer exactly `ok`."""
    try:
        connection = sqlite3.connect(read_only_uri(path), uri=True)
        try:
            answers = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        return CheckOutcome("integrity", False, True, f"cannot open restored database: {error}")
    if answers == ["ok"]:
        return CheckOutcome("integrity", True, True, "PRAGMA integrity_check: ok")
    return CheckOutcome(
        "integrity", False, True, f"PRAGMA integrity_check: {len(answers)} problems, first: {answers[0]}"
    )


class SqliteStore(SingleFileStore):
    """One SQLite database file."""

    kind = "sqlite"
    restored_file_name = "restored.sqlite3"
    companion_suffixes = ("-wal", "-shm", "-journal")
    file_description = "sqlite file"

    def __init__(self, config: SqliteStoreConfig) -> None:
        self.config = config

    def describe(self) -> str:
        return f"sqlite database {self.config.path}"

    @contextlib.contextmanager
    def prepare_backup(self, scratch: Path, job_name: str) -> Iterator[PreparedBackup]:
        source_path = self.config.path
        if not source_path.is_file():
            raise SourceUnreachable(f"{self.describe()}: file does not exist")
        with temporary_directory(scratch, f"backup-{job_name}-{os.getpid()}") as directory:
            copy_path = directory / f"{job_name}.sqlite3"
            try:
                source = sqlite3.connect(read_only_uri(source_path), uri=True)
                try:
                    destination = sqlite3.connect(copy_path)
                    try:
                        # One step under one read lock: a stepped backup restarts on every write by another
                        # connection and can spin for ever on a busy database.
                        source.backup(destination, pages=-1)
                    finally:
                        destination.close()
                finally:
                    source.close()
            except sqlite3.Error as error:
                raise StoreError(f"{self.describe()}: online backup failed: {error}") from None
            yield PreparedBackup(
                source=BackupSource(
                    stored_name=f"/{job_name}.sqlite3",
                    producer=Command(
                        argv=("cat", str(copy_path)), timeout_seconds=24 * 3600, stall_seconds=self.stall_seconds
                    ),
                ),
                fingerprint=lambda: fingerprint_database(copy_path),
            )

    def named_target(self, to: str) -> Target:
        path = named_path(to)
        if path == self.config.path.resolve():
            raise UsageError(f"restore target {path} is the live database; choose another path")
        if path.is_dir():
            raise UsageError(f"restore target {path} is a directory; name a database file")
        return Target(description=f"sqlite file {path}", path=path)

    def check_restored(
        self, target: Target, expected: Fingerprint, verification: VerificationConfig
    ) -> list[CheckOutcome]:
        assert target.path is not None
        integrity = integrity_check(target.path)
        if not integrity.passed:
            return [
                integrity,
                CheckOutcome("fingerprint", False, True, "not compared: the database is damaged"),
            ]
        return [integrity, compare_tables(expected, fingerprint_database(target.path), verification)]

    def restored_values(self, location: Target, kind: str, query: str) -> set[str]:
        if kind != "sql":
            return super().restored_values(location, kind, query)
        assert location.path is not None
        try:
            # Opened read-only: the query comes from a plan file and must not change what it checks.
            connection = sqlite3.connect(read_only_uri(location.path), uri=True)
            try:
                return first_column(connection.execute(query).fetchall())
            finally:
                connection.close()
        except sqlite3.Error as error:
            raise StoreError(f"{location.description}: query failed: {error}") from None

    def write_canary(self, canary: Canary) -> None:
        if not self.config.path.is_file():
            raise SourceUnreachable(f"{self.describe()}: file does not exist")
        try:
            connection = sqlite3.connect(self.config.path, timeout=CANARY_LOCK_TIMEOUT_SECONDS)
            try:
                with connection:
                    connection.execute(
                        f"CREATE TABLE IF NOT EXISTS {CANARY_NAME} (run_id INTEGER NOT NULL, written_at TEXT NOT NULL)"
                    )
                    connection.execute(
                        f"INSERT INTO {CANARY_NAME} (run_id, written_at) VALUES (?, ?)",
                        (canary.run_id, canary.written_at.isoformat()),
                    )
                    connection.execute(
                        f"DELETE FROM {CANARY_NAME} WHERE rowid NOT IN "
                        f"(SELECT rowid FROM {CANARY_NAME} ORDER BY rowid DESC LIMIT {CANARIES_KEPT})"
                    )
            finally:
                connection.close()
        except sqlite3.Error as error:
            raise StoreError(f"{self.describe()}: cannot write canary: {error}") from None

    def read_canary(self, location: Target) -> Canary | None:
        assert location.path is not None
        try:
            connection = sqlite3.connect(read_only_uri(location.path), uri=True)
            try:
                row = connection.execute(
                    f"SELECT run_id, written_at FROM {CANARY_NAME} ORDER BY written_at DESC LIMIT 1"
                ).fetchone()
            finally:
                connection.close()
        except sqlite3.Error:
            return None
        return Canary(int(row[0]), datetime.fromisoformat(row[1])) if row else None
