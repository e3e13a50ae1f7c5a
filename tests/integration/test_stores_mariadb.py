"""stores/mariadb.py against the real MariaDB on 127.0.0.1:3306: snapshot-consistent dump, restore, checks, promote."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymysql
import pytest

from replica.config.models import MariadbStoreConfig, VerificationConfig
from replica.errors import StoreError, UsageError
from replica.execute import Command, Completed, run, run_pipeline
from replica.stores.base import Canary, Target
from replica.stores.mariadb import MariadbStore
from replica.stores.mariadb_snapshot import STABLE_TEXT_SETTINGS, fingerprint_tables, quote, read_layout
from tests.integration.conftest import unique_name

HOST, PORT, USER = "127.0.0.1", 3306, "root"
ORDER_ROWS = 40
ORDERS = "order-lines"  # a table name that needs quoting
SCHEMA = [
    """CREATE TABLE customers (
        id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, note TEXT, joined DATETIME(3),
        balance DECIMAL(12, 2)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE {quote(ORDERS)} (
        id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT REFERENCES customers (id), amount DECIMAL(12, 2),
        payload BLOB, placed_at DATETIME, comment TEXT
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "CREATE TABLE events (at TIMESTAMP(6) NULL, what VARCHAR(50)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    """INSERT INTO customers (name, note, joined, balance) VALUES
        ('Zoë 🦊 ✓', NULL, '2026-01-02 03:04:05.678', 12.50),
        ('東京 Trading', 'line one\nline two', NULL, NULL),
        ('O''Brien', '', '1999-12-31 23:59:59', -3.00)""",
    f"""INSERT INTO {quote(ORDERS)} (customer_id, amount, payload, placed_at, comment)
        WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ORDER_ROWS})
        SELECT 1 + i % 3, i * 1.25, UNHEX(MD5(i)), '2026-01-01' + INTERVAL i HOUR,
               CASE WHEN i % 4 = 0 THEN NULL ELSE CONCAT('order ', i) END
        FROM n""",
    "INSERT INTO events VALUES ('2026-01-01 00:00:00.123456', 'created'), (NULL, NULL)",
    f"CREATE VIEW big_orders AS SELECT id, amount FROM {quote(ORDERS)} WHERE amount > 25",
    "CREATE TRIGGER customers_named BEFORE INSERT ON customers FOR EACH ROW SET NEW.name = TRIM(NEW.name)",
    f"CREATE PROCEDURE count_orders() SELECT COUNT(*) FROM {quote(ORDERS)}",
]


def connect(database: str | None = None) -> Any:
    return pymysql.connect(
        host=HOST, port=PORT, user=USER, database=database, charset="utf8mb4", autocommit=True, connect_timeout=5
    )


def execute(database: str | None, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements in one session; return the rows of the last."""
    connection = connect(database)
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
            return list(cursor.fetchall())
    finally:
        connection.close()


def database_exists(name: str) -> bool:
    return bool(execute(None, f"SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'"))


def drop_database(name: str) -> None:
    execute(None, f"DROP DATABASE IF EXISTS {quote(name)}")


def live_fingerprint(database: str) -> dict[str, Any]:
    connection = connect(database)
    try:
        with connection.cursor() as cursor:
            for statement in STABLE_TEXT_SETTINGS:
                cursor.execute(statement)
            return fingerprint_tables(cursor, database, read_layout(cursor, database))
    finally:
        connection.close()


