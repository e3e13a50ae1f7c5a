"""stores/postgresql.py against the real PostgreSQL on 127.0.0.1:5432: snapshot-consistent dump, restore, checks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from replica.config.models import PostgresqlStoreConfig, VerificationConfig
from replica.errors import StoreError, UsageError
from replica.execute import Command, run, run_pipeline
from replica.stores.base import Target
from replica.stores.postgresql import PostgresqlStore
from replica.stores.postgresql_fingerprint import fingerprint_connection
from tests.integration.conftest import unique_name

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"
ORDER_ROWS = 40
SCHEMA = """
    CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, note text, joined timestamptz);
    CREATE TABLE orders (
        id bigserial PRIMARY KEY,
        customer_id int REFERENCES customers (id),
        amount numeric(12, 2),
        payload bytea,
        placed_at timestamptz,
        comment text
    );
    CREATE SCHEMA audit;
    CREATE TABLE audit.events (at timestamptz NOT NULL, what text);
    INSERT INTO customers (name, note, joined) VALUES
        ('Zoë ✓', NULL, '2026-01-02 03:04:05.678+02'),
        ('東京 Trading', 'line one
line two', NULL),
        ('O''Brien', '', '1999-12-31 23:59:59+00');
    INSERT INTO orders (customer_id, amount, payload, placed_at, comment)
        SELECT 1 + i % 3, i * 1.25, decode(md5(i::text), 'hex'),
               '2026-01-01 00:00+00'::timestamptz + i * interval '1 hour 7 seconds',
               CASE WHEN i % 4 = 0 THEN NULL ELSE 'order ' || i END
        FROM generate_series(1, 40) AS i;
    INSERT INTO audit.events VALUES (now(), 'created');
"""


def connect(database: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname=database, autocommit=autocommit, connect_timeout=5)


def database_exists(name: str) -> bool:
    with connect("postgres") as connection:
        return connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def drop_database(name: str) -> None:
    with connect("postgres") as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def live_fingerprint(database: str) -> dict[str, Any]:
    with connect(database, autocommit=False) as connection:
        return fingerprint_connection(connection)


def store_for(database: str, port: int = PORT) -> PostgresqlStore:
    return PostgresqlStore(
        PostgresqlStoreConfig(
            kind="postgresql", host=HOST, port=port, user=USER, database=database, dump_timeout=timedelta(seconds=60)
        )
    )


@contextlib.contextmanager
def created_source_database() -> Iterator[str]:
    """Create a uniquely named database holding a few tables of awkward types (SCHEMA); drop it afterwards."""
    name = unique_name("replica_it")
    try:
        with connect("postgres") as connection:
            connection.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(name))
            )
    except psycopg.OperationalError as error:
        pytest.fail(f"the integration tier needs PostgreSQL on {HOST}:{PORT} as {USER}: {error}")
    try:
        with connect(name) as connection:
            connection.execute(SCHEMA)
        yield name
    finally:
        drop_database(name)


@pytest.fixture
def source_database() -> Iterator[str]:
    """A uniquely named database holding a few tables of awkward types, dropped afterwards."""
    with created_source_database() as name:
        yield name


def test_backup_is_consistent_and_restores_faithfully(tmp_path: Path, source_database: str) -> None:
    store = store_for(source_database)
    before = live_fingerprint(source_database)
    dump = tmp_path / "backup.pgdump"

    with store.prepare_backup(tmp_path / "scratch", "billing") as prepared:
        producer = prepared.source.producer
        assert producer is not None
        assert prepared.source.stored_name == "/billing.pgdump"
        assert producer.argv[0] == "pg_dump"
        assert "--format=custom" in producer.argv
        assert "--compress=1" in producer.argv, "level 1 by default: half of pg_dump's CPU at level 6"
        assert any(argument.startswith("--snapshot=") for argument in producer.argv)
        assert producer.argv[producer.argv.index("--dbname") + 1] == source_database
        # Another client commits after the backup started: neither the fingerprint nor the dump may see it.
        with connect(source_database) as writer:
            writer.execute("INSERT INTO orders (customer_id, comment) SELECT 1, 'late' FROM generate_series(1, 5)")
            writer.execute("UPDATE customers SET note = 'changed late' WHERE id = 1")
            writer.execute("INSERT INTO audit.events VALUES (now(), 'late')")
        fingerprint = prepared.fingerprint()
        completed = run(producer, stdout_path=dump)
        prepared.verify_producer(completed)

    assert completed.succeeded, completed.stderr_tail
    assert dump.read_bytes()[:5] == b"PGDMP"
    assert fingerprint == before
    assert fingerprint["tables"]["public.orders"]["rows"] == ORDER_ROWS
    assert set(fingerprint["tables"]) == {"audit.events", "public.customers", "public.orders"}
    assert live_fingerprint(source_database) != before, "the late writes did reach the live database"

    with store.scratch_target(tmp_path / "scratch", "it") as target:
        assert target.database is not None
        assert target.database != source_database
        method = store.restore_method(target, "/billing.pgdump")
        assert method.kind == "command"
        assert method.consumer is not None
        restored = run_pipeline(Command(argv=("cat", str(dump))), method.consumer, timeout_seconds=60)
        assert restored.producer.succeeded
        assert restored.consumer.succeeded, restored.consumer.stderr_tail

        with connect(target.database) as connection:
            late = connection.execute("SELECT count(*) FROM orders WHERE comment = 'late'").fetchone()
            note = connection.execute("SELECT note FROM customers WHERE id = 1").fetchone()
        assert late == (0,)
        assert note == (None,)

        checks = store.check_restored(target, fingerprint, VerificationConfig())
        assert [(check.name, check.passed) for check in checks] == [("integrity", True), ("fingerprint", True)]
        assert "3 tables" in checks[1].detail

        with connect(target.database) as connection:
            connection.execute("DELETE FROM orders WHERE id = (SELECT max(id) FROM orders)")
        damaged = store.check_restored(target, fingerprint, VerificationConfig())
        scratch_name = target.database

    assert damaged[0].passed
    assert not damaged[1].passed
    assert f"row count of public.orders: expected {ORDER_ROWS}, restored {ORDER_ROWS - 1}" in damaged[1].detail
    assert not database_exists(scratch_name)


def test_check_restored_sees_a_changed_value(source_database: str) -> None:
    store = store_for(source_database)
    expected = live_fingerprint(source_database)
    with connect(source_database) as connection:
        connection.execute("UPDATE orders SET amount = amount + 0.01 WHERE id = 7")

    checks = store.check_restored(
        Target(description="source", database=source_database), expected, VerificationConfig()
    )

    assert not checks[1].passed
    assert checks[1].detail.startswith("content of public.orders: digest expected")


def test_verify_producer_rejects_a_failed_dump(tmp_path: Path, source_database: str) -> None:
    store = store_for(source_database)
    with store.prepare_backup(tmp_path / "scratch", "billing") as prepared:
        producer = prepared.source.producer
        assert producer is not None
    # The exporting transaction is closed now, so pg_dump can no longer import its snapshot.
    completed = run(producer, stdout_path=tmp_path / "late.pgdump")

    assert not completed.succeeded
    with pytest.raises(StoreError, match=r"(?i)pg_dump of postgresql database .* exited 1: .*snapshot"):
        prepared.verify_producer(completed)


def test_scratch_target_drops_its_database_when_the_body_raises(tmp_path: Path, source_database: str) -> None:
    store = store_for(source_database)
    names: list[str] = []

    with pytest.raises(RuntimeError, match="restore went wrong"), store.scratch_target(tmp_path, "boom") as target:
        assert target.database is not None
        names.append(target.database)
        assert database_exists(target.database)
        # A session left open on the scratch database must not keep it alive.
        lingering = connect(target.database)
        raise RuntimeError("restore went wrong")

    lingering.close()
    assert names
    assert not database_exists(names[0])


def test_unreachable_server_raises_a_one_line_store_error() -> None:
    store = store_for("billing", port=1)

    started = time.monotonic()
    with pytest.raises(StoreError) as info, store.prepare_backup(Path("/nonexistent"), "billing"):
        pytest.fail("the body must not run")
    elapsed = time.monotonic() - started

    assert elapsed < 15
    message = str(info.value)
    assert f"{HOST}:1" in message
    assert "cannot connect" in message
    assert "\n" not in message


def test_named_target_refuses_the_live_database(source_database: str) -> None:
    store = store_for(source_database)

    with pytest.raises(UsageError, match="live database"):
        store.named_target(source_database)
    with pytest.raises(UsageError, match="not a valid database name"):
        store.named_target("billing; DROP DATABASE x")
    other = store.named_target("billing_copy")
    assert other.database == "billing_copy"
    assert not store.target_has_data(other)
    assert store.target_has_data(Target(description="existing", database=source_database))
    for system in ("postgres", "template0", "template1"):
        with pytest.raises(UsageError, match="system database"):
            store.named_target(system)


def test_a_drill_query_reads_one_statement_and_changes_nothing(source_database: str) -> None:
    # GIVEN a restored database (here the test's own) and queries a plan file could hold
    store = store_for(source_database)
    target = Target(description=f"database {source_database}", database=source_database)

    # WHEN one reads, one smuggles a second statement past the read-only session, one writes
    names = store.restored_values(target, "sql", "SELECT name FROM customers")
    with pytest.raises(StoreError, match="query failed"):
        store.restored_values(target, "sql", "COMMIT; DROP TABLE orders; SELECT 1")
    with pytest.raises(StoreError, match="read-only"):
        store.restored_values(target, "sql", "WITH gone AS (DELETE FROM orders RETURNING id) SELECT id FROM gone")

    # THEN the first answers the column's values, and the others changed nothing
    assert names == {"Zoë ✓", "東京 Trading", "O'Brien"}
    with connect(source_database) as connection:
        assert connection.execute("SELECT count(*) FROM orders").fetchone() == (ORDER_ROWS,)