def store_for(database: str, port: int = PORT) -> MariadbStore:
    return MariadbStore(
        MariadbStoreConfig(
            kind="mariadb", host=HOST, port=port, user=USER, database=database, dump_timeout=timedelta(seconds=60)
        )
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def back_up(store: MariadbStore, scratch: Path, dump: Path) -> tuple[dict[str, Any], Completed]:
    """Run a backup the way the backup action does: the fingerprint in a thread while the producer runs."""
    with store.prepare_backup(scratch, "shop") as prepared, concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert prepared.source.producer is not None
        future = pool.submit(prepared.fingerprint)
        completed = run(prepared.source.producer, stdout_path=dump)
        prepared.verify_producer(completed)
        return future.result(timeout=30), completed


def restore(store: MariadbStore, target: Target, dump: Path) -> None:
    method = store.restore_method(target, "/shop.sql")
    assert method.kind == "command"
    assert method.consumer is not None
    restored = run_pipeline(Command(argv=("cat", str(dump))), method.consumer, timeout_seconds=60)
    assert restored.producer.succeeded
    assert restored.consumer.succeeded, restored.consumer.stderr_tail


@pytest.fixture
def source_database() -> Iterator[str]:
    """A uniquely named database holding tables of awkward types, a view, a trigger and a procedure."""
    name = unique_name("replica_it")
    try:
        execute(None, f"CREATE DATABASE {quote(name)} CHARACTER SET utf8mb4")
    except pymysql.err.OperationalError as error:
        pytest.fail(f"the integration tier needs MariaDB on {HOST}:{PORT} as {USER}: {error}")
    try:
        execute(name, *SCHEMA)
        yield name
    finally:
        drop_database(name)


@pytest.fixture
def databases() -> Iterator[list[str]]:
    """Names of further databases a test creates, dropped afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        drop_database(name)


def test_backup_is_consistent_and_restores_faithfully(tmp_path: Path, source_database: str) -> None:
    store = store_for(source_database)
    before = live_fingerprint(source_database)
    dump = tmp_path / "shop.sql"
    late_write: dict[str, object] = {}

    def write_late() -> None:
        # Blocks on the global read lock until the store releases it; must then land after both snapshots.
        try:
            execute(
                source_database,
                "SET SESSION lock_wait_timeout = 20",
                f"INSERT INTO {quote(ORDERS)} (customer_id, comment) VALUES (1, 'late')",
            )
            late_write["done_at"] = time.monotonic()
        except pymysql.Error as error:
            late_write["error"] = error

    with store.prepare_backup(tmp_path / "scratch", "shop") as prepared:
        producer = prepared.source.producer
        assert producer is not None
        assert prepared.source.stored_name == "/shop.sql"
        assert producer.argv[0] == "mariadb-dump"
        assert producer.argv[-1] == source_database
        assert {"--single-transaction", "--hex-blob", "--routines", "--triggers"} <= set(producer.argv)
        assert not any(argument.startswith(("--password", "-p")) for argument in producer.argv)
        writer = threading.Thread(target=write_late)
        writer.start()
        time.sleep(0.5)
        assert "done_at" not in late_write and "error" not in late_write, "the global read lock did not hold"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(prepared.fingerprint)
            completed = run(producer, stdout_path=dump)
            prepared.verify_producer(completed)
            fingerprint = future.result(timeout=30)
        writer.join(timeout=20)

    assert not writer.is_alive()
    assert "error" not in late_write, late_write
    assert completed.succeeded, completed.stderr_tail
    assert fingerprint == before
    assert set(fingerprint["tables"]) == {"customers", "events", ORDERS}
    assert fingerprint["tables"][ORDERS]["rows"] == ORDER_ROWS
    assert live_fingerprint(source_database)["tables"][ORDERS]["rows"] == ORDER_ROWS + 1
    assert b"'late'" not in dump.read_bytes()

    with store.scratch_target(tmp_path / "scratch", "it") as target:
        assert target.database is not None
        assert target.database.startswith("replica_verify_it_")
        assert len(target.database) <= 64
        restore(store, target, dump)

        assert execute(target.database, f"SELECT COUNT(*) FROM {quote(ORDERS)} WHERE comment = 'late'") == [(0,)]
        assert execute(target.database, "SELECT name FROM customers WHERE id = 1") == [("Zoë 🦊 ✓",)]
        checks = store.check_restored(target, fingerprint, VerificationConfig())
        assert [(check.name, check.passed) for check in checks] == [("integrity", True), ("fingerprint", True)]
        assert "3 tables" in checks[1].detail

        execute(target.database, f"DELETE FROM {quote(ORDERS)} ORDER BY id DESC LIMIT 1")
        damaged = store.check_restored(target, fingerprint, VerificationConfig())
        scratch_name = target.database

    assert damaged[0].passed
    assert not damaged[1].passed
    assert f"row count of {ORDERS}: expected {ORDER_ROWS}, restored {ORDER_ROWS - 1}" in damaged[1].detail
    assert not database_exists(scratch_name)


def test_check_restored_sees_a_changed_cell_and_a_null_made_empty(source_database: str) -> None:
    store = store_for(source_database)
    expected = live_fingerprint(source_database)
    source = Target(description="source", database=source_database)
    assert [check.passed for check in store.check_restored(source, expected, VerificationConfig())] == [True, True]

    execute(source_database, f"UPDATE {quote(ORDERS)} SET amount = amount + 0.01 WHERE id = 7")
    changed = store.check_restored(source, expected, VerificationConfig())
    execute(source_database, f"UPDATE {quote(ORDERS)} SET amount = amount - 0.01 WHERE id = 7")
    execute(source_database, "UPDATE customers SET note = '' WHERE id = 1")
    emptied = store.check_restored(source, expected, VerificationConfig())

    assert not changed[1].passed
    assert changed[1].detail.startswith(f"content of {ORDERS}: digest expected")
    assert not emptied[1].passed
    assert emptied[1].detail.startswith("content of customers: digest expected")


def test_check_restored_reports_a_missing_table_as_an_integrity_failure(source_database: str) -> None:
    store = store_for(source_database)
    expected = live_fingerprint(source_database)
    execute(source_database, "DROP TABLE events")

    checks = store.check_restored(
        Target(description="source", database=source_database), expected, VerificationConfig()
    )

    assert [(check.name, check.passed) for check in checks] == [("integrity", False), ("fingerprint", False)]
    assert checks[0].detail == "table events: missing from the restore"


def test_the_lock_is_released_once_a_dump_like_session_holds_its_snapshot(tmp_path: Path, source_database: str) -> None:
    store = store_for(source_database)
    idle: list[Any] = []

    with store.prepare_backup(tmp_path, "shop") as prepared, concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(prepared.fingerprint)
        # Sessions of the same user in our database without a snapshot (idle, or waiting to write) do not count.
        idle.append(connect(source_database))
        writer = threading.Thread(
            target=execute,
            args=(source_database, "SET SESSION lock_wait_timeout = 10", "INSERT INTO events VALUES (NULL, 'w')"),
        )
        writer.start()
        time.sleep(0.6)
        assert not future.done(), "the lock was released before any dump had its snapshot"
        # What mariadb-dump does: connect without a database, open the snapshot, then select the database.
        dump_like = connect(None)
        idle.append(dump_like)
        with dump_like.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            cursor.execute(f"USE {quote(source_database)}")
            fingerprint = future.result(timeout=5)
            writer.join(timeout=10)
            cursor.execute("SELECT COUNT(*) FROM events")
            assert cursor.fetchall() == ((2,),)
        assert not writer.is_alive()

    for connection in idle:
        connection.close()
    assert fingerprint["tables"]["events"]["rows"] == 2
    assert live_fingerprint(source_database)["tables"]["events"]["rows"] == 3


def test_a_dump_held_up_by_a_slow_reader_gets_the_lock_released_while_it_runs(
    tmp_path: Path, source_database: str
) -> None:
    # More than a pipe buffer of output: mariadb-dump waits, snapshot open, until the reader starts (like restic).
    execute(
        source_database,
        "CREATE TABLE filler (id INT PRIMARY KEY, bytes BLOB)",
        "INSERT INTO filler WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
        "SELECT i, RANDOM_BYTES(1000) FROM n",
    )
    store = store_for(source_database)
    dump = tmp_path / "shop.sql"
    slow_reader = Command(argv=("sh", "-c", 'sleep 1.5 && exec cat > "$0"', str(dump)))

    with store.prepare_backup(tmp_path, "shop") as prepared, concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert prepared.source.producer is not None
        future = pool.submit(prepared.fingerprint)
        outcome = run_pipeline(prepared.source.producer, slow_reader, timeout_seconds=30)
        released_before_the_dump_ended = future.done()
        prepared.verify_producer(outcome.producer)
        fingerprint = future.result(timeout=5)

    assert outcome.consumer.succeeded
    assert released_before_the_dump_ended
    assert fingerprint == live_fingerprint(source_database)
    assert dump.stat().st_size > 200_000


def test_verify_producer_rejects_a_failed_or_stopped_dump(tmp_path: Path, source_database: str) -> None:
    store = store_for(source_database)
    with store.prepare_backup(tmp_path / "scratch", "shop") as prepared:
        producer = prepared.source.producer
        assert producer is not None
        argv = list(producer.argv)
        argv[argv.index("--port") + 1] = str(free_port())
        failed = run(dataclasses.replace(producer, argv=tuple(argv)), stdout_path=tmp_path / "failed.sql")
        with pytest.raises(StoreError, match=r"mariadb-dump of mariadb database '.*' on .* exited 2: .*error: 2002"):
            prepared.verify_producer(failed)
        stopped = Completed(producer, None, "", "", 60.0, timed_out=True)
        with pytest.raises(StoreError, match="did not finish in time"):
            prepared.verify_producer(stopped)
        broken_pipe = Completed(producer, -13, "", "", 1.0)
        with pytest.raises(StoreError, match="exited -13"):
            prepared.verify_producer(broken_pipe)


def test_a_backup_whose_dump_never_runs_leaves_the_server_writable(tmp_path: Path, source_database: str) -> None:
    store = store_for(source_database)
    insert = f"INSERT INTO {quote(ORDERS)} (comment) VALUES ('after')"

    with pytest.raises(RuntimeError, match="restic did not start"), store.prepare_backup(tmp_path, "shop"):
        with pytest.raises(pymysql.err.OperationalError, match="Lock wait timeout"):
            execute(source_database, "SET SESSION lock_wait_timeout = 1", insert)
        raise RuntimeError("restic did not start")
    started = time.monotonic()
    execute(source_database, "SET SESSION lock_wait_timeout = 5", insert)
    assert time.monotonic() - started < 2

    # The fingerprint already waiting in its thread is woken by the context's exit, and the lock released.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with pytest.raises(RuntimeError), store.prepare_backup(tmp_path, "shop") as prepared:
            future = pool.submit(prepared.fingerprint)
            time.sleep(0.3)
            raise RuntimeError("restic did not start")
        with pytest.raises(StoreError, match="ended before mariadb-dump opened its snapshot"):
            future.result(timeout=5)
    started = time.monotonic()
    execute(source_database, "SET SESSION lock_wait_timeout = 5", insert)
    assert time.monotonic() - started < 2


def test_scratch_target_drops_its_database_when_the_body_raises(tmp_path: Path, source_database: str) -> None:
    store = store_for(source_database)
    names: list[str] = []

    with pytest.raises(RuntimeError, match="restore went wrong"), store.scratch_target(tmp_path, "boom") as target:
        assert target.database is not None
        names.append(target.database)
        assert database_exists(target.database)
        lingering = connect(target.database)  # an idle session must not keep it alive
        raise RuntimeError("restore went wrong")

    lingering.close()
    assert names
    assert not database_exists(names[0])


def test_unreachable_server_raises_a_one_line_store_error() -> None:
    port = free_port()
    store = store_for("shop", port=port)

    started = time.monotonic()
    with pytest.raises(StoreError) as info, store.prepare_backup(Path("/nonexistent"), "shop"):
        pytest.fail("the body must not run")
    elapsed = time.monotonic() - started

    assert elapsed < 15
    message = str(info.value)
    assert f"mariadb database 'shop' on {HOST}:{port}" in message
    assert "cannot connect" in message
    assert "\n" not in message


def test_canary_round_trips_through_a_dump_and_restore(tmp_path: Path, source_database: str) -> None:
    store = store_for(source_database)
    first = Canary(7, datetime(2026, 11, 1, 10, 0, 0, 123456, tzinfo=UTC))
    newest = Canary(8, datetime(2026, 11, 1, 12, 30, 0, 654321, tzinfo=UTC))
    store.write_canary(newest)
    store.write_canary(first)  # order of writing does not matter: the newest by time wins

    dump = tmp_path / "shop.sql"
    fingerprint, completed = back_up(store, tmp_path / "scratch", dump)
    assert completed.succeeded, completed.stderr_tail
    assert "_replica_canary" in fingerprint["tables"]

    with store.scratch_target(tmp_path / "scratch", "canary") as target:
        assert store.read_canary(target) is None  # nothing restored yet
        restore(store, target, dump)
        found = store.read_canary(target)
        assert [check.passed for check in store.check_restored(target, fingerprint, VerificationConfig())] == [
            True,
            True,
        ]

    assert found == newest
    assert found is not None and found.written_at.tzinfo is not None


def test_write_canary_keeps_the_newest_hundred(source_database: str) -> None:
    store = store_for(source_database)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    store.write_canary(Canary(104, start + timedelta(minutes=104)))
    execute(
        source_database,
        "INSERT INTO _replica_canary (run_id, written_at) "
        "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 103) "
        "SELECT i, '2026-01-01' + INTERVAL i MINUTE FROM n",
    )
    store.write_canary(Canary(105, start + timedelta(minutes=105)))

    rows = execute(source_database, "SELECT MIN(run_id), MAX(run_id), COUNT(*) FROM _replica_canary")

    assert rows == [(6, 105, 100)]


def test_promote_keeps_an_existing_final_database_aside(
    tmp_path: Path, source_database: str, databases: list[str]
) -> None:
    store = store_for(source_database)
    dump = tmp_path / "shop.sql"
    fingerprint, completed = back_up(store, tmp_path / "scratch", dump)
    assert completed.succeeded, completed.stderr_tail
    final_name = unique_name("replica_it_final")
    databases.append(final_name)
    execute(
        None,
        f"CREATE DATABASE {quote(final_name)}",
        f"CREATE TABLE {quote(final_name)}.old_stuff (id INT PRIMARY KEY, what TEXT)",
        f"INSERT INTO {quote(final_name)}.old_stuff VALUES (1, 'keep me'), (2, 'me too')",
        f"CREATE VIEW {quote(final_name)}.old_view AS SELECT what FROM {quote(final_name)}.old_stuff",
    )
    final = store.named_target(final_name)
    assert store.target_has_data(final)

    with store.staging_target(final, "20261126T101010") as staged:
        assert staged.database is not None
        staged_name = staged.database
        assert staged_name.startswith(f"{final_name}_restore_20261126t101010_")
        restore(store, staged, dump)
        location = store.restored_location(staged, "/shop.sql")
        assert [check.passed for check in store.check_restored(location, fingerprint, VerificationConfig())] == [
            True,
            True,
        ]
        replaced = store.promote(location, final, ".replaced-20261126T101010")

    assert replaced is not None
    aside = replaced.split("'")[1]
    databases.append(aside)
    assert aside.startswith(f"{final_name}_replaced_20261126t101010_")
    assert not database_exists(staged_name)
    assert execute(aside, "SELECT what FROM old_view ORDER BY what") == [("keep me",), ("me too",)]
    assert [check.passed for check in store.check_restored(final, fingerprint, VerificationConfig())] == [True, True]
    # The view, trigger and procedure came along with the tables.
    assert execute(final_name, "SELECT COUNT(*) FROM big_orders") == execute(
        source_database, "SELECT COUNT(*) FROM big_orders"
    )
    execute(final_name, "INSERT INTO customers (name) VALUES ('  padded  ')")
    assert execute(final_name, "SELECT name FROM customers ORDER BY id DESC LIMIT 1") == [("padded",)]
    assert execute(final_name, "CALL count_orders()") == [(ORDER_ROWS,)]


def test_promote_into_a_new_database_reports_nothing_replaced(
    tmp_path: Path, source_database: str, databases: list[str]
) -> None:
    store = store_for(source_database)
    final = store.named_target(unique_name("replica_it_new"))
    assert final.database is not None
    databases.append(final.database)
    assert not store.target_has_data(final)

    with store.staging_target(final, "now") as staged:
        execute(staged.database, "CREATE TABLE t (a INT)", "INSERT INTO t VALUES (1)")
        replaced = store.promote(staged, final, ".replaced-now")

    assert replaced is None
    assert execute(final.database, "SELECT a FROM t") == [(1,)]


def test_named_target_refuses_the_live_database_and_bad_names(source_database: str) -> None:
    store = store_for(source_database)

    with pytest.raises(UsageError, match="live database"):
        store.named_target(source_database)
    with pytest.raises(UsageError, match="system database"):
        store.named_target("mysql")
    with pytest.raises(UsageError, match="not a valid database name"):
        store.named_target("shop; DROP DATABASE x")
    with pytest.raises(UsageError, match="not a valid database name"):
        store.named_target("x" * 65)
    assert store.named_target("shop_copy").database == "shop_copy"


def test_a_drill_query_reads_and_a_statement_that_writes_is_refused(source_database: str) -> None:
    # GIVEN a restored database (here the test's own), and what a plan file could hold
    store = store_for(source_database)
    target = Target(description=f"database {source_database}", database=source_database)
    tables_before = execute(source_database, "SHOW TABLES")

    # WHEN one query reads, one drops a table (DDL would commit a read-only transaction), one hides DDL in an
    # executable comment
    names = store.restored_values(target, "sql", "SELECT table_name FROM information_schema.tables LIMIT 1")
    for statement in ("DROP TABLE events", "/*!CREATE OR REPLACE TABLE events (id int)*/ SELECT 1"):
        with pytest.raises(StoreError, match="query failed"):
            store.restored_values(target, "sql", statement)

    # THEN the read answered, and the read-only session refused both writes: every table is still there
    assert len(names) == 1
    assert execute(source_database, "SHOW TABLES") == tables_before
